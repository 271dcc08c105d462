// The local lab's foreground view: the Ink dashboard (tui/app.tsx's runTui) when there is a
// terminal and it is built; else a plain screen redrawn every second; without a terminal, one
// line per change. Resolves when the user quits (q, Ctrl-C) or `signal` aborts.
import { setTimeout as sleep } from "node:timers/promises";
import type { Device, Job } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { errorMessage } from "../core/errors.js";
import { type LabSnapshot, renderSummaryScreen, summaryChanges } from "./summary.js";

export type DashboardMode = "tui" | "screen" | "lines";

export interface DashboardOptions {
  url: string;
  token: string;
  mode: DashboardMode;
  /** Shown above the screen summary. */
  header: string[];
  signal: AbortSignal;
  print: (line: string) => void;
}

type RunTui = (opts: { url: string; token: string; onQuit?: () => void; signal?: AbortSignal }) => Promise<void>;

export async function runDashboard(opts: DashboardOptions): Promise<void> {
  if (opts.mode === "tui") {
    const runTui = await loadRunTui(opts.print);
    if (runTui) return await runTuiUntil(runTui, opts);
    opts.mode = "screen";
  }
  if (opts.mode === "screen") return await runScreen(opts);
  return await runLines(opts);
}

/** The Ink dashboard, when tui/app.tsx exists and exports runTui. */
async function loadRunTui(print: (line: string) => void): Promise<RunTui | undefined> {
  const spec = new URL("../tui/app.js", import.meta.url).href;
  // React's development build costs several times more per frame; `labrig tui` sets this too.
  process.env.NODE_ENV ??= "production";
  try {
    const mod = (await import(spec)) as { runTui?: RunTui };
    return typeof mod.runTui === "function" ? mod.runTui : undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ERR_MODULE_NOT_FOUND" || !errorMessage(err).includes("tui/app")) {
      print(`the dashboard (tui/app.tsx) failed to load, showing the plain summary instead: ${errorMessage(err)}`);
    }
    return undefined;
  }
}

async function runTuiUntil(runTui: RunTui, opts: DashboardOptions): Promise<void> {
  let quit!: () => void;
  const quitted = new Promise<void>((r) => (quit = r));
  const aborted = new Promise<void>((r) => opts.signal.addEventListener("abort", () => r(), { once: true }));
  const tui = runTui({ url: opts.url, token: opts.token, onQuit: quit, signal: opts.signal });
  await Promise.race([tui, quitted, aborted]);
  // On a stop from outside, let the dashboard give the terminal back before the lab prints.
  if (opts.signal.aborted) await Promise.race([tui.catch(() => {}), sleep(2000)]);
}

async function snapshot(client: DispatcherClient): Promise<LabSnapshot> {
  const [devices, jobs] = await Promise.all([client.devices(), client.request<{ jobs: Job[] }>("GET", "/api/jobs?limit=20").then((r) => r.body.jobs)]);
  return { devices: devices as Device[], jobs };
}

async function runScreen(opts: DashboardOptions): Promise<void> {
  const client = new DispatcherClient({ url: opts.url, token: opts.token, timeoutMs: 3000 });
  const stdin = process.stdin;
  let quit!: () => void;
  const quitted = new Promise<void>((r) => (quit = r));
  const onKey = (data: Buffer) => {
    const key = data.toString();
    if (key === "q" || key === "Q" || key === "\u0003") quit();
  };
  stdin.setRawMode?.(true);
  stdin.resume();
  stdin.on("data", onKey);
  opts.signal.addEventListener("abort", () => quit(), { once: true });
  let stopped = false;
  void quitted.then(() => (stopped = true));
  try {
    while (!stopped) {
      let text: string;
      try {
        text = renderSummaryScreen(await snapshot(client), Date.now(), opts.header);
      } catch (err) {
        text = [...opts.header, "", `the dispatcher is not answering: ${errorMessage(err)}`, "", "q or Ctrl-C stops the lab"].join("\n");
      }
      if (!stopped) process.stdout.write(`\x1b[H\x1b[2J${text}\n`);
      await Promise.race([sleep(1000), quitted]);
    }
  } finally {
    stdin.off("data", onKey);
    stdin.setRawMode?.(false);
    stdin.pause();
  }
}

async function runLines(opts: DashboardOptions): Promise<void> {
  const client = new DispatcherClient({ url: opts.url, token: opts.token, timeoutMs: 3000 });
  let seen = new Map<string, string>();
  let lastError = "";
  while (!opts.signal.aborted) {
    try {
      const changes = summaryChanges(seen, await snapshot(client));
      seen = changes.seen;
      for (const line of changes.lines) opts.print(line);
      lastError = "";
    } catch (err) {
      const msg = `the dispatcher is not answering: ${errorMessage(err)}`;
      if (msg !== lastError) opts.print(msg);
      lastError = msg;
    }
    await sleep(1000, undefined, { signal: opts.signal }).catch(() => {});
  }
}
