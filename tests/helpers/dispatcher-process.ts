// Starts a real dispatcher as a child process (the same `labrig dispatcher` a user runs) on a
// loopback port, with its state in a temp folder, for integration tests and benchmarks.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DispatcherClient } from "../../core/client.js";

export const repoRoot = resolve(import.meta.dirname, "../..");
/** Runs the TypeScript CLI in this very node process (no tsx wrapper process), so a signal reaches it. */
export const nodeWithTsx = [process.execPath, "--import", "tsx"] as const;

/**
 * The jobs tests run are tiny and the machines they run on have two cores: jobs that name no cores
 * or memory reserve little, as a lab of small hosts would set it, so several run at once on one
 * real agent. A test of the lab's own defaults passes them in `env`.
 */
export const SMALL_JOB_DEFAULTS = { LABRIG_CPUS_PER_GPU: "0.25", LABRIG_MEMORY_GIB_PER_GPU: "0.25", LABRIG_GPULESS_CPUS: "0.1", LABRIG_GPULESS_MEMORY_GIB: "0.1" };

export interface DispatcherProcess {
  url: string;
  port: number;
  stateDir: string;
  adminToken: string;
  joinToken: string;
  child: ChildProcess;
  /** Everything the process printed, for failure messages. */
  output(): string;
  admin(): DispatcherClient;
  /** SIGKILL, wait for exit. */
  kill(): Promise<void>;
  /** SIGTERM, wait for exit. */
  stop(): Promise<void>;
  /** Removes the state folder unless it was given by the caller. */
  cleanup(): void;
}

export interface StartOptions {
  stateDir?: string;
  port?: number;
  env?: Record<string, string>;
  args?: string[];
  /** Run this instead of `node --import tsx cli/main.ts` (e.g. a bundle); `dispatcher --port …` follow it. */
  command?: string[];
  /** How long it may take to answer /api/health (default 30 s). */
  readyWithinMs?: number;
}

/** Starts `labrig dispatcher --port 0 --state DIR` and waits until it answers /api/health. */
export async function startDispatcher(opts: StartOptions = {}): Promise<DispatcherProcess> {
  const ownState = !opts.stateDir;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "labrig-dispatcher-"));
  const infoFile = join(stateDir, "dispatcher.json");
  rmSync(infoFile, { force: true });
  const cmd = opts.command ?? [...nodeWithTsx, "cli/main.ts"];
  const child = spawn(
    cmd[0]!,
    [...cmd.slice(1), "dispatcher", "--port", String(opts.port ?? 0), "--bind", "127.0.0.1", "--state", stateDir, ...(opts.args ?? [])],
    { cwd: repoRoot, env: { ...process.env, ...SMALL_JOB_DEFAULTS, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  let exited = false;
  const exitPromise = new Promise<void>((r) => child.once("exit", () => ((exited = true), r())));

  const readyWithinMs = opts.readyWithinMs ?? 30_000;
  const deadline = Date.now() + readyWithinMs;
  let url = "";
  while (Date.now() < deadline) {
    if (exited) throw new Error(`dispatcher exited before it was ready:\n${out}`);
    if (existsSync(infoFile)) {
      try {
        url = JSON.parse(readFileSync(infoFile, "utf8")).url;
        const res = await fetch(`${url}/api/health`);
        if (res.ok) break;
      } catch {
        /* not ready yet */
      }
    }
    await sleep(50);
  }
  if (!url) {
    child.kill("SIGKILL");
    throw new Error(`dispatcher did not become ready in ${readyWithinMs / 1000} s:\n${out}`);
  }
  const adminToken = readFileSync(join(stateDir, "admin-token"), "utf8").trim();
  const joinToken = readFileSync(join(stateDir, "join-token"), "utf8").trim();
  const waitExit = async (signal: NodeJS.Signals) => {
    if (!exited) child.kill(signal);
    await exitPromise;
  };
  return {
    url,
    port: Number(new URL(url).port),
    stateDir,
    adminToken,
    joinToken,
    child,
    output: () => out,
    admin: () => new DispatcherClient({ url, token: adminToken }),
    kill: () => waitExit("SIGKILL"),
    stop: () => waitExit("SIGTERM"),
    cleanup: () => {
      if (ownState) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
