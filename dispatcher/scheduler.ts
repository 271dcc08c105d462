// The scheduler: a pure function from the queue, the devices and who has used what lately to the
// assignments to make now, and why the first waiting jobs wait. Same input, same output: nothing
// here depends on the order of `queue` or `devices`, or on the clock beyond `nowMs`.
//
// Rules, in order:
// - Ranking: effective priority (urgent > high > normal > low), then fair share, then age (older
//   first), then job id. Aging: every AGING_STEP_MS of waiting raises a job one level (up to high),
//   so a low job is not starved forever by a stream of newer high ones.
// - Fair share: every owner is an account (jobs without one share the account NO_OWNER). An
//   account's fair-share key is (usage + HELD_GPU_HOURS × GPUs this decision has given it) / share,
//   lower first: usage is its recent GPU-hours as the caller decayed them, running jobs' hours so
//   far included (so what someone holds now counts by how long they have held it), share its
//   weight (default 1; anything but a positive number counts as 1). The key is recomputed as the
//   decision goes: after each assignment the account's next job is ranked again against everyone
//   else's, so one decision with many free GPUs alternates between people of like usage. Within a
//   level, the next job considered is the oldest one of the account with the lowest key (ties: the
//   older of the accounts' next jobs, then job id). Someone with no recent use has key 0 and goes
//   before the heavy user's next job at the same level, however many that user has queued;
//   GPU-less jobs change no key. With two GPUs busy with alice's jobs and bob's two queued behind
//   her twenty, the first GPU to free goes to bob, and so does the second: alice's two finished
//   jobs weigh more than the time bob's first has run.
// - Owner limits (`limits`): a job whose account, with it, would hold more GPUs than its
//   maxGpusPerOwner, or run more jobs than its maxRunningJobsPerOwner (held now, `runningGpusByOwner`
//   / `runningJobsByOwner`, plus this decision's), is skipped in this decision: not placed, reserves
//   nothing, blocks nobody. A GPU-less job is held only by the job limit.
// - A job fits a host when the host matches its host constraints (hostId; every label given must
//   match), has enough free GPUs matching its GPU constraints (gpuName is a case-insensitive
//   substring of the GPU's name, minMemoryMiB holds for each GPU used), and its cpus and memoryMiB fit
//   in the host's free CPU and memory: `cpus`/`memoryMiB` less `usedCpus`/`usedMemoryMiB` and less
//   what this decision placed there. A host that reports no CPU or memory figure (absent, NaN or
//   Infinity) is not limited in it. A job that names no cpus/memoryMiB asks none. Cores and memory
//   are never oversubscribed. A job's GPUs are all on one host; the lowest-index matching free
//   GPUs are taken.
// - Packing: a GPU job goes to the fitting host with the fewest free GPUs (ties: lowest hostId), which
//   keeps large holes open for large jobs. A GPU-less job goes to the fitting host with the most free
//   CPU (unlimited counts as most), ties: most free memory, then lowest hostId.
// - Reservation (backfill): the best-ranked GPU job (not skipped for a limit) that fits nowhere
//   now but would fit some host once the jobs and processes there end (enough matching GPUs in
//   all, and cpus and memoryMiB within the host's totals) reserves that host: of those hosts, the
//   one with the most matching GPUs free now (ties: lowest hostId). Only that one job reserves.
//   Lower-ranked GPU jobs may not take GPUs there in this decision, nor may GPU-less jobs that
//   would take limited CPU or memory there (one that asks only for what the host does not limit
//   may). So a 4-GPU job waiting behind a stream of 1-GPU jobs gets the first host that drains to
//   4 free GPUs, and aging makes it the best-ranked waiting job in the end even when the stream has
//   higher priority. Its wait is bounded: nothing that takes what it waits for starts on the
//   reserved host, and the reservation only moves to a host with more matching GPUs free, so what
//   it waits on only grows as running jobs end. GPU-less jobs never reserve.
// - A job that can never fit (no schedulable host could hold it, as above) reserves nothing and
//   blocks nobody. `neverFits` says why, for the submit path, over all the hosts it is given.
// - Hosts that are not schedulable (not healthy, or draining) get nothing.
// - A GPU that a process outside labrig is using (`foreign`: someone's notebook, a run started by
//   hand) counts as busy until that process ends: no job is placed on it, and for a reservation it
//   counts like a GPU a job holds (it may end).
// - Reasons: the first `maxReasons` (default 200) jobs not placed, in the order they were
//   considered, get a WaitReason in `waiting`; the rest get none, which keeps a decision over 10,000
//   jobs cheap. It is the first that holds, as things stood at the job's turn: owner-limit (which
//   limit, its max, what the account holds); reserving (the job holds the reservation); never-fits
//   (neverFits over all devices has a reason) or no-schedulable-host (only unschedulable hosts could
//   hold it); reserved-for (it would fit the reserved host now, were it not reserved); fair-share
//   (jobs of another account at its level, younger than it, were considered before it: `behind` is
//   the account with most such jobs, ties: lowest name, `jobs` their count); otherwise no-fit-now,
//   with the most matching free GPUs on a schedulable host that matches its host constraints
//   (`largestFreeBlock`) and what is short: "gpus" when no such host has enough, else "cpus" when
//   none of those has the cores, else "memory".
//
// Speed (10,000 queued jobs of 40 people, 520 hosts, in about 2 ms; few allocations, so garbage
// collections are rare and short): one pass copies what the walk reads of each job into typed
// arrays and a counting sort splits the queue into (tier, account) runs in age order; a heap over
// accounts picks the next job; hosts sit in one bitset per free-GPU count, so the fullest fitting
// host is found by walking set bits in hostId order, and in an array of ordinals by free CPU for
// GPU-less jobs; a request (constraints, GPUs, cpus, memory) that found no host marks every
// request at least as large as not fitting for the rest of the decision (capacity only shrinks
// within one), and one that found no host without constraints does so for every constraint. Once
// every reason is given, an account at its job limit is not walked further, one at its GPU limit
// (and every account, once no GPU is free and the reservation is made) only for its GPU-less jobs,
// and the walk stops when no GPU-less job is left.
import type { Constraints, Priority } from "../core/api.js";

