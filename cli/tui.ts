// Registers the watching commands of `labrig`: `tui` (the operator's dashboard) and `wall` (the
// read-only wall monitor). The dispatcher is found like every job command finds it; the Ink and
// blessed code loads only when a command runs, so `labrig --help` stays fast.
import type { Command } from "commander";
import { resolveDispatcher } from "../core/config.js";
import { LabrigError } from "../core/errors.js";

interface WatchFlags {
  url?: string;
  token?: string;
  inventory?: string;
}

/** React's development build costs the dashboard several times the CPU per frame; nothing here needs its checks. */
function useProductionReact(): void {
  process.env.NODE_ENV ??= "production";
}

function requireTerminal(what: string): void {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new LabrigError(`${what} needs a terminal (stdin and stdout are not TTYs); for scripts use \`pnpm labrig devices\` and \`pnpm labrig jobs\``);
  }
}

export function registerTuiCommands(program: Command): void {
  program
    .command("tui")
    .description("the operator's dashboard: devices and GPUs, the queue, a job's live log, containers, events; cancel, retry, reprioritise, drain")
    .option("--url <url>", "the dispatcher's URL (default: LABRIG_URL, else the local lab)")
    .option("--token <token>", "the admin token (default: LABRIG_TOKEN, else the local lab's)")
    .option("--inventory <file>", "an inventory.yaml: the Containers view asks each host's Docker engine over SSH (else the local engine, DOCKER_HOST)")
    .addHelpText("after", "\nKeys: 1-5 switch views, ↑↓ move, Enter opens, / filters, c cancel, r retry, p priority, d drain, l log, ? help, q quits.")
    .action(async (flags: WatchFlags) => {
      const target = resolveDispatcher(flags);
      requireTerminal("the dashboard");
      useProductionReact();
      const { runTui } = await import("../tui/app.js");
      await runTui({ url: target.url, token: target.token, inventoryPath: flags.inventory });
    });

  program
    .command("wall")
    .description("a read-only full-screen wall monitor: GPU utilisation and temperature history per host, cluster gauges, the queue, recent events")
    .option("--url <url>", "the dispatcher's URL (default: LABRIG_URL, else the local lab)")
    .option("--token <token>", "the admin token (default: LABRIG_TOKEN, else the local lab's)")
    .addHelpText("after", "\nq, Esc or Ctrl-C quits.")
    .action(async (flags: WatchFlags) => {
      const target = resolveDispatcher(flags);
      requireTerminal("the wall view");
      useProductionReact();
      const { runWall } = await import("../tui/wall.js");
      await runWall({ url: target.url, token: target.token });
    });
}
