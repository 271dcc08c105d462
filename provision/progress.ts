// Shows a provisioning run live on stderr (stdout stays free for --json and the summary). It only
// follows the runner's events. In a terminal listr2 draws one task per host and a subtask per
// step; elsewhere (CI, a log file) one plain line per finished step. Either way a host shows only
// the steps meant for it (not another role's), a host whose first step failed (unreachable) is one
// line with the reason, and a dry run says "would change".
import { Listr, ListrDefaultRendererLogLevels, ListrLogger, ProcessOutput } from "listr2";
import type { ProvisionEvent, StepReport } from "./runner.js";

export interface Progress {
  onEvent(event: ProvisionEvent): void;
  /** Resolves when the display has drawn the last event. */
  done: Promise<void>;
}

/** A host and the steps that apply to it (its roles, --only/--skip), in the order they run. */
export interface HostPlan {
  host: string;
  steps: string[];
}

export interface ProgressOptions {
  dryRun: boolean;
  /** Draw with listr2 (a terminal) or print plain lines. */
  tty: boolean;
  write?: (line: string) => void;
}

export function provisionProgress(plans: HostPlan[], opts: ProgressOptions): Progress {
  return opts.tty ? listrProgress(plans, opts) : lineProgress(plans, opts);
}

/** "docker: would change (2 changes)", "base: ok", "nvidia-toolkit: skipped — no NVIDIA driver". */
export function describeStepEnd(r: StepReport, dryRun: boolean): string {
  const n = r.changes.length;
  const count = n ? ` (${n} change${n > 1 ? "s" : ""})` : "";
  switch (r.status) {
    case "changed":
      return `${r.id}: ${dryRun ? "would change" : "changed"}${count}`;
    case "skipped":
      return `${r.id}: skipped — ${r.reason}`;
    case "failed":
      return `${r.id}: ${r.reason}`;
    default:
      return `${r.id}: ok`;
  }
}

/** One host's end in a line: what it did, or where it stopped and what did not run. */
export function describeHostEnd(plan: HostPlan, reports: StepReport[], dryRun: boolean): { ok: boolean; line: string } {
  const mine = reports.filter((r) => plan.steps.includes(r.id));
  const failedAt = mine.findIndex((r) => r.status === "failed");
  if (failedAt === 0) return { ok: false, line: `${plan.host}: ${describeStepEnd(mine[0]!, dryRun)} (no step ran)` };
  if (failedAt > 0) {
    const notRun = plan.steps.slice(plan.steps.indexOf(mine[failedAt]!.id) + 1);
    return { ok: false, line: `${plan.host}: stopped at ${mine[failedAt]!.id}${notRun.length ? `; not run: ${notRun.join(", ")}` : ""}` };
  }
  const changed = mine.filter((r) => r.status === "changed").length;
  const ok = mine.filter((r) => r.status === "ok").length;
  const skipped = mine.filter((r) => r.status === "skipped").length;
  const parts = [changed && `${changed} ${dryRun ? "would change" : "changed"}`, ok && `${ok} ok`, skipped && `${skipped} skipped`].filter(Boolean);
  return { ok: true, line: `${plan.host}: ${parts.join(", ") || "nothing to do"}` };
}

const icon = (r: StepReport) => (r.status === "failed" ? "✖" : r.status === "skipped" ? "↓" : "✔");

/** Plain lines for a log: each finished step once, then each host's end. */
function lineProgress(plans: HostPlan[], opts: ProgressOptions): Progress {
  const write = opts.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const byHost = new Map(plans.map((p) => [p.host, { plan: p, reports: [] as StepReport[] }]));
  return {
    done: Promise.resolve(),
    onEvent(e) {
      const h = byHost.get(e.host);
      if (!h) return;
      if (e.type === "step-end" && h.plan.steps.includes(e.report.id)) {
        h.reports.push(e.report);
        const first = h.reports.length === 1;
        // A failed first step is the host's own line; steps not run after a failure are listed there.
        if (e.report.status === "failed" && first) return;
        if (h.reports.some((r) => r.status === "failed") && e.report.status !== "failed") return;
        write(`  ${icon(e.report)} ${e.host}: ${describeStepEnd(e.report, opts.dryRun)}`);
      } else if (e.type === "host-end") {
        const end = describeHostEnd(h.plan, h.reports, opts.dryRun);
        write(`${end.ok ? "✔" : "✖"} ${end.line}`);
      } else if (e.type === "log") {
        write(`  ${e.host}: ${e.step ? `${e.step}: ` : ""}${e.message}`);
      }
    },
  };
}

function listrProgress(plans: HostPlan[], opts: ProgressOptions): Progress {
  const waiters = new Map<string, { promise: Promise<unknown>; resolve: (v: unknown) => void }>();
  const slot = (key: string) => {
    let w = waiters.get(key);
    if (!w) {
      let resolve!: (v: unknown) => void;
      const promise = new Promise((r) => (resolve = r));
      w = { promise, resolve };
      waiters.set(key, w);
    }
    return w;
  };
  const outputs = new Map<string, (line: string) => void>();
  const logger = new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) });
  const list = new Listr(
    plans.map((plan) => ({
      title: plan.host,
      task: async (_: unknown, hostTask) => {
        outputs.set(plan.host, (line) => (hostTask.output = line));
        if (plan.steps.length === 0) return;
        // An unreachable host fails its first step; it is then one line, not a list of steps that never ran.
        const first = (await slot(`${plan.host}:${plan.steps[0]}`).promise) as StepReport;
        if (first.status === "failed") throw new Error(`${plan.host}: ${describeStepEnd(first, opts.dryRun)}`);
        return hostTask.newListr(
          plan.steps.map((step) => ({
            title: step,
            task: async (_: unknown, stepTask) => {
              const report = (await slot(`${plan.host}:${step}`).promise) as StepReport;
              const line = describeStepEnd(report, opts.dryRun);
              if (report.status === "failed") throw new Error(line);
              // A skip here is a step's own decision (no driver, nothing to back up), not a warning.
              if (report.status === "skipped") return stepTask.skip(line);
              stepTask.title = line;
            },
          })),
          // The runner stops a host at its first failed step; so does the display.
          { concurrent: false, exitOnError: true },
        );
      },
    })),
    {
      concurrent: true,
      exitOnError: false,
      collectErrors: false,
      rendererOptions: {
        logger,
        collapseSubtasks: false,
        collapseSkips: true,
        collapseErrors: false,
        // listr2 draws a host whose step failed as a pointer (❯), as if it still ran.
        icon: { [ListrDefaultRendererLogLevels.FAILED_WITH_FAILED_SUBTASKS]: "✖" },
      },
    },
  );
  const done = list.run().then(
    () => undefined,
    () => undefined,
  );
  return {
    done,
    onEvent(e) {
      if (e.type === "step-end") slot(`${e.host}:${e.report.id}`).resolve(e.report);
      else if (e.type === "log") outputs.get(e.host)?.(e.step ? `${e.step}: ${e.message}` : e.message);
    },
  };
}
