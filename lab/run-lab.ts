// `labrig lab` (`pnpm start`): a whole lab on this machine. Starts a dispatcher (state under
// LABRIG_HOME) and an agent for this host as child processes, writes lab.json so other commands
// find them with no flags, shows the dashboard, and on q, Ctrl-C or SIGTERM stops the agent, then
// the dispatcher, and removes lab.json.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { HOST_ID_PATTERN } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { labrigHome, localLabPaths } from "../core/config.js";
import { errorMessage, InputError, LabrigError } from "../core/errors.js";
import { killNow, type ManagedChild, startLabrigChild, waitForReadyFile } from "./children.js";
import { type DashboardMode, runDashboard } from "./dashboard.js";
import { isAlive, isLabrigProcess, type LabFile, readLabFile, removeLabFile, writeLabFile } from "./lab-file.js";
import { describeDevice } from "./summary.js";

export interface LabOptions {
  port: number;
  /** The user chose the port: if it is taken, fail rather than pick another. */
  portExplicit: boolean;
  dashboard: boolean;
  print?: (line: string) => void;
}

export class LabAlreadyRunningError extends LabrigError {}

/** os.hostname() made into a valid host id ("My Laptop.local" → "My-Laptop.local"). */
export function localHostId(name = hostname()): string {
  const id = name
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 63);
  return HOST_ID_PATTERN.test(id) ? id : "localhost";
}

export async function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Runs the lab until it is told to stop; returns the process exit code. */
export async function runLab(opts: LabOptions): Promise<number> {
  const print = opts.print ?? ((line: string) => console.log(line));
  const paths = localLabPaths(labrigHome());
  const logsDir = join(paths.home, "logs");
  for (const dir of [paths.home, paths.stateDir, paths.agentDir, logsDir]) mkdirSync(dir, { recursive: true, mode: 0o700 });

  const existing = readLabFile(paths.labFile);
  if (existing && isAlive(existing.pid)) {
    throw new LabAlreadyRunningError(
      `a local lab is already running under ${paths.home} (pid ${existing.pid}, dispatcher ${existing.url}); use it from this terminal (pnpm labrig jobs), stop it with q or Ctrl-C in its terminal, or start another with a different LABRIG_HOME`,
    );
  }
  if (existing) await cleanUpAfterDeadLab(existing, paths.labFile, print);

  let port = opts.port;
  if (port !== 0 && !(await portIsFree(port))) {
    if (opts.portExplicit) {
      throw new InputError("--port", `127.0.0.1:${port} is already in use; choose another port with --port N, or --port 0 for any free one`);
    }
    print(`port ${port} on 127.0.0.1 is already in use (another dispatcher?); using a free port instead (choose one with --port N)`);
    port = 0;
  }

  const children: ManagedChild[] = [];
  const killAllNow = () => children.forEach(killNow);
  process.on("exit", killAllNow);

  const stop = new AbortController();
  let stopReason = "";
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) return;
    stopReason = signal;
    stop.abort();
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);

  const stopAll = async () => {
    // The agent first, so it can report its jobs' ends to a dispatcher that is still there.
    for (const child of [...children].reverse()) {
      if (!child.running()) continue;
      print(`stopping the ${child.name} (pid ${child.pid})`);
      await child.stop(child.name === "agent" ? 15_000 : 10_000);
    }
    removeLabFile(paths.labFile, process.pid);
  };

  try {
    print(`labrig local lab in ${paths.home}: starting the dispatcher…`);
    rmSync(join(paths.stateDir, "dispatcher.json"), { force: true });
    const dispatcher = startLabrigChild("dispatcher", ["dispatcher", "--port", String(port), "--bind", "127.0.0.1", "--state", paths.stateDir], {
      logFile: join(logsDir, "dispatcher.log"),
    });
    children.push(dispatcher);
    const info = await untilStopped(
      stop.signal,
      waitForReadyFile<{ url: string; pid: number }>(dispatcher, join(paths.stateDir, "dispatcher.json"), async (v) => v.pid === dispatcher.pid && (await healthy(v.url)), 60_000),
    );
    const adminTokenFile = join(paths.stateDir, "admin-token");
    const joinTokenFile = join(paths.stateDir, "join-token");
    const client = new DispatcherClient({ url: info.url, token: readFileSync(adminTokenFile, "utf8").trim(), timeoutMs: 5000 });

    const hostId = localHostId();
    print(`dispatcher up at ${info.url}; starting the agent for this machine as ${hostId}…`);
    rmSync(join(paths.agentDir, "agent.json"), { force: true });
    const agent = startLabrigChild(
      "agent",
      // The token travels as a file so that it does not show in `ps`.
      ["agent", "--url", info.url, "--host-id", hostId, "--join-token-file", joinTokenFile, "--workdir", paths.agentDir, "--listen", "127.0.0.1:0"],
      { logFile: join(logsDir, "agent.log") },
    );
    children.push(agent);
    const agentInfo = await untilStopped(
      stop.signal,
      waitForReadyFile<{ url?: string; hostId?: string; pid?: number }>(agent, join(paths.agentDir, "agent.json"), (v) => v.pid === undefined || v.pid === agent.pid, 60_000),
    );

    const lab: LabFile = {
      url: info.url,
      adminTokenFile,
      joinTokenFile,
      agentUrl: agentInfo.url,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      home: paths.home,
      hostId: agentInfo.hostId ?? hostId,
      dispatcherPid: dispatcher.pid,
      agentPid: agent.pid,
      logsDir,
    };
    writeLabFile(paths.labFile, lab);

    const device = await untilStopped(stop.signal, waitForHealthyDevice(client, lab.hostId, 30_000));
    const header = [
      `labrig local lab (LABRIG_HOME=${paths.home})`,
      `  dispatcher  ${info.url}  pid ${dispatcher.pid}  log ${dispatcher.logFile}`,
      `  agent       ${lab.hostId}${agentInfo.url ? ` at ${agentInfo.url}` : ""}  pid ${agent.pid}  log ${agent.logFile}`,
      `  ${device ? describeDevice(device) : `device ${lab.hostId}: not healthy yet (see ${agent.logFile})`}`,
      "In another terminal (no flags needed):",
      "  pnpm submit -- echo hi        pnpm labrig jobs        pnpm labrig logs <id> -f",
    ];
    for (const line of header) print(line);
    if (process.env.LABRIG_URL) print(`note: LABRIG_URL is set (${process.env.LABRIG_URL}); commands in a shell with it set use that dispatcher, not this lab`);

    const mode: DashboardMode = !opts.dashboard || !process.stdin.isTTY || !process.stdout.isTTY ? "lines" : "tui";
    if (mode === "lines") print("running; Ctrl-C or SIGTERM stops the lab");
    const childDied = Promise.race(children.map((c) => c.exited.then(() => c)));
    const outcome = await Promise.race([
      runDashboard({ url: info.url, token: client.token!, mode, header, signal: stop.signal, print }).then(() => "quit" as const),
      childDied,
    ]);
    if (typeof outcome !== "string") {
      stop.abort();
      print(`the ${outcome.name} stopped unexpectedly; its log (${outcome.logFile}) ends:\n${outcome.logTail()}`);
      print("stopping the lab");
      await stopAll();
      return 1;
    }
    print(`${stopReason ? `${stopReason}: ` : ""}stopping the lab`);
    await stopAll();
    print("lab stopped");
    return 0;
  } catch (err) {
    if (err instanceof StoppedError) {
      print(`${stopReason}: stopping the lab before it finished starting`);
      await stopAll();
      return 0;
    }
    await stopAll();
    throw err;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    process.off("exit", killAllNow);
  }
}

