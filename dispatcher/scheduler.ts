// The scheduler: a pure function from the queue and the devices to the assignments to make now.
//
// Rules, in order:
// - Jobs are ranked by priority (high > normal > low), then by age (older first), then by id.
//   Aging: every AGING_STEP_MS of waiting raises a job one priority level, so a low job is never
//   starved forever by a stream of newer high ones.
// - A job's GPUs are all on one host, each free and matching its constraints (gpuName as a
//   case-insensitive substring, minMemoryMiB per GPU); hostId and labels select hosts.
// - Packing: of the hosts that fit, the one with the fewest free GPUs wins (ties: hostId), which
//   keeps large holes open for large jobs.
// - Reservation (backfill): when the best-ranked GPU job does not fit anywhere right now but could
//   fit on some host once its GPUs free up, it reserves the candidate host with the most matching
//   free GPUs; lower-ranked jobs may not take GPUs there. So a 4-GPU job waiting behind a stream of
//   1-GPU jobs gets the next host that drains to 4 free GPUs. Only the first such job reserves.
// - `gpus: 0` jobs take no GPU and run on any schedulable host that matches their constraints.
// - A job that can never fit (no schedulable host has enough matching GPUs in total) blocks nobody.
// - Hosts that are not schedulable (not healthy, or draining) get nothing.
import type { Constraints, Priority } from "../core/api.js";

export interface SchedJob {
  id: string;
  priority: Priority;
  createdAtMs: number;
  gpus: number;
  constraints: Constraints;
}
export interface SchedGpu {
  index: number;
  name: string;
  memoryTotalMiB: number;
  free: boolean;
}
export interface SchedDevice {
  hostId: string;
  schedulable: boolean;
  labels: Record<string, string>;
  gpus: SchedGpu[];
}
export interface Assignment {
  jobId: string;
  hostId: string;
  gpuIndices: number[];
}

export const AGING_STEP_MS = 30 * 60 * 1000;
const priorityRank: Record<Priority, number> = { low: 0, normal: 1, high: 2 };

export function effectiveRank(job: SchedJob, nowMs: number): number {
  const waited = Math.max(0, nowMs - job.createdAtMs);
  return Math.min(priorityRank[job.priority] + Math.floor(waited / AGING_STEP_MS), priorityRank.high);
}

const byAge = (a: SchedJob, b: SchedJob) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The queue in the order jobs are considered. The dispatcher keeps its queue in age order, so this
 * is usually one pass that splits it into the three priority levels; any other order is sorted first.
 */
export function rankQueue(queue: SchedJob[], nowMs: number): SchedJob[] {
  let inAgeOrder = queue;
  for (let i = 1; i < queue.length; i++) {
    if (byAge(queue[i - 1]!, queue[i]!) > 0) {
      inAgeOrder = [...queue].sort(byAge);
      break;
    }
  }
  const levels: SchedJob[][] = [[], [], []];
  for (const job of inAgeOrder) levels[effectiveRank(job, nowMs)]!.push(job);
  return [...levels[2]!, ...levels[1]!, ...levels[0]!];
}

interface HostState {
  device: SchedDevice;
  free: SchedGpu[];
  reserved: boolean;
}

