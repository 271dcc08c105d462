// Registers `labrig backup` and `labrig restore`. Both hand their arguments to the zx scripts in
// scripts/ (which also run on their own with plain node, e.g. by the labrig-backup timer), so the
// options and their help live in one place.
import type { Command } from "commander";

export function registerBackupCommands(program: Command): void {
  program
    .command("backup")
    .description("back up the dispatcher's state (online SQLite copy, tokens, config, runs) with restic; see --help")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[options...]", "see labrig backup --help")
    .action(async (args: string[]) => {
      const { main } = await import("../scripts/backup.mjs");
      process.exitCode = await main(args);
    });
  program
    .command("restore")
    .description("restore the latest backup: --verify checks it in a temporary folder, --target DIR restores for real; see --help")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[options...]", "see labrig restore --help")
    .action(async (args: string[]) => {
      const { main } = await import("../scripts/restore.mjs");
      process.exitCode = await main(args);
    });
}
