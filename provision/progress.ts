// Shows a provisioning run live with listr2, on stderr (stdout stays free for --json and the
// summary). It only follows the runner's events: one task per host, a subtask per step that
// ends when its step-end event arrives.
import { Listr, ListrLogger, ProcessOutput } from "listr2";
import type { ProvisionEvent, StepReport } from "./runner.js";

export interface Progress {
  onEvent(event: ProvisionEvent): void;
  /** Resolves when the display has drawn the last event. */
  done: Promise<void>;
}

export function listrProgress(hosts: string[]): Progress {
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
    hosts.map((host) => ({
      title: host,
      task: async (_: unknown, hostTask) => {
        outputs.set(host, (line) => (hostTask.output = line));
        const start = (await slot(`${host}:start`).promise) as string[];
        return hostTask.newListr(
          start.map((step) => ({
            title: step,
            task: async (_: unknown, stepTask) => {
              const report = (await slot(`${host}:${step}`).promise) as StepReport;
              stepTask.title = `${step}: ${report.status}${report.changes.length ? ` (${report.changes.length} change${report.changes.length > 1 ? "s" : ""})` : ""}`;
              if (report.status === "skipped") stepTask.skip(`${step}: skipped — ${report.reason}`);
              if (report.status === "failed") throw new Error(`${step}: ${report.reason}`);
            },
          })),
          { concurrent: false, exitOnError: false },
        );
      },
    })),
    {
      concurrent: true,
      exitOnError: false,
      collectErrors: false,
      fallbackRendererCondition: () => !process.stderr.isTTY,
      rendererOptions: { logger, collapseSubtasks: false, collapseSkips: false },
      fallbackRendererOptions: { logger },
    },
  );
  const done = list.run().then(
    () => undefined,
    () => undefined,
  );
  return {
    done,
    onEvent(e) {
      if (e.type === "host-start") slot(`${e.host}:start`).resolve(e.steps);
      else if (e.type === "step-end") slot(`${e.host}:${e.report.id}`).resolve(e.report);
      else if (e.type === "log") outputs.get(e.host)?.(e.step ? `${e.step}: ${e.message}` : e.message);
    },
  };
}
