// Runs labrig's own services (the dispatcher, the agent) as child processes of the local lab:
// each in its own process group so a terminal's Ctrl-C reaches only the lab, which then stops
// them in order; output appended to a log file; stop() escalates SIGTERM → SIGKILL.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LabrigError } from "../core/errors.js";

const repoRoot = resolve(import.meta.dirname, "..");
const cliMain = resolve(repoRoot, "cli/main.ts");

export class ChildStartError extends LabrigError {}

export interface ManagedChild {
  name: string;
  pid: number;
  logFile: string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** SIGTERM, then SIGKILL to its whole group after graceMs; resolves once it has exited. */
  stop(graceMs: number): Promise<void>;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
}

/** Starts `labrig <args>` with the same Node and tsx as this process. */
export function startLabrigChild(name: string, args: string[], opts: { logFile: string; env?: NodeJS.ProcessEnv }): ManagedChild {
  const fd = openSync(opts.logFile, "a", 0o600);
  const logStart = statSync(opts.logFile).size;
  const shown = args.map((a, i) => (/^--.*-token$/.test(args[i - 1] ?? "") ? "<redacted>" : a));
  writeSync(fd, `\n--- ${new Date().toISOString()} labrig ${shown.join(" ")} (started by the local lab) ---\n`);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), cliMain, ...args], {
      cwd: repoRoot,
      env: opts.env ?? process.env,
      stdio: ["ignore", fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new ChildStartError(`could not start the ${name} (labrig ${args[0]}); see ${opts.logFile}`);
  const pid = child.pid;
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once("exit", (code, signal) => {
      done = true;
      // Anything it left in its group (tsx's esbuild service) goes with it.
      killGroup(pid, "SIGKILL");
      res({ code, signal });
    }),
  );
  return {
    name,
    pid,
    logFile: opts.logFile,
    exited,
    running: () => !done,
    async stop(graceMs: number) {
      if (done) return;
      child.kill("SIGTERM");
      const timer = sleep(graceMs).then(() => "timeout" as const);
      if ((await Promise.race([exited, timer])) === "timeout") {
        killGroup(pid, "SIGKILL");
        await exited;
      }
    },
    logTail(lines = 20) {
      if (!existsSync(opts.logFile)) return "";
      const text = readFileSync(opts.logFile, "utf8").slice(logStart);
      return text.split("\n").slice(-lines).join("\n").trim();
    },
  };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone already */
  }
}

/** Kills a child's group at once; for process exit paths that cannot wait. */
export function killNow(child: ManagedChild): void {
  if (child.running()) killGroup(child.pid, "SIGKILL");
}

/**
 * Waits until a JSON file a child writes when ready exists and passes `ready`; fails at once
 * with the child's log tail if the child exits first.
 */
export async function waitForReadyFile<T>(child: ManagedChild, file: string, ready: (v: T) => Promise<boolean> | boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (!child.running()) {
      const { code, signal } = await child.exited;
      throw new ChildStartError(`the ${child.name} exited (${signal ?? `code ${code}`}) before it was ready. Its log (${child.logFile}) ends:\n${child.logTail()}`);
    }
    if (existsSync(file)) {
      try {
        const v = JSON.parse(readFileSync(file, "utf8")) as T;
        if (await ready(v)) return v;
      } catch (err) {
        lastError = String(err);
      }
    }
    await sleep(100);
  }
  throw new ChildStartError(
    `the ${child.name} was not ready after ${Math.round(timeoutMs / 1000)} s (waiting for ${file}${lastError ? `; last error: ${lastError}` : ""}). Its log (${child.logFile}) ends:\n${child.logTail()}`,
  );
}