export function scheduleJobs(queue: SchedJob[], devices: SchedDevice[], nowMs: number): Assignment[] {
  const hosts: HostState[] = devices
    .filter((d) => d.schedulable)
    .sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0))
    .map((device) => ({ device, free: device.gpus.filter((g) => g.free).sort((a, b) => a.index - b.index), reserved: false }));
  if (hosts.length === 0) return [];
  const byId = new Map(hosts.map((h) => [h.device.hostId, h]));

  // Hosts by their number of free GPUs, so the fullest host that fits is found without a scan.
  const maxFree = Math.max(0, ...hosts.map((h) => h.free.length));
  const buckets: Set<HostState>[] = Array.from({ length: maxFree + 1 }, () => new Set());
  for (const h of hosts) if (h.free.length > 0) buckets[h.free.length]!.add(h);
  const unbucket = (h: HostState) => buckets[h.free.length]?.delete(h);

  let freeTotal = hosts.reduce((n, h) => n + h.free.length, 0);
  const assignments: Assignment[] = [];
  // Within one call, a job shape that found no host finds none later either (capacity only shrinks).
  const unplaceable = new Set<string>();
  let reservationMade = false;

  const fits = (host: HostState, job: SchedJob): SchedGpu[] | undefined => {
    if (host.reserved || host.free.length < job.gpus || !hostMatches(host.device, job.constraints)) return undefined;
    const c = job.constraints;
    const matching = c.gpuName === undefined && c.minMemoryMiB === undefined ? host.free : host.free.filter((g) => gpuMatches(g, c));
    return matching.length >= job.gpus ? matching : undefined;
  };

  for (const job of rankQueue(queue, nowMs)) {
    if (job.gpus === 0) {
      const host = job.constraints.hostId !== undefined ? byId.get(job.constraints.hostId) : hosts.find((h) => hostMatches(h.device, job.constraints));
      if (host && hostMatches(host.device, job.constraints)) assignments.push({ jobId: job.id, hostId: host.device.hostId, gpuIndices: [] });
      continue;
    }
    if (freeTotal === 0 && reservationMade) continue;
    const shape = shapeKey(job);
    if (unplaceable.has(shape)) continue;

    let best: { host: HostState; gpus: SchedGpu[] } | undefined;
    if (job.constraints.hostId !== undefined) {
      const host = byId.get(job.constraints.hostId);
      const gpus = host && fits(host, job);
      if (host && gpus) best = { host, gpus };
    } else {
      search: for (let n = job.gpus; n <= maxFree; n++) {
        for (const host of buckets[n]!) {
          const gpus = fits(host, job);
          if (gpus) {
            best = { host, gpus };
            break search;
          }
        }
      }
    }

    if (best) {
      const taken = best.gpus.slice(0, job.gpus);
      const takenSet = new Set(taken.map((g) => g.index));
      unbucket(best.host);
      best.host.free = best.host.free.filter((g) => !takenSet.has(g.index));
      if (best.host.free.length > 0) buckets[best.host.free.length]!.add(best.host);
      freeTotal -= taken.length;
      assignments.push({ jobId: job.id, hostId: best.host.device.hostId, gpuIndices: taken.map((g) => g.index) });
      continue;
    }

    unplaceable.add(shape);
    if (!reservationMade) {
      const candidate = reservationCandidate(hosts, job);
      if (candidate) {
        unbucket(candidate);
        candidate.reserved = true;
        freeTotal -= candidate.free.length;
        reservationMade = true;
      }
    }
  }
  return assignments;
}

/** The host that could run `job` once busy GPUs free up: enough matching GPUs in all, most free now. */
function reservationCandidate(hosts: HostState[], job: SchedJob): HostState | undefined {
  let best: { host: HostState; free: number } | undefined;
  for (const host of hosts) {
    if (host.reserved || !hostMatches(host.device, job.constraints)) continue;
    const total = host.device.gpus.filter((g) => gpuMatches(g, job.constraints)).length;
    if (total < job.gpus) continue;
    const free = host.free.filter((g) => gpuMatches(g, job.constraints)).length;
    if (!best || free > best.free) best = { host, free };
  }
  return best?.host;
}

export function hostMatches(device: SchedDevice, c: Constraints): boolean {
  if (c.hostId !== undefined && c.hostId !== device.hostId) return false;
  if (c.labels) {
    for (const [k, v] of Object.entries(c.labels)) if (device.labels[k] !== v) return false;
  }
  return true;
}

export function gpuMatches(gpu: SchedGpu, c: Constraints): boolean {
  if (c.gpuName !== undefined && !gpu.name.toLowerCase().includes(c.gpuName.toLowerCase())) return false;
  if (c.minMemoryMiB !== undefined && gpu.memoryTotalMiB < c.minMemoryMiB) return false;
  return true;
}

function shapeKey(job: SchedJob): string {
  const c = job.constraints;
  const labels = c.labels ? Object.entries(c.labels).sort().map(([k, v]) => `${k}=${v}`).join(",") : "";
  return `${job.gpus}|${c.hostId ?? ""}|${labels}|${c.gpuName ?? ""}|${c.minMemoryMiB ?? ""}`;
}
