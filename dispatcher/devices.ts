// The live view of the lab's agents: who they are (from the store), what their last heartbeat
// said, and their status. Heartbeats land here in memory; the store is written now and then, so
// thousands of heartbeats a second cost no disk writes.
import { type Device, type DeviceStatus, type GpuStats, type HeartbeatRequest, type RegisteredGpu, hasForeignProcesses } from "../core/api.js";
import type { AgentRow } from "./store.js";

export interface Thresholds {
  staleAfterMs: number;
  /** Silent this long: shown disconnected and given no new work; its jobs keep running. */
  disconnectAfterMs: number;
  /** Silent this long: its jobs are lost (requeued or failed), and it stops the old attempts when it is back. */
  lostAfterMs: number;
}

export interface LiveAgent {
  hostId: string;
  hostname: string | null;
  tokenHash: string;
  gpus: RegisteredGpu[];
  labels: Record<string, string>;
  agentVersion: string | null;
  agentUrl: string | null;
  /** What the dispatcher shows this agent's local server to relay a live log (null: an older agent). */
  relayToken: string | null;
  draining: boolean;
  registeredAt: string;
  lastSeenMs: number;
  lastStats: HeartbeatRequest | null;
  /** true when lastSeen changed since it was last written to the store. */
  dirty: boolean;
}

export function deviceStatus(a: Pick<LiveAgent, "lastSeenMs" | "draining">, nowMs: number, t: Thresholds): DeviceStatus {
  const silent = nowMs - a.lastSeenMs;
  if (silent >= t.disconnectAfterMs) return "disconnected";
  if (a.draining) return "draining";
  if (silent >= t.staleAfterMs) return "stale";
  return "healthy";
}

export class DeviceRegistry {
  private readonly agents = new Map<string, LiveAgent>();
  private readonly byTokenHash = new Map<string, string>();

  constructor(readonly thresholds: Thresholds) {}

  /** Loads agents from the store. Each counts as seen at `startedMs` at the latest, so a restart does not declare every host lost. */
  load(rows: AgentRow[], startedMs: number): void {
    for (const r of rows) {
      const seen = r.last_seen_at ? Date.parse(r.last_seen_at) : 0;
      this.put({
        hostId: r.host_id,
        hostname: r.hostname,
        tokenHash: r.token_hash,
        gpus: JSON.parse(r.gpus),
        labels: JSON.parse(r.labels),
        agentVersion: r.agent_version,
        agentUrl: r.agent_url,
        relayToken: r.relay_token,
        draining: r.draining === 1,
        registeredAt: r.registered_at,
        lastSeenMs: Math.max(seen, startedMs),
        lastStats: r.last_stats ? JSON.parse(r.last_stats) : null,
        dirty: false,
      });
    }
  }

  put(a: LiveAgent): void {
    const old = this.agents.get(a.hostId);
    if (old) this.byTokenHash.delete(old.tokenHash);
    this.agents.set(a.hostId, a);
    this.byTokenHash.set(a.tokenHash, a.hostId);
  }

  get(hostId: string): LiveAgent | undefined {
    return this.agents.get(hostId);
  }

  hostForTokenHash(hash: string): string | undefined {
    return this.byTokenHash.get(hash);
  }

  all(): LiveAgent[] {
    return [...this.agents.values()].sort((a, b) => (a.hostId < b.hostId ? -1 : 1));
  }

  status(hostId: string, nowMs: number): DeviceStatus | undefined {
    const a = this.agents.get(hostId);
    return a ? deviceStatus(a, nowMs, this.thresholds) : undefined;
  }

  /** Whether a host has been silent past the lost threshold (an unknown host counts as lost). */
  isLost(hostId: string, nowMs: number): boolean {
    const a = this.agents.get(hostId);
    return !a || nowMs - a.lastSeenMs >= this.thresholds.lostAfterMs;
  }

  /** Records a heartbeat at the dispatcher's receipt time `nowMs`; returns the status the host had before it. */
  heartbeat(hostId: string, hb: HeartbeatRequest, nowMs: number): DeviceStatus | undefined {
    const a = this.agents.get(hostId);
    if (!a) return undefined;
    const before = deviceStatus(a, nowMs, this.thresholds);
    a.lastSeenMs = nowMs;
    a.lastStats = hb;
    a.dirty = true;
    return before;
  }

  /** The agents whose last-seen changed since the last call, marked clean. */
  takeDirty(): LiveAgent[] {
    const out: LiveAgent[] = [];
    for (const a of this.agents.values()) {
      if (a.dirty) {
        a.dirty = false;
        out.push(a);
      }
    }
    return out;
  }
}

/** The API's view of a device, from the live agent and the jobs that hold its GPUs. */
export function toDevice(a: LiveAgent, activeJobs: { id: string; gpuIndices: number[] }[], nowMs: number, t: Thresholds): Device {
  const busy = new Set<number>();
  for (const j of activeJobs) for (const i of j.gpuIndices) busy.add(i);
  const stats = new Map<number, GpuStats>((a.lastStats?.gpus ?? []).map((g) => [g.index, g]));
  const gpus = a.gpus.map((g) => {
    const s = stats.get(g.index);
    return {
      index: g.index,
      uuid: g.uuid,
      name: g.name,
      memoryTotalMiB: s?.memoryTotalMiB ?? g.memoryTotalMiB,
      memoryUsedMiB: s?.memoryUsedMiB ?? null,
      utilizationPct: s?.utilizationPct ?? null,
      temperatureC: s?.temperatureC ?? null,
      powerW: s?.powerW ?? null,
      busy: busy.has(g.index),
      ...(s?.processes ? { processes: s.processes } : {}),
    };
  });
  const status = deviceStatus(a, nowMs, t);
  return {
    hostId: a.hostId,
    hostname: a.hostname,
    status,
    draining: a.draining,
    lastSeenAt: a.lastSeenMs > 0 ? new Date(a.lastSeenMs).toISOString() : null,
    registeredAt: a.registeredAt,
    agentVersion: a.agentVersion,
    agentUrl: a.agentUrl,
    labels: a.labels,
    gpus,
    freeGpus: status === "healthy" ? gpus.filter((g) => !g.busy && !hasForeignProcesses(g)).length : 0,
    runningJobs: activeJobs.map((j) => j.id),
    cpuPct: a.lastStats?.cpuPct ?? null,
    memoryUsedMiB: a.lastStats?.memoryUsedMiB ?? null,
    memoryTotalMiB: a.lastStats?.memoryTotalMiB ?? null,
    diskFreeGiB: a.lastStats?.diskFreeGiB ?? null,
    gpuProblem: a.lastStats?.gpuProblem ?? null,
  };
}