export interface SchedJob {
  id: string;
  priority: Priority;
  createdAtMs: number;
  gpus: number;
  constraints: Constraints;
  /** CPU cores it asks for on its host; absent (or not positive): none. Callers fill the default. */
  cpus?: number;
  /** Host memory it asks for, MiB; absent (or not positive): none. */
  memoryMiB?: number;
  /** Whose job it is, for fair share and limits; null or absent: the NO_OWNER account. */
  owner?: string | null;
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
  /** CPU cores labrig jobs may use on the host in all; absent, NaN or Infinity: unknown, not limited. */
  cpus?: number;
  /** Host memory labrig jobs may use in all, MiB; absent, NaN or Infinity: unknown, not limited. */
  memoryMiB?: number;
  /** Cores the labrig jobs assigned to or running on the host hold now (absent: 0). */
  usedCpus?: number;
  /** Memory the labrig jobs assigned to or running on the host hold now, MiB (absent: 0). */
  usedMemoryMiB?: number;
}
export interface Assignment {
  jobId: string;
  hostId: string;
  gpuIndices: number[];
}

/** A per-account limit: `owners[name]` where given, else `default`, else none. */
export interface OwnerLimit {
  default?: number;
  owners?: Record<string, number>;
}
export interface OwnerLimits {
  /** GPUs an account's jobs may hold at once (assigned or running). */
  maxGpusPerOwner?: OwnerLimit;
  /** Jobs an account may have assigned or running at once, GPU-less ones included. */
  maxRunningJobsPerOwner?: OwnerLimit;
}

export interface ScheduleInput {
  /** The queued jobs; in age order (oldest first, then id) is fastest, any order is accepted. */
  queue: SchedJob[];
  devices: SchedDevice[];
  nowMs: number;
  /** Each account's recent GPU-hours, decay already applied (absent: 0). */
  usage?: Record<string, number>;
  /** Each account's fair-share weight (absent: 1). */
  shares?: Record<string, number>;
  /** GPUs each account's assigned and running jobs hold now (absent: 0). */
  runningGpusByOwner?: Record<string, number>;
  /** How many jobs each account has assigned or running now (absent: 0). */
  runningJobsByOwner?: Record<string, number>;
  limits?: OwnerLimits;
  /** How many waiting jobs, in rank order, get a reason (default DEFAULT_MAX_REASONS). */
  maxReasons?: number;
}

/** Why a queued job was not placed in a decision; owners are as the job has them (null: none). */
export type WaitReason =
  | { kind: "owner-limit"; owner: string | null; limit: "gpus" | "jobs"; max: number; holding: number }
  | { kind: "reserving"; hostId: string }
  | { kind: "never-fits"; why: string }
  | { kind: "no-schedulable-host" }
  | { kind: "reserved-for"; jobId: string; hostId: string }
  | { kind: "fair-share"; behind: string | null; jobs: number }
  | { kind: "no-fit-now"; largestFreeBlock: number; short: "gpus" | "cpus" | "memory" };

export interface ScheduleDecision {
  /** In the order the jobs were considered. */
  assignments: Assignment[];
  /** Reasons for the first `maxReasons` jobs not placed, by job id; other waiting jobs are absent. */
  waiting: Record<string, WaitReason>;
  /** The host held for the best-ranked GPU job that fits nowhere now, if any. */
  reservation: { jobId: string; hostId: string } | null;
}

export const AGING_STEP_MS = 30 * 60 * 1000;
/** The account of jobs without an owner, in `usage`, `shares`, `running…ByOwner` and limits. */
export const NO_OWNER = "";
/** How many GPU-hours of use a GPU an account holds now counts as in its fair-share key. */
export const HELD_GPU_HOURS = 1;
export const DEFAULT_MAX_REASONS = 200;

const priorityRank: Record<Priority, number> = { low: 0, normal: 1, high: 2, urgent: 3 };
/** Waiting lifts a job up to high, never to urgent: urgent is an admin's choice. */
const HIGHEST_AGED = 2;

export function effectiveRank(job: SchedJob, nowMs: number): number {
  const rank = priorityRank[job.priority];
  if (rank >= HIGHEST_AGED) return rank;
  const waited = Math.max(0, nowMs - job.createdAtMs);
  return Math.min(rank + Math.floor(waited / AGING_STEP_MS), HIGHEST_AGED);
}

/** An account's fair-share key: lower goes first. Both arguments as the header says. */
export function fairShareKey(usage: number, heldGpus: number, share: number): number {
  return (usage + HELD_GPU_HOURS * heldGpus) / share;
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byAge = (a: SchedJob, b: SchedJob) => a.createdAtMs - b.createdAtMs || byId(a.id, b.id);
/** `a` comes before `b` in age order: older, or as old with a lower id. */
const olderThan = (a: SchedJob, b: SchedJob) => a.createdAtMs < b.createdAtMs || (a.createdAtMs === b.createdAtMs && a.id < b.id);

/**
 * The queue by effective priority, then age, then id: the order before fair share, which is what
 * the Queue view shows when no one's use is known. The dispatcher keeps its queue in age order, so
 * this is usually one pass that splits it into the four levels; any other order is sorted first.
 */
export function rankQueue(queue: SchedJob[], nowMs: number): SchedJob[] {
  const jobs = isInAgeOrder(queue) ? queue : [...queue].sort(byAge);
  const tiers = new Uint8Array(jobs.length);
  const start = [0, 0, 0, 0, 0];
  for (let i = 0; i < jobs.length; i++) start[(tiers[i] = 3 - effectiveRank(jobs[i]!, nowMs)) + 1]!++;
  for (let t = 1; t <= 4; t++) start[t]! += start[t - 1]!;
  const ranked = new Array<SchedJob>(jobs.length);
  for (let i = 0; i < jobs.length; i++) ranked[start[tiers[i]!]!++] = jobs[i]!;
  return ranked;
}

function isInAgeOrder(queue: SchedJob[]): boolean {
  for (let i = 1; i < queue.length; i++) if (olderThan(queue[i]!, queue[i - 1]!)) return false;
  return true;
}

export function hostMatches(device: Pick<SchedDevice, "hostId" | "labels">, c: Constraints): boolean {
  if (c.hostId !== undefined && c.hostId !== device.hostId) return false;
  if (c.labels) {
    for (const k in c.labels) if (device.labels[k] !== c.labels[k]) return false;
  }
  return true;
}

export function gpuMatches(gpu: Pick<SchedGpu, "name" | "memoryTotalMiB">, c: Constraints): boolean {
  if (c.gpuName !== undefined && !gpu.name.toLowerCase().includes(c.gpuName.toLowerCase())) return false;
  if (c.minMemoryMiB !== undefined && gpu.memoryTotalMiB < c.minMemoryMiB) return false;
  return true;
}

/** A host's CPU or memory total as the scheduler reads it: unknown is unlimited. */
const capacity = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? Infinity : x);
/** A job's CPU or memory request: absent or not positive asks none. */
const request = (x: number | undefined) => (x !== undefined && x > 0 ? x : 0);

