// The scheduler: a pure function from the queue and the devices to the assignments to make now.
// Same input, same output: nothing here depends on the order of `devices` or on the clock beyond
// `nowMs`.
//
// Rules, in order:
// - Ranking: effective priority (urgent > high > normal > low), then age (older first), then job id.
//   Aging: every AGING_STEP_MS of waiting raises a job one level (up to high), so a low job is not
//   starved forever by a stream of newer high ones.
// - A job's GPUs are all on one host, each free and matching its constraints: gpuName is a
//   case-insensitive substring of the GPU's name, minMemoryMiB holds for each GPU used; hostId and
//   labels (every label given must match) select the host. The lowest-index matching GPUs are taken.
// - Packing: of the hosts that fit, the one with the fewest free GPUs wins (ties: lowest hostId),
//   which keeps large holes open for large jobs.
// - Reservation (backfill): the best-ranked GPU job that does not fit anywhere now, but could on
//   some host once its busy GPUs end, reserves that host: of the hosts with enough matching GPUs
//   in all, the one with the most matching GPUs free now (ties: lowest hostId). Lower-ranked jobs
//   may not take GPUs there in this decision. Only that one job reserves. So a 4-GPU job waiting
//   behind a stream of 1-GPU jobs gets the first host that drains to 4 free GPUs, and aging makes
//   it the best-ranked waiting job in the end even when the stream has higher priority. Its wait
//   is bounded: nothing new starts on the reserved host, and the reservation only moves to a host
//   with more matching GPUs free, so the free count it waits on only grows as running jobs end.
// - A job that can never fit (no schedulable host has enough matching GPUs in all) reserves
//   nothing and blocks nobody.
// - `gpus: 0` jobs take no GPU and run on the first schedulable host (by hostId) that matches their
//   host constraints; a reservation does not keep them out.
// - Hosts that are not schedulable (not healthy, or draining) get nothing.
// - A GPU that a process outside labrig is using (`foreign`: someone's notebook, a run started by
//   hand) counts as busy until that process ends: no job is placed on it, and for a reservation it
//   counts like a GPU a job holds (it may end).
//
// Speed (10,000 queued jobs, 500 hosts of 8 GPUs in a few ms): hosts sit in one bitset per free-GPU
// count, so the fullest fitting host is found by walking set bits in hostId order; a job shape
// (GPU count and constraints) that found no host is not searched again in the same decision
// (capacity only shrinks within one); the walk stops once no GPU is free, a reservation is made and
// no GPU-less job is left.
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
  /** No labrig job holds it. */
  free: boolean;
  /** A process outside labrig is using it (the agent saw it): busy until that process ends. */
  foreign?: boolean;
}
export interface SchedDevice {
  hostId: string;
  /** Healthy and not draining. */
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
const priorityRank: Record<Priority, number> = { low: 0, normal: 1, high: 2, urgent: 3 };
/** Waiting lifts a job up to high, never to urgent: urgent is an admin's choice. */
const HIGHEST_AGED = 2;

export function effectiveRank(job: SchedJob, nowMs: number): number {
  const rank = priorityRank[job.priority];
  if (rank >= HIGHEST_AGED) return rank;
  const waited = Math.max(0, nowMs - job.createdAtMs);
  return Math.min(rank + Math.floor(waited / AGING_STEP_MS), HIGHEST_AGED);
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byAge = (a: SchedJob, b: SchedJob) => a.createdAtMs - b.createdAtMs || byId(a.id, b.id);

/**
 * The queue in the order jobs are considered. The dispatcher keeps its queue in age order, so this
 * is usually one pass that splits it into the four levels; any other order is sorted first.
 */
export function rankQueue(queue: SchedJob[], nowMs: number): SchedJob[] {
  // Inlined comparisons: this runs over the whole queue on every decision.
  let inAgeOrder = queue;
  for (let i = 1; i < queue.length; i++) {
    const a = queue[i - 1]!;
    const b = queue[i]!;
    if (a.createdAtMs > b.createdAtMs || (a.createdAtMs === b.createdAtMs && a.id > b.id)) {
      inAgeOrder = [...queue].sort(byAge);
      break;
    }
  }
  const levels: SchedJob[][] = [[], [], [], []];
  for (const job of inAgeOrder) levels[effectiveRank(job, nowMs)]!.push(job);
  return levels[3]!.concat(levels[2]!, levels[1]!, levels[0]!);
}

export function hostMatches(device: SchedDevice, c: Constraints): boolean {
  if (c.hostId !== undefined && c.hostId !== device.hostId) return false;
  if (c.labels) {
    for (const k in c.labels) if (device.labels[k] !== c.labels[k]) return false;
  }
  return true;
}

export function gpuMatches(gpu: SchedGpu, c: Constraints): boolean {
  if (c.gpuName !== undefined && !gpu.name.toLowerCase().includes(c.gpuName.toLowerCase())) return false;
  if (c.minMemoryMiB !== undefined && gpu.memoryTotalMiB < c.minMemoryMiB) return false;
  return true;
}

interface HostState {
  /** Position in hostId order: the tie-break, and the host's bit in the free-count sets. */
  ordinal: number;
  device: SchedDevice;
  /** Free GPUs, lowest index first. */
  free: SchedGpu[];
  /** All GPUs share name and memory, so one of them answers a GPU constraint for all. */
  uniform: boolean;
  reserved: boolean;
}

const NONE: SchedGpu[] = [];

/** The free GPUs of a host that a job's GPU constraints accept, lowest index first. */
function matchingFree(host: HostState, c: Constraints): SchedGpu[] {
  if (c.gpuName === undefined && c.minMemoryMiB === undefined) return host.free;
  if (host.uniform) return host.device.gpus.length > 0 && gpuMatches(host.device.gpus[0]!, c) ? host.free : NONE;
  return host.free.filter((g) => gpuMatches(g, c));
}

interface Fit {
  host: HostState;
  gpus: SchedGpu[];
  /** The GPUs are the host's first free ones (no GPU constraint filtered them). */
  fromAllFree: boolean;
}

/** Where `job` fits on `host` now, if it does. */
function fitOn(host: HostState, job: SchedJob): Fit | undefined {
  if (host.reserved || host.free.length < job.gpus || !hostMatches(host.device, job.constraints)) return undefined;
  const matching = matchingFree(host, job.constraints);
  return matching.length >= job.gpus ? { host, gpus: matching.slice(0, job.gpus), fromAllFree: matching === host.free } : undefined;
}

/** Hosts by their number of free GPUs: one bitset over host ordinals per count. */
class FreeCountIndex {
  private readonly sets: Uint32Array[];
  private readonly words: number;

  constructor(
    private readonly hosts: HostState[],
    readonly maxFree: number,
  ) {
    this.words = Math.ceil(hosts.length / 32);
    this.sets = Array.from({ length: maxFree + 1 }, () => new Uint32Array(this.words));
    for (const h of hosts) this.add(h);
  }

  add(h: HostState): void {
    if (h.free.length > 0 && !h.reserved) this.sets[h.free.length]![h.ordinal >>> 5]! |= 1 << (h.ordinal & 31);
  }

  remove(h: HostState): void {
    if (h.free.length > 0) this.sets[h.free.length]![h.ordinal >>> 5]! &= ~(1 << (h.ordinal & 31));
  }

  /** The first host where `job` fits, fewest free GPUs first, then hostId. */
  firstFit(job: SchedJob): Fit | undefined {
    for (let n = Math.max(1, job.gpus); n <= this.maxFree; n++) {
      const set = this.sets[n]!;
      for (let w = 0; w < this.words; w++) {
        let bits = set[w]!;
        while (bits !== 0) {
          const low = bits & -bits;
          const found = fitOn(this.hosts[(w << 5) + 31 - Math.clz32(low)]!, job);
          if (found !== undefined) return found;
          bits ^= low;
        }
      }
    }
    return undefined;
  }
}

export function scheduleJobs(queue: SchedJob[], devices: SchedDevice[], nowMs: number): Assignment[] {
  const hosts: HostState[] = devices
    .filter((d) => d.schedulable)
    .sort((a, b) => byId(a.hostId, b.hostId))
    .map((device, ordinal) => ({
      ordinal,
      device,
      free: device.gpus.filter((g) => g.free && !g.foreign).sort((a, b) => a.index - b.index),
      uniform: device.gpus.every((g) => g.name === device.gpus[0]!.name && g.memoryTotalMiB === device.gpus[0]!.memoryTotalMiB),
      reserved: false,
    }));
  if (hosts.length === 0) return [];
  const hostById = new Map(hosts.map((h) => [h.device.hostId, h]));
  const index = new FreeCountIndex(hosts, Math.max(0, ...hosts.map((h) => h.free.length)));

  let freeTotal = hosts.reduce((n, h) => n + h.free.length, 0);
  let gpuLessLeft = 0;
  for (const job of queue) if (job.gpus === 0) gpuLessLeft++;
  const unplaceable = new Set<string | number>();
  let reservationMade = false;
  const assignments: Assignment[] = [];

  for (const job of rankQueue(queue, nowMs)) {
    const c = job.constraints;
    if (job.gpus === 0) {
      gpuLessLeft--;
      const host = c.hostId !== undefined ? hostById.get(c.hostId) : hosts.find((h) => hostMatches(h.device, c));
      if (host && hostMatches(host.device, c)) assignments.push({ jobId: job.id, hostId: host.device.hostId, gpuIndices: [] });
      continue;
    }
    if (freeTotal === 0 && reservationMade) {
      if (gpuLessLeft === 0) break;
      continue;
    }
    const shape = shapeOf(job);
    if (unplaceable.has(shape)) continue;

    const pinned = c.hostId !== undefined ? hostById.get(c.hostId) : undefined;
    const best = c.hostId !== undefined ? pinned && fitOn(pinned, job) : index.firstFit(job);

    if (best) {
      const { host, gpus, fromAllFree } = best;
      index.remove(host);
      host.free = fromAllFree ? host.free.slice(gpus.length) : host.free.filter((g) => !gpus.includes(g));
      index.add(host);
      freeTotal -= gpus.length;
      assignments.push({ jobId: job.id, hostId: host.device.hostId, gpuIndices: gpus.map((g) => g.index) });
      continue;
    }

    unplaceable.add(shape);
    if (!reservationMade) {
      const candidate = reservationCandidate(hosts, job);
      if (candidate) {
        index.remove(candidate);
        candidate.reserved = true;
        freeTotal -= candidate.free.length;
        reservationMade = true;
      }
    }
  }
  return assignments;
}

/** The host that could run `job` once busy GPUs end: enough matching GPUs in all, most free now. */
function reservationCandidate(hosts: HostState[], job: SchedJob): HostState | undefined {
  let best: { host: HostState; free: number } | undefined;
  for (const host of hosts) {
    if (host.reserved || host.device.gpus.length < job.gpus || !hostMatches(host.device, job.constraints)) continue;
    let total = 0;
    for (const g of host.device.gpus) if (gpuMatches(g, job.constraints)) total++;
    if (total < job.gpus) continue;
    const free = matchingFree(host, job.constraints).length;
    if (!best || free > best.free) best = { host, free };
  }
  return best?.host;
}

/** What decides where a job can go: its GPU count and constraints (a number when it has none). */
function shapeOf(job: SchedJob): string | number {
  const c = job.constraints;
  if (c.hostId === undefined && c.labels === undefined && c.gpuName === undefined && c.minMemoryMiB === undefined) return job.gpus;
  const labels = c.labels ? Object.entries(c.labels).sort(([a], [b]) => byId(a, b)) : null;
  return JSON.stringify([job.gpus, c.hostId ?? null, labels, c.gpuName ?? null, c.minMemoryMiB ?? null]);
}
