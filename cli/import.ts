// Registers `labrig import`: bringing another queue's history into labrig. The work is in
// import-cvlab.ts, loaded lazily.
import type { Command } from "commander";

export function registerImportCommands(program: Command): void {
  const imp = program.command("import").description("bring another queue's jobs into labrig");
  imp
    .command("cvlab-kit")
    .description("import a CVLab-Kit queue: its jobs with names, projects, priorities, times, YAML and terminal logs")
    .requiredOption("--db <file>", "CVLab-Kit's database (web_helper/state/web_helper.db)")
    .option("--logs <dir>", "CVLab-Kit's queue logs (web_helper/queue_logs): each job's config.yaml and terminal logs")
    .option("--dry-run", "say what would be imported and skipped, change nothing")
    .option("--json", "print the report as JSON")
    .option("--url <url>", "dispatcher URL (else LABRIG_URL, else the local lab under LABRIG_HOME)")
    .option("--token <token>", "admin token (else LABRIG_TOKEN, else the local lab's)")
    .addHelpText(
      "after",
      `
States: pending/queued → queued (runs here), completed → succeeded, failed → failed,
expired → failed, cancelled → cancelled, running/assigned → failed (lost, with a reason: the
jobs CVLab-Kit was running are not running here), paused → cancelled (retry it to run it).
A job whose experiment_uid was imported before is skipped, so importing twice adds nothing.
Without --logs the paths stored in the database are read, relative to the CVLab-Kit checkout
(the folder above web_helper/state/). CVLab-Kit's times have no time zone: they are read as
this machine's local time.`,
    )
    .action(async (opts: { db: string; logs?: string; dryRun?: boolean; json?: boolean; url?: string; token?: string }) => {
      const { readCvlabQueue, importCvlabQueue, formatImportReport } = await import("./import-cvlab.js");
      const { clientFor } = await import("./dispatcher-client.js");
      const rows = readCvlabQueue({ db: opts.db, logs: opts.logs, dryRun: !!opts.dryRun });
      const report = await importCvlabQueue(clientFor(opts), rows, !!opts.dryRun);
      process.stdout.write(`${opts.json ? JSON.stringify(report, null, 2) : formatImportReport(report)}\n`);
    });
}