/**
 * Why `job` could run on none of `devices`, however long it waited, or null when some host could
 * hold it: a host named that no device is, labels no host has, more matching GPUs, CPUs or memory
 * than any host has. Unschedulable hosts count (draining ends); CPU and memory a host does not
 * report count as enough. For the submit path to refuse a job with the reason.
 */
export function neverFits(job: SchedJob, devices: SchedDevice[]): string | null {
  const c = job.constraints;
  if (devices.length === 0) return "no host is registered yet";
  let hosts = devices;
  if (c.hostId !== undefined) {
    hosts = devices.filter((d) => d.hostId === c.hostId);
    if (hosts.length === 0) return `no host is called "${c.hostId}"`;
  }
  const where = c.hostId !== undefined ? `host "${c.hostId}"` : "any host";
  if (c.labels && Object.keys(c.labels).length > 0) {
    const labelled = hosts.filter((d) => hostMatches(d, { labels: c.labels }));
    if (labelled.length === 0) {
      const wanted = Object.entries(c.labels).map(([k, v]) => `${k}=${v}`);
      const one = wanted.length === 1;
      return c.hostId !== undefined
        ? `host "${c.hostId}" does not have the label${one ? "" : "s"} ${wanted.join(", ")}`
        : `no host has ${one ? "the label" : "all the labels"} ${wanted.join(", ")}`;
    }
    hosts = labelled;
  }
  const gpus = job.gpus;
  if (gpus > 0) {
    const counts = hosts.map((d) => d.gpus.filter((g) => gpuMatches(g, c)).length);
    const most = Math.max(...counts);
    if (most < gpus) {
      const filter = [c.gpuName !== undefined ? `named like "${c.gpuName}"` : "", c.minMemoryMiB !== undefined ? `with at least ${c.minMemoryMiB} MiB` : ""].filter(Boolean).join(" and ");
      return filter
        ? `needs ${gpus} GPU${gpus === 1 ? "" : "s"} ${filter}; the most ${where} has is ${most}`
        : `needs ${gpus} GPU${gpus === 1 ? "" : "s"}; the most ${where} has is ${most}`;
    }
    hosts = hosts.filter((_, i) => counts[i]! >= gpus);
  }
  const cpus = request(job.cpus);
  const mostCpus = Math.max(...hosts.map((d) => capacity(d.cpus)));
  if (mostCpus < cpus) return `needs ${cpus} CPU${cpus === 1 ? "" : "s"}; the most ${gpus > 0 ? "a host with its GPUs" : where} has is ${mostCpus}`;
  hosts = hosts.filter((d) => capacity(d.cpus) >= cpus);
  const memory = request(job.memoryMiB);
  const mostMemory = Math.max(...hosts.map((d) => capacity(d.memoryMiB)));
  if (mostMemory < memory) return `needs ${mib(memory)} of memory; the most ${gpus > 0 || cpus > 0 ? "a host with its GPUs and CPUs" : where} has is ${mib(mostMemory)}`;
  return null;
}

const mib = (n: number) => (n >= 1024 ? `${Math.round((n / 1024) * 10) / 10} GiB` : `${n} MiB`);

// ---- one decision ----

interface HostState {
  /** Position in hostId order: the tie-break, and the host's bit in the free-count sets. */
  ordinal: number;
  device: SchedDevice;
  /** The decision's one list of free GPUs; this host's still free ones are [firstFree, freeEnd), lowest index first. */
  freeGpus: SchedGpu[];
  firstFree: number;
  freeEnd: number;
  freeCount: number;
  /** All GPUs share name and memory, so one of them answers a GPU constraint for all. */
  uniform: boolean;
  /** The lower-cased name of the host's first GPU, once a gpuName constraint asked ("" before). */
  lowerName: string;
  freeCpus: number;
  freeMemoryMiB: number;
  cpusLimited: boolean;
  memoryLimited: boolean;
  reserved: boolean;
}

/** What decides where a job may go besides its size: its constraints, read once per decision. */
interface JobClass {
  /** Its number in the decision. */
  id: number;
  hostId: string | undefined;
  labels: Record<string, string> | undefined;
  gpuNameLower: string | undefined;
  minMemoryMiB: number | undefined;
  gpuFilter: boolean;
  /** Minimal (gpus, cpus, memoryMiB) requests, flat, that fit no unreserved host now. */
  noFitNow: number[];
  /** Minimal requests, flat, that no schedulable host could ever hold. */
  neverHere: number[];
}

