// Registers `labrig code`: the tree a job ran (get), its uncommitted changes (diff), and what the
// dispatcher keeps of code snapshots (usage). Loaded lazily from code-commands.ts.
import type { Command } from "commander";

const load = () => import("./code-commands.js");

export function registerCodeCommands(program: Command): void {
  const code = program.command("code").description("the code snapshots sent with jobs (submit --code): get a job's tree back, show its changes, see the space they take");
  const withTarget = (cmd: Command) =>
    cmd
      .option("--url <url>", "dispatcher URL (else LABRIG_URL, else your login, else the local lab under LABRIG_HOME)")
      .option("--token <token>", "your token (else LABRIG_TOKEN, else your login, else the local lab's admin token)");
  withTarget(
    code
      .command("get")
      .description("write the exact tree a job ran into a new folder (uncommitted changes included, ignored files not)")
      .argument("<jobId>", "job id")
      .option("--to <dir>", "the folder to write (must not exist or be empty; default ./<jobId>-code)")
      .option("--json", "print what was written as JSON"),
  ).action(async (jobId: string, opts) => (await load()).codeGetCommand(jobId, opts));
  withTarget(
    code
      .command("diff")
      .description("print the uncommitted changes the job's tree had against its git commit (git diff HEAD --binary)")
      .argument("<jobId>", "job id"),
  ).action(async (jobId: string, opts) => (await load()).codeDiffCommand(jobId, opts));
  withTarget(code.command("usage").description("what the dispatcher keeps: snapshots, blobs, bytes").option("--json", "print JSON")).action(async (opts) =>
    (await load()).codeUsageCommand(opts),
  );
}
