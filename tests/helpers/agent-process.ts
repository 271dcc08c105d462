// Starts a real agent as a child process (the same `labrig agent` a GPU host runs) against a
// dispatcher, with a script standing in for nvidia-smi (there is no GPU here) that prints one of
// the recorded fixtures, and waits until it has registered and written DIR/agent.json.
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { nodeWithTsx, repoRoot } from "./dispatcher-process.js";

export const nvidiaSmiFixtures = resolve(repoRoot, "tests/fixtures/nvidia-smi");

export interface AgentProcess {
  /** The agent's local HTTP server. */
  url: string;
  hostId: string;
  workdir: string;
  pid: number;
  child: ChildProcess;
  /** The agent token it registered with (from DIR/agent-token.json). */
  agentToken(): string;
  /** Everything the process printed, for failure messages. */
  output(): string;
  /** SIGKILL, wait for exit. */
  kill(): Promise<void>;
  /** SIGTERM, wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Removes the workdir (unless the caller gave it) and the fake nvidia-smi. */
  cleanup(): void;
}

export interface StartAgentOptions {
  url: string;
  joinToken: string;
  hostId: string;
  workdir?: string;
  env?: Record<string, string>;
  args?: string[];
  /** A file in tests/fixtures/nvidia-smi the fake nvidia-smi prints (default: one H100). */
  gpus?: string;
  /** A file in tests/fixtures/nvidia-smi the fake prints for `--query-compute-apps` (default: none). */
  computeApps?: string;
  /** Run this instead of `node --import tsx cli/main.ts agent` (e.g. the bundled agent). */
  command?: string[];
  /** How long it may take to register and write agent.json (default 30 s). */
  readyWithinMs?: number;
}

/**
 * Writes a script standing in for nvidia-smi (there is no GPU here): `--query-compute-apps` prints
 * the recorded `computeApps` file (none: no processes), anything else the recorded `gpus` file.
 * Both name files in tests/fixtures/nvidia-smi (`computeApps` may be an absolute path, a file the
 * test rewrites as processes come and go). The caller removes `dir`.
 */
export function writeFakeNvidiaSmi(gpus: string, computeApps?: string): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "labrig-fake-smi-"));
  const path = join(dir, "nvidia-smi");
  const apps = computeApps ? `cat '${resolve(nvidiaSmiFixtures, computeApps)}'` : "true";
  writeFileSync(
    path,
    `#!/bin/sh\n# Stands in for nvidia-smi: there is no GPU on the test machine.\ncase "$*" in\n  *--query-compute-apps*) ${apps} ;;\n  *) cat '${join(nvidiaSmiFixtures, gpus)}' ;;\nesac\n`,
  );
  chmodSync(path, 0o755);
  return { dir, path };
}

export async function startAgent(opts: StartAgentOptions): Promise<AgentProcess> {
  const ownWorkdir = !opts.workdir;
  const workdir = opts.workdir ?? mkdtempSync(join(tmpdir(), `labrig-agent-${opts.hostId}-`));
  const { dir: toolDir, path: smi } = writeFakeNvidiaSmi(opts.gpus ?? "h100-80gb-x1.txt", opts.computeApps);
  const infoFile = join(workdir, "agent.json");
  rmSync(infoFile, { force: true });
  const cmd = opts.command ?? [nodeWithTsx[0], ...nodeWithTsx.slice(1), "cli/main.ts", "agent"];
  const child = spawn(
    cmd[0]!,
    [...cmd.slice(1), "--url", opts.url, "--host-id", opts.hostId, "--join-token", opts.joinToken, "--workdir", workdir, "--listen", "127.0.0.1:0", "--nvidia-smi", smi, ...(opts.args ?? [])],
    { cwd: repoRoot, env: { ...process.env, LABRIG_KILL_GRACE_S: "2", ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const removeOwn = () => {
    rmSync(toolDir, { recursive: true, force: true });
    if (ownWorkdir) rmSync(workdir, { recursive: true, force: true });
  };
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => ((exitCode = code), r(code))));

  const readyWithinMs = opts.readyWithinMs ?? 30_000;
  const deadline = Date.now() + readyWithinMs;
  let url = "";
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      removeOwn();
      throw new Error(`agent ${opts.hostId} exited (${exitCode}) before it was ready:\n${out}`);
    }
    if (existsSync(infoFile)) {
      try {
        const info = JSON.parse(readFileSync(infoFile, "utf8")) as { url: string; pid: number };
        if (info.pid === child.pid) {
          url = info.url;
          break;
        }
      } catch {
        /* being written */
      }
    }
    await sleep(50);
  }
  if (!url) {
    child.kill("SIGKILL");
    await exited;
    removeOwn();
    throw new Error(`agent ${opts.hostId} did not become ready in ${readyWithinMs / 1000} s:\n${out}`);
  }
  const signal = async (s: NodeJS.Signals) => {
    if (exitCode === undefined) child.kill(s);
    return exited;
  };
  return {
    url,
    hostId: opts.hostId,
    workdir,
    pid: child.pid!,
    child,
    agentToken: () => (JSON.parse(readFileSync(join(workdir, "agent-token.json"), "utf8")) as { agentToken: string }).agentToken,
    output: () => out,
    kill: async () => void (await signal("SIGKILL")),
    stop: () => signal("SIGTERM"),
    exited,
    cleanup: removeOwn,
  };
}
