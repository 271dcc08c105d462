// What the HTTP benchmarks share: a real dispatcher process on loopback with simulated agents,
// the loopback round trip they compare against, and the facts a reader needs to judge a figure
// from a shared machine (its load, the dispatcher's CPU time).
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { startDispatcher, type DispatcherProcess } from "../tests/helpers/dispatcher-process.js";
import { fakeGpus, SimAgent } from "../tests/helpers/sim-agent.js";
import type { LoopbackHttp } from "./loopback-http.js";

/** Heartbeat interval the simulated agents announce and keep; thresholds far enough not to flap under load. */
export const HEARTBEAT_S = 5;

export async function withDispatcher<T>(fn: (d: DispatcherProcess) => Promise<T>): Promise<T> {
  const d = await startDispatcher({ env: { LABRIG_HEARTBEAT_S: String(HEARTBEAT_S), LABRIG_STALE_AFTER_S: "30", LABRIG_DISCONNECT_AFTER_S: "60" } });
  try {
    return await fn(d);
  } finally {
    await d.stop();
    d.cleanup();
  }
}

/** Registers `n` agents named sim-000… (20 at a time) and sends each one heartbeat. */
export async function registerAgents(d: DispatcherProcess, n: number, gpus = 1): Promise<SimAgent[]> {
  const agents: SimAgent[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = Array.from({ length: Math.min(20, n - i) }, (_, k) => new SimAgent(d.url, `sim-${String(i + k).padStart(3, "0")}`, fakeGpus(gpus)));
    agents.push(...(await Promise.all(batch.map((a) => a.register(d.joinToken)))));
  }
  await Promise.all(agents.map((a) => a.heartbeat()));
  return agents;
}

/** `n` sequential `GET /api/health` round trips, in ms, sorted. */
export async function healthRoundTrips(http: LoopbackHttp, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const a = await http.request("GET", "/api/health");
    if (a.status !== 200) throw new Error(`GET /api/health answered ${a.status}`);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}

/** User + system CPU seconds a process has used (Linux /proc), or NaN where that cannot be read. */
export function cpuSecondsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** "load 3.2 on 2 cores": how busy the machine was, since other work on it moves every figure. */
export function machineLoad(): string {
  return `load ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`;
}
