// The in-memory view of the jobs that the hot paths look at: the queue (in age order, as the
// scheduler wants it) and the jobs assigned to or running on each host. The store stays the truth:
// this index is rebuilt from it at start and updated from every job the store returns after a
// change, so scheduling, heartbeats and the reaper never scan the jobs table.
import type { SchedJob } from "./scheduler.js";
import type { StoredJob } from "./store.js";

export interface ActiveJob {
  id: string;
  hostId: string;
  state: "assigned" | "running";
  attempt: number;
  gpuIndices: number[];
  cancelRequested: boolean;
  assignedAtMs: number;
  /** When the agent took the lease; null while it waits for the host's next poll. */
  deliveredAtMs: number | null;
  /** When the agent reported it running (dispatcher's clock); null before. */
  startedAtMs: number | null;
  timeoutS: number | null;
  gpus: number;
  /** Cores and memory (MiB) it holds on its host (0 for jobs from before they were tracked). */
  cpus: number;
  memoryMiB: number;
  owner: string | null;
  /** Whether the host's last heartbeat listed this job among those it holds. */
  listedByHost: boolean;
  /** The receipt time of the first heartbeat since it was handed over that left it out; null while listed. */
  missingSinceMs: number | null;
}

const byAge = (a: SchedJob, b: SchedJob) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export class JobIndex {
  private queue = new Map<string, SchedJob>();
  private queueTail: SchedJob | undefined;
  private queueInAgeOrder = true;
  private readonly active = new Map<string, ActiveJob>();
  private readonly activeByHost = new Map<string, Map<string, ActiveJob>>();

  /** Brings the index in line with a job's state as the store now holds it. */
  track(job: StoredJob): void {
    this.dropQueued(job.id);
    this.dropActive(job.id);
    if (job.state === "queued") {
      const entry: SchedJob = {
        id: job.id,
        priority: job.priority,
        createdAtMs: Date.parse(job.createdAt),
        gpus: job.gpus,
        constraints: job.constraints,
        cpus: job.cpus,
        memoryMiB: job.memoryMiB,
        owner: job.owner ?? null,
      };
      if (this.queueTail && byAge(this.queueTail, entry) > 0) this.queueInAgeOrder = false;
      this.queue.set(job.id, entry);
      this.queueTail = entry;
    } else if ((job.state === "assigned" || job.state === "running") && job.hostId) {
      const entry: ActiveJob = {
        id: job.id,
        hostId: job.hostId,
        state: job.state,
        attempt: job.attempt,
        gpuIndices: job.gpuIndices,
        cancelRequested: job.cancelRequested,
        assignedAtMs: job.assignedAt ? Date.parse(job.assignedAt) : Date.now(),
        deliveredAtMs: job.deliveredAt ? Date.parse(job.deliveredAt) : null,
        startedAtMs: job.state === "running" && job.startedAt ? Date.parse(job.startedAt) : null,
        timeoutS: job.timeoutS,
        gpus: job.gpuIndices.length,
        cpus: job.cpus ?? 0,
        memoryMiB: job.memoryMiB ?? 0,
        owner: job.owner ?? null,
        listedByHost: false,
        missingSinceMs: null,
      };
      this.active.set(job.id, entry);
      let onHost = this.activeByHost.get(job.hostId);
      if (!onHost) this.activeByHost.set(job.hostId, (onHost = new Map()));
      onHost.set(job.id, entry);
    }
  }

  /** The queued jobs, oldest first. */
  queued(): SchedJob[] {
    if (!this.queueInAgeOrder) {
      const sorted = [...this.queue.values()].sort(byAge);
      this.queue = new Map(sorted.map((j) => [j.id, j]));
      this.queueTail = sorted[sorted.length - 1];
      this.queueInAgeOrder = true;
    }
    return [...this.queue.values()];
  }

  get queuedCount(): number {
    return this.queue.size;
  }

  activeJobs(): IterableIterator<ActiveJob> {
    return this.active.values();
  }

  activeOnHost(hostId: string): ActiveJob[] {
    const onHost = this.activeByHost.get(hostId);
    return onHost ? [...onHost.values()] : [];
  }

  /** The GPU indices of a host that assigned or running jobs hold. */
  busyGpus(hostId: string): Set<number> {
    const busy = new Set<number>();
    for (const j of this.activeByHost.get(hostId)?.values() ?? []) for (const i of j.gpuIndices) busy.add(i);
    return busy;
  }

  /** The cores and memory (MiB) a host's assigned and running jobs hold. */
  usedOnHost(hostId: string): { cpus: number; memoryMiB: number } {
    let cpus = 0;
    let memoryMiB = 0;
    for (const j of this.activeByHost.get(hostId)?.values() ?? []) {
      cpus += j.cpus;
      memoryMiB += j.memoryMiB;
    }
    return { cpus, memoryMiB };
  }

  /** GPUs and jobs each owner's assigned and running jobs hold ("" for jobs without one). */
  heldByOwner(): { gpus: Record<string, number>; jobs: Record<string, number> } {
    const gpus: Record<string, number> = {};
    const jobs: Record<string, number> = {};
    for (const j of this.active.values()) {
      const o = j.owner ?? "";
      gpus[o] = (gpus[o] ?? 0) + j.gpus;
      jobs[o] = (jobs[o] ?? 0) + 1;
    }
    return { gpus, jobs };
  }

  /** How many queued jobs an owner has. */
  queuedOf(owner: string | null): number {
    let n = 0;
    for (const j of this.queue.values()) if ((j.owner ?? null) === owner) n++;
    return n;
  }

  private dropQueued(id: string): void {
    const entry = this.queue.get(id);
    if (!entry) return;
    this.queue.delete(id);
    // The tail stays even when it leaves: every job still queued is no newer than it, so comparing
    // new arrivals with it keeps telling whether the queue is still in age order.
    if (this.queue.size === 0) {
      this.queueTail = undefined;
      this.queueInAgeOrder = true;
    }
  }

  private dropActive(id: string): void {
    const entry = this.active.get(id);
    if (!entry) return;
    this.active.delete(id);
    const onHost = this.activeByHost.get(entry.hostId);
    onHost?.delete(id);
    if (onHost?.size === 0) this.activeByHost.delete(entry.hostId);
  }
}