function newClass(id: number, c: Constraints): JobClass {
  return {
    id,
    hostId: c.hostId,
    labels: c.labels && Object.keys(c.labels).length > 0 ? c.labels : undefined,
    gpuNameLower: c.gpuName?.toLowerCase(),
    minMemoryMiB: c.minMemoryMiB,
    gpuFilter: c.gpuName !== undefined || c.minMemoryMiB !== undefined,
    noFitNow: [],
    neverHere: [],
  };
}

/** Some recorded request is no larger than this one in every way (so this one fails too). */
function covered(front: number[], gpus: number, cpus: number, memory: number): boolean {
  for (let i = 0; i < front.length; i += 3) if (front[i]! <= gpus && front[i + 1]! <= cpus && front[i + 2]! <= memory) return true;
  return false;
}

function record(front: number[], gpus: number, cpus: number, memory: number): void {
  let w = 0;
  for (let i = 0; i < front.length; i += 3) {
    if (front[i]! >= gpus && front[i + 1]! >= cpus && front[i + 2]! >= memory) continue; // the new one covers it
    front[w++] = front[i]!;
    front[w++] = front[i + 1]!;
    front[w++] = front[i + 2]!;
  }
  front.length = w;
  front.push(gpus, cpus, memory);
}

function hostMatchesClass(h: HostState, cls: JobClass): boolean {
  if (cls.hostId !== undefined && cls.hostId !== h.device.hostId) return false;
  const labels = cls.labels;
  if (labels !== undefined) {
    const own = h.device.labels;
    for (const k in labels) if (own[k] !== labels[k]) return false;
  }
  return true;
}

const lowerNameOf = (h: HostState) => h.lowerName || (h.lowerName = h.device.gpus[0]!.name.toLowerCase());

function gpuOk(lowerName: string, memoryTotalMiB: number, cls: JobClass): boolean {
  if (cls.gpuNameLower !== undefined && !lowerName.includes(cls.gpuNameLower)) return false;
  return cls.minMemoryMiB === undefined || memoryTotalMiB >= cls.minMemoryMiB;
}

/** How many of the host's free GPUs the class accepts. */
function matchingFree(h: HostState, cls: JobClass): number {
  if (!cls.gpuFilter) return h.freeCount;
  if (h.uniform) return h.device.gpus.length > 0 && gpuOk(lowerNameOf(h), h.device.gpus[0]!.memoryTotalMiB, cls) ? h.freeCount : 0;
  let n = 0;
  for (let i = h.firstFree; i < h.freeEnd; i++) if (gpuOk(h.freeGpus[i]!.name.toLowerCase(), h.freeGpus[i]!.memoryTotalMiB, cls)) n++;
  return n;
}

/** How many of the host's GPUs, busy or not, the class accepts. */
function matchingTotal(h: HostState, cls: JobClass): number {
  const gpus = h.device.gpus;
  if (!cls.gpuFilter) return gpus.length;
  if (h.uniform) return gpus.length > 0 && gpuOk(lowerNameOf(h), gpus[0]!.memoryTotalMiB, cls) ? gpus.length : 0;
  let n = 0;
  for (const g of gpus) if (gpuOk(g.name.toLowerCase(), g.memoryTotalMiB, cls)) n++;
  return n;
}

/** The job fits the host now, the reservation aside. */
function fitsNow(h: HostState, cls: JobClass, gpus: number, cpus: number, memory: number): boolean {
  return h.freeCount >= gpus && h.freeCpus >= cpus && h.freeMemoryMiB >= memory && hostMatchesClass(h, cls) && (gpus === 0 || matchingFree(h, cls) >= gpus);
}

/** The job would fit the host once everything running there ended. */
function fitsEmpty(h: HostState, cls: JobClass, gpus: number, cpus: number, memory: number): boolean {
  return h.device.gpus.length >= gpus && capacity(h.device.cpus) >= cpus && capacity(h.device.memoryMiB) >= memory && hostMatchesClass(h, cls) && (gpus === 0 || matchingTotal(h, cls) >= gpus);
}

/** A GPU-less job may use the reserved host only where it takes nothing limited there. */
const gpuLessMayUseReserved = (h: HostState, cpus: number, memory: number) => (cpus === 0 || !h.cpusLimited) && (memory === 0 || !h.memoryLimited);

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
    if (h.freeCount > 0 && !h.reserved) this.sets[h.freeCount]![h.ordinal >>> 5]! |= 1 << (h.ordinal & 31);
  }

  remove(h: HostState): void {
    if (h.freeCount > 0) this.sets[h.freeCount]![h.ordinal >>> 5]! &= ~(1 << (h.ordinal & 31));
  }

  /** The first unreserved host where the job fits, fewest free GPUs first, then hostId. */
  firstFit(cls: JobClass, gpus: number, cpus: number, memory: number): HostState | undefined {
    for (let n = gpus; n <= this.maxFree; n++) {
      const set = this.sets[n]!;
      for (let w = 0; w < this.words; w++) {
        let bits = set[w]!;
        while (bits !== 0) {
          const low = bits & -bits;
          const h = this.hosts[(w << 5) + 31 - Math.clz32(low)]!;
          if (fitsNow(h, cls, gpus, cpus, memory)) return h;
          bits ^= low;
        }
      }
    }
    return undefined;
  }
}

/** `a` comes before `b` for a GPU-less job: more free CPU, then more free memory, then hostId. */
function roomier(a: HostState, b: HostState): boolean {
  if (a.freeCpus !== b.freeCpus) return a.freeCpus > b.freeCpus;
  if (a.freeMemoryMiB !== b.freeMemoryMiB) return a.freeMemoryMiB > b.freeMemoryMiB;
  return a.ordinal < b.ordinal;
}

/** Hosts from most free CPU down, for GPU-less jobs; kept in order as hosts fill. */
class RoomOrder {
  /** Host ordinals, roomiest first: a typed array, so moving a host is one memmove. */
  private readonly order: Int32Array;

  constructor(private readonly hosts: HostState[]) {
    const sorted = hosts.slice().sort((a, b) => (roomier(a, b) ? -1 : 1));
    this.order = new Int32Array(sorted.length);
    for (let i = 0; i < sorted.length; i++) this.order[i] = sorted[i]!.ordinal;
  }

