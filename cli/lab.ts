// Registers `labrig lab` (`pnpm start`): a dispatcher, an agent for this machine and the
// dashboard, all on this machine. The work is in lab/run-lab.ts, loaded lazily.
import type { Command } from "commander";
import { parsePort } from "./dispatcher.js";

export function registerLabCommands(program: Command): void {
  program
    .command("lab")
    .description("run a local lab: a dispatcher, an agent for this machine and the dashboard (what `pnpm start` runs)")
    .option("--port <port>", "dispatcher port on 127.0.0.1 (0 picks a free one; if the default 8000 is taken, a free one is used)", parsePort, 8000)
    .option("--no-dashboard", "print one line per device or job change instead of the dashboard (also when stdin is not a terminal)")
    .addHelpText(
      "after",
      `
Files under LABRIG_HOME (default ~/.labrig):
  dispatcher/   the dispatcher's state: database, admin-token, join-token, synced runs
  agent/        the agent's workdir: its token, job outputs
  logs/         dispatcher.log, agent.log
  lab.json      written while the lab runs, so other commands find it with no flags

Stop with q or Ctrl-C (or SIGTERM): the agent stops first, then the dispatcher.
In another terminal: pnpm submit -- echo hi`,
    )
    .action(async (opts: { port: number; dashboard: boolean }, cmd: Command) => {
      const { runLab } = await import("../lab/run-lab.js");
      const code = await runLab({ port: opts.port, portExplicit: cmd.getOptionValueSource("port") === "cli", dashboard: opts.dashboard });
      // Idle HTTP keep-alive sockets would hold the process open a few seconds more.
      process.exit(code);
    });
}
