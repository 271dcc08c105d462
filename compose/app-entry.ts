// The command inside the dispatcher container: `labrig dispatcher`, `labrig backup` and
// `labrig restore`, the same commands as the full CLI, bundled by compose/build-app.mjs into one
// file so the image carries no TypeScript tooling and no dev dependencies.
import { Command, CommanderError } from "commander";
import { LabrigError } from "../core/errors.js";
import { registerBackupCommands } from "../cli/backup.js";
import { registerDispatcherCommands } from "../cli/dispatcher.js";

const program = new Command("labrig")
  .description("labrig's dispatcher container: the queue service and its backups")
  .showHelpAfterError("(run with --help for usage)")
  .enablePositionalOptions();
registerDispatcherCommands(program);
registerBackupCommands(program);
program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode;
  else if (err instanceof LabrigError) {
    process.stderr.write(`labrig: ${err.message}\n`);
    process.exitCode = 1;
  } else throw err;
}