  /** Where the host stands now; call before its free CPU or memory shrinks. */
  positionOf(h: HostState): number {
    let lo = 0;
    let hi = this.order.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (roomier(this.hosts[this.order[mid]!]!, h)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Moves the host at `from`, whose room shrank, back to its place. */
  settle(from: number): void {
    const xs = this.order;
    const h = this.hosts[xs[from]!]!;
    let lo = from + 1;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (roomier(this.hosts[xs[mid]!]!, h)) lo = mid + 1;
      else hi = mid;
    }
    const to = lo - 1;
    if (to === from) return;
    xs.copyWithin(from, from + 1, to + 1);
    xs[to] = h.ordinal;
  }

  /** The roomiest host where a GPU-less job fits now. */
  find(cls: JobClass, cpus: number, memory: number): HostState | undefined {
    for (let i = 0; i < this.order.length; i++) {
      const h = this.hosts[this.order[i]!]!;
      if (h.freeCpus < cpus) return undefined;
      if (h.freeMemoryMiB < memory || !hostMatchesClass(h, cls)) continue;
      if (h.reserved && !gpuLessMayUseReserved(h, cpus, memory)) continue;
      return h;
    }
    return undefined;
  }
}

/** A record's own entry: a person called "constructor" has no usage inherited from Object. */
const entry = (record: Record<string, number> | undefined, name: string) => (record !== undefined && Object.hasOwn(record, name) ? record[name] : undefined);
const limitOf = (limit: OwnerLimit | undefined, owner: string) => entry(limit?.owners, owner) ?? limit?.default ?? Infinity;

/** One decision: the assignments to make now and why the first waiting jobs wait. */
export function scheduleQueue(input: ScheduleInput): ScheduleDecision {
  const { devices, nowMs } = input;
  const maxReasons = input.maxReasons ?? DEFAULT_MAX_REASONS;
  const assignments: Assignment[] = [];
  const waiting: Record<string, WaitReason> = {};
  let reservation: ScheduleDecision["reservation"] = null;
  const hosts = hostStates(devices);
  const queue = input.queue;
  const n = queue.length;
  if (n === 0 || (hosts.length === 0 && maxReasons <= 0)) return { assignments, waiting, reservation };
  let hostById: Map<string, HostState> | undefined; // for jobs pinned to a host, made when one comes
  let maxFree = 0;
  let freeTotal = 0;
  for (const h of hosts) {
    maxFree = Math.max(maxFree, h.freeCount);
    freeTotal += h.freeCount;
  }
  const index = new FreeCountIndex(hosts, maxFree);

  const { jobs, names, accounts, jobAccount, jobGpus, jobCpus, jobMemory, jobCreated, order, runStart } = splitQueue(queue, nowMs);
  let gpuLessLeft = 0;
  /** Each account's GPU-less jobs not walked yet. */
  const gpuLessOf = new Int32Array(accounts);
  for (let j = 0; j < n; j++) {
    if (jobGpus[j] !== 0) continue;
    gpuLessLeft++;
    gpuLessOf[jobAccount[j]!]!++;
  }

  const { usage, shares, runningGpusByOwner, runningJobsByOwner, limits } = input;
  const accountUsage = new Float64Array(accounts);
  const accountShare = new Float64Array(accounts);
  const heldGpus = new Float64Array(accounts);
  const givenGpus = new Float64Array(accounts);
  const heldJobs = new Float64Array(accounts);
  const maxGpus = new Float64Array(accounts);
  const maxJobs = new Float64Array(accounts);
  const key = new Float64Array(accounts);
  for (let a = 0; a < accounts; a++) {
    const name = names[a]!;
    const u = entry(usage, name);
    const s = entry(shares, name);
    accountUsage[a] = u !== undefined && u > 0 ? u : 0;
    accountShare[a] = s !== undefined && s > 0 && s !== Infinity ? s : 1;
    heldGpus[a] = entry(runningGpusByOwner, name) ?? 0;
    heldJobs[a] = entry(runningJobsByOwner, name) ?? 0;
    maxGpus[a] = limitOf(limits?.maxGpusPerOwner, name);
    maxJobs[a] = limitOf(limits?.maxRunningJobsPerOwner, name);
    key[a] = fairShareKey(accountUsage[a]!, 0, accountShare[a]!);
  }

  const classes = new JobClasses();
  const rooms = gpuLessLeft > 0 ? new RoomOrder(hosts) : undefined;
  const reasons = new Reasons(hosts, devices, jobs, order, runStart, names, accounts);
  let reasonsLeft = maxReasons;
  let reserved: HostState | undefined;

  const place = (h: HostState, cls: JobClass, job: SchedJob, a: number, gpus: number, cpus: number, memory: number) => {
    const gpuIndices: number[] = gpus === 0 ? [] : new Array<number>(gpus);
    if (gpus > 0) {
      index.remove(h);
      if (!cls.gpuFilter || h.uniform) {
        for (let i = 0; i < gpus; i++) gpuIndices[i] = h.freeGpus[h.firstFree + i]!.index;
        h.firstFree += gpus;
      } else {
        // Take the matching ones, closing the gaps they leave in the host's part of the list.
        let taken = 0;
        let kept = h.firstFree;
        for (let i = h.firstFree; i < h.freeEnd; i++) {
          const g = h.freeGpus[i]!;
          if (taken < gpus && gpuOk(g.name.toLowerCase(), g.memoryTotalMiB, cls)) gpuIndices[taken++] = g.index;
          else h.freeGpus[kept++] = g;
        }
        h.freeEnd = kept;
      }
      h.freeCount -= gpus;
      index.add(h);
      freeTotal -= gpus;
      heldGpus[a]! += gpus;
      givenGpus[a]! += gpus;
      key[a] = fairShareKey(accountUsage[a]!, givenGpus[a]!, accountShare[a]!);
    }
    if ((cpus > 0 && h.cpusLimited) || (memory > 0 && h.memoryLimited)) {
      const at = rooms && gpuLessLeft > 0 ? rooms.positionOf(h) : -1;
      h.freeCpus -= cpus;
      h.freeMemoryMiB -= memory;
      if (at >= 0) rooms!.settle(at);
    }
    heldJobs[a]!++;
    assignments.push({ jobId: job.id, hostId: h.device.hostId, gpuIndices });
  };

  // The accounts with jobs left in the current tier, as a heap: lowest key, then oldest next job.
  const next = new Int32Array(accounts);
  const runEnd = new Int32Array(accounts);
  const heap = new Int32Array(accounts);
  let heapSize = 0;
  const before = (x: number, y: number) => {
    if (key[x] !== key[y]) return key[x]! < key[y]!;
    const jx = order[next[x]!]!;
    const jy = order[next[y]!]!;
    if (jobCreated[jx] !== jobCreated[jy]) return jobCreated[jx]! < jobCreated[jy]!;
    return jobs[jx]!.id < jobs[jy]!.id;
  };
  const siftDown = (from: number) => {
    const top = heap[from]!;
    let i = from;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= heapSize) break;
      if (child + 1 < heapSize && before(heap[child + 1]!, heap[child]!)) child++;
      if (!before(heap[child]!, top)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = top;
  };
  const heapify = () => {
    let w = 0;
    for (let i = 0; i < heapSize; i++) if (next[heap[i]!]! < runEnd[heap[i]!]!) heap[w++] = heap[i]!;
    heapSize = w;
    for (let i = (heapSize >>> 1) - 1; i >= 0; i--) siftDown(i);
  };
  // What is left to walk of an account. Once every reason is given, a job can only matter by
  // being placed: an account at its job limit has nothing left that can (NONE); one at its GPU
  // limit, or every account once no GPU is free and the reservation is made, only its GPU-less
  // jobs (GPU_LESS), found through `skipToGpuLess[p]`, the first GPU-less job at or after position
  // p of `order`.
  const ALL = 0;
  const GPU_LESS = 1;
  const NONE = 2;
  const mode = new Uint8Array(accounts);
  let skipToGpuLess: Int32Array | undefined;
  const skips = () => {
    if (skipToGpuLess) return skipToGpuLess;
    const skip = new Int32Array(n + 1);
    skip[n] = n;
    for (let p = n - 1; p >= 0; p--) skip[p] = jobGpus[order[p]!] === 0 ? p : skip[p + 1]!;
    return (skipToGpuLess = skip);
  };
  /** The account's first job to walk from position p of its run on. */
  const from = (a: number, p: number) => (mode[a] === ALL ? p : mode[a] === GPU_LESS ? skips()[p]! : runEnd[a]!);
  const restrict = (a: number, to: number) => {
    if (mode[a]! >= to) return;
    mode[a] = to;
    if (to === NONE) {
      gpuLessLeft -= gpuLessOf[a]!;
      gpuLessOf[a] = 0;
    }
    next[a] = from(a, next[a]!);
  };
  let drained = false;

  for (let tier = 0; tier < 4; tier++) {
    heapSize = 0;
    for (let a = 0; a < accounts; a++) {
      runEnd[a] = runStart[tier * accounts + a + 1]!;
      next[a] = from(a, runStart[tier * accounts + a]!);
      heap[heapSize++] = a;
    }
    heapify();
    reasons.tier = tier;
    reasons.next = next;

    while (heapSize > 0) {
      if (!drained && freeTotal === 0 && reserved !== undefined && reasonsLeft <= 0) {
        drained = true;
        for (let a = 0; a < accounts; a++) restrict(a, GPU_LESS);
        heapify();
        if (heapSize === 0) break;
      }
      if (gpuLessLeft === 0 && drained) break;
      const a = heap[0]!;
      const j = order[next[a]!]!;
      next[a] = from(a, next[a]! + 1);
      this_job: {
        const gpus = jobGpus[j]!;
        const cpus = jobCpus[j]!;
        const memory = jobMemory[j]!;
        if (gpus === 0) {
          gpuLessLeft--;
          gpuLessOf[a]!--;
        }

        const overGpus = gpus > 0 && heldGpus[a]! + gpus > maxGpus[a]!;
        if (overGpus || heldJobs[a]! + 1 > maxJobs[a]!) {
          if (reasonsLeft-- > 0) {
            const job = jobs[j]!;
            waiting[job.id] = overGpus
              ? { kind: "owner-limit", owner: job.owner ?? null, limit: "gpus", max: maxGpus[a]!, holding: heldGpus[a]! }
              : { kind: "owner-limit", owner: job.owner ?? null, limit: "jobs", max: maxJobs[a]!, holding: heldJobs[a]! };
          }
          if (reasonsLeft <= 0) {
            if (heldJobs[a]! + 1 > maxJobs[a]!) restrict(a, NONE);
            else if (heldGpus[a]! >= maxGpus[a]!) restrict(a, GPU_LESS);
          }
          break this_job;
        }
        if (reasonsLeft <= 0 && (gpus === 0 || reserved !== undefined)) {
          // Nothing but a placement can come of this job: skip it if it cannot be placed, which
          // holds when no GPU is free, or no host at all has the room whatever the constraints.
          if (gpus > 0 && freeTotal === 0) break this_job;
          if (covered(classes.unconstrained.noFitNow, gpus, cpus, memory)) break this_job;
        }

        const job = jobs[j]!;
        const cls = classes.of(job.constraints);
        let host: HostState | undefined;
        const knownNoFit = covered(cls.noFitNow, gpus, cpus, memory);
        if (!knownNoFit) {
          if (cls.hostId !== undefined) {
            hostById ??= new Map(hosts.map((x) => [x.device.hostId, x]));
            const h = hostById.get(cls.hostId);
            if (h && fitsNow(h, cls, gpus, cpus, memory) && (!h.reserved || (gpus === 0 && gpuLessMayUseReserved(h, cpus, memory)))) host = h;
          } else if (gpus > 0) {
            if (freeTotal >= gpus) host = index.firstFit(cls, gpus, cpus, memory);
          } else {
            host = rooms!.find(cls, cpus, memory);
          }
        }
        if (host) {
          place(host, cls, job, a, gpus, cpus, memory);
          break this_job;
        }
        if (!knownNoFit) record(cls.noFitNow, gpus, cpus, memory);

        let reserving = false;
        if (gpus > 0 && reserved === undefined && !covered(cls.neverHere, gpus, cpus, memory)) {
          reserved = reservationHost(hosts, cls, gpus, cpus, memory);
          if (reserved) {
            index.remove(reserved);
            reserved.reserved = true;
            freeTotal -= reserved.freeCount;
            reservation = { jobId: job.id, hostId: reserved.device.hostId };
            reserving = true;
          } else record(cls.neverHere, gpus, cpus, memory);
        }
        if (reasonsLeft-- > 0) {
          waiting[job.id] = reserving
            ? { kind: "reserving", hostId: reserved!.device.hostId }
            : reasons.of(job, a, cls, gpus, cpus, memory, reserved, reservation, assignments.length);
        }
      }
      // The account's key or next job only grew: it sinks, or leaves once its run is done.
      if (next[a]! < runEnd[a]!) siftDown(0);
      else if (--heapSize > 0) {
        heap[0] = heap[heapSize]!;
        siftDown(0);
      }
    }
  }
  return { assignments, waiting, reservation };
}

/**
 * The queue split by one counting sort into runs of one tier (0: urgent … 3: low) and one account
 * each, every run in age order (`order[runStart[tier * accounts + account] …]`), with what the walk
 * reads of each job copied into typed arrays in queue order: the walk then touches a job's object
 * only when the job may be placed or needs a reason.
 */
function splitQueue(queue: SchedJob[], nowMs: number) {
  return splitInAgeOrder(queue, nowMs) ?? splitInAgeOrder([...queue].sort(byAge), nowMs)!;
}

/** The split, or undefined when `jobs` is not in age order. */
function splitInAgeOrder(jobs: SchedJob[], nowMs: number) {
  const n = jobs.length;
  const accountOf = new Map<string, number>();
  const names: string[] = [];
  const jobAccount = new Int32Array(n);
  const jobTier = new Uint8Array(n);
  const jobGpus = new Float64Array(n);
  const jobCpus = new Float64Array(n);
  const jobMemory = new Float64Array(n);
  const jobCreated = new Float64Array(n);
  let lastName: string | undefined;
  let lastAccount = -1;
  let created = -Infinity;
  let id = "";
  for (let i = 0; i < n; i++) {
    const job = jobs[i]!;
    if (job.createdAtMs < created || (job.createdAtMs === created && job.id < id)) return undefined;
    created = job.createdAtMs;
    id = job.id;
    // Consecutive jobs are often one person's (a sweep): skip the lookup then.
    const name = job.owner ?? NO_OWNER;
    if (name !== lastName) {
      let a = accountOf.get(name);
      if (a === undefined) {
        a = names.length;
        accountOf.set(name, a);
        names.push(name);
      }
      lastName = name;
      lastAccount = a;
    }
    jobAccount[i] = lastAccount;
    jobTier[i] = 3 - effectiveRank(job, nowMs);
    jobGpus[i] = job.gpus;
    jobCpus[i] = request(job.cpus);
    jobMemory[i] = request(job.memoryMiB);
    jobCreated[i] = job.createdAtMs;
  }
  const accounts = names.length;
  const runStart = new Int32Array(4 * accounts + 1);
  for (let i = 0; i < n; i++) runStart[jobTier[i]! * accounts + jobAccount[i]! + 1]!++;
  for (let b = 1; b <= 4 * accounts; b++) runStart[b]! += runStart[b - 1]!;
  const order = new Int32Array(n);
  const fill = runStart.slice(0, 4 * accounts);
  for (let i = 0; i < n; i++) order[fill[jobTier[i]! * accounts + jobAccount[i]!]!++] = i;
  return { jobs, names, accounts, jobAccount, jobGpus, jobCpus, jobMemory, jobCreated, order, runStart };
}

/** The schedulable hosts in hostId order, with what is free on each. */
function hostStates(devices: SchedDevice[]): HostState[] {
  const schedulable: SchedDevice[] = [];
  let sorted = true;
  for (const d of devices) {
    if (!d.schedulable) continue;
    if (schedulable.length > 0 && d.hostId < schedulable[schedulable.length - 1]!.hostId) sorted = false;
    schedulable.push(d);
  }
  if (!sorted) schedulable.sort((a, b) => byId(a.hostId, b.hostId));
  const hosts = new Array<HostState>(schedulable.length);
  const freeGpus: SchedGpu[] = [];
  for (let ordinal = 0; ordinal < schedulable.length; ordinal++) {
    const device = schedulable[ordinal]!;
    const gpus = device.gpus;
    const first = gpus[0];
    let freeCount = 0;
    let inOrder = true;
    let uniform = true;
    for (let i = 0; i < gpus.length; i++) {
      const g = gpus[i]!;
      if (g.free && !g.foreign) freeCount++;
      if (i > 0 && g.index < gpus[i - 1]!.index) inOrder = false;
      if (g.name !== first!.name || g.memoryTotalMiB !== first!.memoryTotalMiB) uniform = false;
    }
    const firstFree = freeGpus.length;
    for (const g of gpus) if (g.free && !g.foreign) freeGpus.push(g);
    if (!inOrder) {
      const mine = freeGpus.splice(firstFree).sort((a, b) => a.index - b.index);
      for (const g of mine) freeGpus.push(g);
    }
    const cpus = capacity(device.cpus);
    const memory = capacity(device.memoryMiB);
    hosts[ordinal] = {
      ordinal,
      device,
      freeGpus,
      firstFree,
      freeEnd: firstFree + freeCount,
      freeCount,
      uniform,
      lowerName: "",
      freeCpus: Math.max(0, cpus - (device.usedCpus ?? 0)),
      freeMemoryMiB: Math.max(0, memory - (device.usedMemoryMiB ?? 0)),
      cpusLimited: cpus !== Infinity,
      memoryLimited: memory !== Infinity,
      reserved: false,
    };
  }
  return hosts;
}

/**
 * The assignments alone: `scheduleQueue` with no usage, running counts, shares or limits given and
 * no reasons asked (jobs' owners still take turns by the GPUs this decision gives them).
 */
export function scheduleJobs(queue: SchedJob[], devices: SchedDevice[], nowMs: number): Assignment[] {
  return scheduleQueue({ queue, devices, nowMs, maxReasons: 0 }).assignments;
}

/** The host that could hold the job once what runs there ends: most matching GPUs free now, then hostId. */
function reservationHost(hosts: HostState[], cls: JobClass, gpus: number, cpus: number, memory: number): HostState | undefined {
  let best: HostState | undefined;
  let bestFree = -1;
  for (const h of hosts) {
    if (!fitsEmpty(h, cls, gpus, cpus, memory)) continue;
    const f = matchingFree(h, cls);
    if (f > bestFree) {
      best = h;
      bestFree = f;
    }
  }
  return best;
}

/**
 * The decision's job classes, found by walking the constraints' fields through nested maps, so a
 * job's class costs no string. Constraints that differ only in label order or gpuName case get
 * classes of their own, which only costs their requests a search more.
 */
class JobClasses {
  readonly unconstrained = newClass(0, {});
  private readonly root = new Map<unknown, unknown>();
  private count = 1;

