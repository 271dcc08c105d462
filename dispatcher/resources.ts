// What a shared lab's scheduler needs besides the queue and the devices, as pure functions: the
// cores and memory a job holds (its ask, else the lab's defaults), each person's recent GPU-hours
// with a half-life (fair share), and a waiting job's reason in words people read.
import type { WaitReason } from "./scheduler.js";

export interface ResourceSettings {
  /** A GPU job's default cores and memory per GPU it asks for. */
  cpusPerGpu: number;
  memoryGiBPerGpu: number;
  /** A GPU-less job's default cores and memory. */
  gpulessCpus: number;
  gpulessMemoryGiB: number;
  /** How fast old use stops counting against a person: it weighs half after this long. */
  fairShareHalfLifeMs: number;
}

export const DEFAULT_RESOURCES: ResourceSettings = {
  cpusPerGpu: 4,
  memoryGiBPerGpu: 16,
  gpulessCpus: 1,
  gpulessMemoryGiB: 2,
  fairShareHalfLifeMs: 7 * 24 * 3600_000,
};

/** The cores and memory (MiB) a job holds on its host: what it asked, else the lab's default. */
export function jobResources(job: { gpus: number; cpus?: number; memoryGiB?: number }, s: ResourceSettings): { cpus: number; memoryMiB: number } {
  const cpus = job.cpus ?? (job.gpus > 0 ? job.gpus * s.cpusPerGpu : s.gpulessCpus);
  const gib = job.memoryGiB ?? (job.gpus > 0 ? job.gpus * s.memoryGiBPerGpu : s.gpulessMemoryGiB);
  return { cpus, memoryMiB: Math.round(gib * 1024) };
}

export interface UsageRow {
  owner: string | null;
  gpus: number;
  startedMs: number;
  /** null while it runs. */
  endedMs: number | null;
}

/**
 * Each owner's GPU-hours, each hour weighed 2^(−age / half-life): a GPU-hour used now counts 1, one
 * used a half-life ago 0.5. Running jobs count up to `nowMs`. Owners without one are "".
 */
export function decayedGpuHours(rows: UsageRow[], nowMs: number, halfLifeMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  const k = Math.LN2 / halfLifeMs;
  for (const r of rows) {
    if (r.gpus <= 0) continue;
    const end = Math.min(r.endedMs ?? nowMs, nowMs);
    if (end <= r.startedMs) continue;
    // ∫ from start to end of 2^(−(now − t)/h) dt, in hours.
    const hours = (Math.exp(-k * (nowMs - end)) - Math.exp(-k * (nowMs - r.startedMs))) / k / 3600_000;
    const owner = r.owner ?? "";
    out[owner] = (out[owner] ?? 0) + r.gpus * hours;
  }
  return out;
}

/** Each owner's plain GPU-hours between `sinceMs` and `nowMs`. */
export function gpuHoursSince(rows: UsageRow[], sinceMs: number, nowMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) {
    const start = Math.max(r.startedMs, sinceMs);
    const end = Math.min(r.endedMs ?? nowMs, nowMs);
    if (r.gpus <= 0 || end <= start) continue;
    const owner = r.owner ?? "";
    out[owner] = (out[owner] ?? 0) + (r.gpus * (end - start)) / 3600_000;
  }
  return out;
}

const who = (owner: string | null) => (owner === null || owner === "" ? "jobs without an owner" : owner);

/** A waiting job's reason as the Queue view and `labrig job` say it. */
export function describeWait(r: WaitReason, job: { gpus: number; cpus?: number; memoryMiB?: number }): string {
  switch (r.kind) {
    case "owner-limit":
      return r.limit === "gpus"
        ? `${who(r.owner)} holds ${r.holding} of at most ${r.max} GPU${r.max === 1 ? "" : "s"} at once: waits for one of their jobs to end`
        : `${who(r.owner)} runs ${r.holding} of at most ${r.max} job${r.max === 1 ? "" : "s"} at once: waits for one of them to end`;
    case "reserving":
      return `next in line: ${r.hostId} is held for it until enough of its GPUs are free`;
    case "never-fits":
      return `can never run here: ${r.why}`;
    case "no-schedulable-host":
      return "the only hosts it fits are not healthy or are draining";
    case "reserved-for":
      return `would fit ${r.hostId}, which is held for job ${r.jobId} (a bigger job waiting longer)`;
    case "fair-share":
      return `behind ${r.jobs} job${r.jobs === 1 ? "" : "s"} of ${who(r.behind)}: fair share (they have used less lately)`;
    case "no-fit-now":
      if (r.short === "gpus") return `needs ${job.gpus} GPU${job.gpus === 1 ? "" : "s"}; largest free block is ${r.largestFreeBlock}`;
      if (r.short === "cpus") return `needs ${job.cpus ?? "?"} CPU cores; no host that fits has them free now`;
      return `needs ${job.memoryMiB !== undefined ? `${Math.round((job.memoryMiB / 1024) * 10) / 10} GiB` : "its"} memory; no host that fits has it free now`;
  }
}