class StoppedError extends Error {}

/** Rejects with StoppedError as soon as the lab is told to stop. */
async function untilStopped<T>(signal: AbortSignal, p: Promise<T>): Promise<T> {
  if (signal.aborted) throw new StoppedError();
  return await Promise.race([p, new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(new StoppedError()), { once: true }))]);
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

async function waitForHealthyDevice(client: DispatcherClient, hostId: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const d = (await client.devices()).find((x) => x.hostId === hostId);
      if (d?.status === "healthy") return d;
    } catch {
      /* the dispatcher may be busy starting; try again */
    }
    await sleep(250);
  }
  return undefined;
}

/** A lab killed outright leaves lab.json behind and maybe its children: stop those that are ours. */
async function cleanUpAfterDeadLab(old: LabFile, labFile: string, print: (line: string) => void): Promise<void> {
  const stopped: number[] = [];
  for (const [name, pid] of [
    ["agent", old.agentPid],
    ["dispatcher", old.dispatcherPid],
  ] as const) {
    if (pid && isLabrigProcess(pid)) {
      print(`stopping the ${name} (pid ${pid}) left running by a local lab that did not stop cleanly`);
      try {
        process.kill(pid, "SIGTERM");
        stopped.push(pid);
      } catch (err) {
        print(`could not stop pid ${pid}: ${errorMessage(err)}`);
      }
    }
  }
  const deadline = Date.now() + 15_000;
  while (stopped.some(isAlive) && Date.now() < deadline) await sleep(100);
  rmSync(labFile, { force: true });
}