  of(c: Constraints): JobClass {
    if (c.hostId === undefined && c.labels === undefined && c.gpuName === undefined && c.minMemoryMiB === undefined) return this.unconstrained;
    let node = step(step(step(this.root, c.hostId), c.gpuName), c.minMemoryMiB);
    if (c.labels) for (const k in c.labels) node = step(step(node, k), c.labels[k]);
    let cls = node.get(CLASS) as JobClass | undefined;
    if (!cls) node.set(CLASS, (cls = newClass(this.count++, c)));
    return cls;
  }
}

const CLASS = Symbol("class");
function step(node: Map<unknown, unknown>, value: unknown): Map<unknown, unknown> {
  let child = node.get(value) as Map<unknown, unknown> | undefined;
  if (!child) node.set(value, (child = new Map()));
  return child;
}

/**
 * The reasons for waiting jobs, as the header states them, computed at each job's turn. What
 * depends only on the request (never-fits) is kept per request; what depends on capacity
 * (no-fit-now) per request while no job has been placed since.
 */
class Reasons {
  /** The tier being walked (0: urgent), and each account's next job in its run there. */
  tier = 0;
  next = new Int32Array(0);
  private readonly never = new Map<string, WaitReason | null>();
  private readonly noFit = new Map<string, { placed: number; reason: WaitReason }>();

  constructor(
    private readonly hosts: HostState[],
    private readonly devices: SchedDevice[],
    private readonly jobs: SchedJob[],
    private readonly order: Int32Array,
    private readonly runStart: Int32Array,
    private readonly names: string[],
    private readonly accounts: number,
  ) {}

  of(job: SchedJob, account: number, cls: JobClass, gpus: number, cpus: number, memory: number, reserved: HostState | undefined, reservation: ScheduleDecision["reservation"], placed: number): WaitReason {
    const request = `${cls.id}/${gpus}/${cpus}/${memory}`;
    let never = this.never.get(request);
    if (never === undefined) {
      never = null;
      if (!this.hosts.some((h) => fitsEmpty(h, cls, gpus, cpus, memory))) {
        const why = neverFits(job, this.devices);
        never = why !== null ? { kind: "never-fits", why } : { kind: "no-schedulable-host" };
      }
      this.never.set(request, never);
    }
    if (never !== null) return never;
    if (reserved && reservation && fitsNow(reserved, cls, gpus, cpus, memory)) return { kind: "reserved-for", jobId: reservation.jobId, hostId: reservation.hostId };

    const behind = this.fairShareBehind(job, account);
    if (behind) return behind;

    const known = this.noFit.get(request);
    if (known && known.placed === placed) return known.reason;
    let largest = 0;
    let gpusShort = true;
    let cpusShort = true;
    for (const h of this.hosts) {
      if (!hostMatchesClass(h, cls)) continue;
      const f = matchingFree(h, cls);
      if (f > largest) largest = f;
      if (f >= gpus) {
        gpusShort = false;
        if (h.freeCpus >= cpus) cpusShort = false;
      }
    }
    const reason: WaitReason = { kind: "no-fit-now", largestFreeBlock: largest, short: gpus > 0 && gpusShort ? "gpus" : cpusShort ? "cpus" : "memory" };
    this.noFit.set(request, { placed, reason });
    return reason;
  }

  /** The other account with most jobs younger than this one considered before it at its level. */
  private fairShareBehind(job: SchedJob, account: number): WaitReason | undefined {
    let best = -1;
    let bestCount = 0;
    for (let a = 0; a < this.accounts; a++) {
      if (a === account) continue;
      const start = this.runStart[this.tier * this.accounts + a]!;
      const end = this.next[a]!;
      if (end <= start) continue;
      // The run is in age order: find the first of its considered jobs younger than `job`.
      let lo = start;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (olderThan(job, this.jobs[this.order[mid]!]!)) hi = mid;
        else lo = mid + 1;
      }
      const count = end - lo;
      if (count > bestCount || (count === bestCount && count > 0 && this.names[a]! < this.names[best]!)) {
        best = a;
        bestCount = count;
      }
    }
    if (best < 0) return undefined;
    const name = this.names[best]!;
    return { kind: "fair-share", behind: name === NO_OWNER ? null : name, jobs: bestCount };
  }
}
