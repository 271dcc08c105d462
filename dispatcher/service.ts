// The dispatcher's behaviour, between the HTTP routes and the store: registering agents, taking
// heartbeats, scheduling the queue onto free GPUs, handing out leases through long polls, the
// reaper for silent agents, and events for everything that changes.
import type {
  Device,
  HeartbeatRequest,
  JobEventRequest,
  Priority,
  RegisterRequest,
  SubmitJob,
} from "../core/api.js";
import { DeviceRegistry, toDevice, type Thresholds } from "./devices.js";
import { EventBus } from "./events.js";
import { scheduleJobs, type SchedDevice } from "./scheduler.js";
import { Store, type StoredJob } from "./store.js";
import { SyncStore } from "./sync-store.js";
import { generateToken, hashToken } from "./tokens.js";

export interface ServiceConfig extends Thresholds {
  heartbeatIntervalS: number;
  assignTimeoutMs: number;
  queueCommand: string;
  persistSeenEveryMs: number;
}

export interface LeaseGrant {
  job: StoredJob;
  attempt: number;
  gpuIndices: number[];
}

/** Heartbeats update a device's event at most this often (status changes go out at once). */
const DEVICE_EVENT_EVERY_MS = 1000;

type Waiter = (grant: LeaseGrant | null) => void;

export interface DispatchObserver {
  /** Called when a lease is handed out, with how long the job waited since it was queued. */
  leased?(job: StoredJob, waitedMs: number): void;
}

export class DispatcherService {
  readonly devices: DeviceRegistry;
  readonly events = new EventBus();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly queuedAtMs = new Map<string, number>();
  private readonly deviceEmittedMs = new Map<string, number>();
  private scheduleQueued = false;
  private closing = false;
  private timers: NodeJS.Timeout[] = [];
  observer: DispatchObserver = {};

  constructor(
    readonly store: Store,
    readonly sync: SyncStore,
    readonly config: ServiceConfig,
    startedMs = Date.now(),
  ) {
    this.devices = new DeviceRegistry(config);
    this.devices.load(store.allAgents(), startedMs);
  }

  start(): void {
    this.timers.push(setInterval(() => this.reap(), 1000));
    this.timers.push(setInterval(() => this.persistSeen(), this.config.persistSeenEveryMs));
    this.requestSchedule();
  }

  /** Stops taking leases: waiting long polls answer "nothing" now, and timers stop. */
  close(): void {
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const set of this.waiters.values()) for (const w of set) w(null);
    this.waiters.clear();
    this.persistSeen();
  }

  // ---- agents ----

  register(req: RegisterRequest): { agentToken: string; heartbeatIntervalS: number } {
    const agentToken = generateToken("lrt");
    const now = new Date();
    const previous = this.devices.get(req.hostId);
    const row = this.store.upsertAgent({
      hostId: req.hostId,
      hostname: req.hostname,
      tokenHash: hashToken(agentToken),
      gpus: req.gpus,
      labels: req.labels ?? {},
      agentVersion: req.agentVersion,
      agentUrl: req.agentUrl,
      now,
    });
    this.devices.put({
      hostId: row.host_id,
      hostname: row.hostname,
      tokenHash: row.token_hash,
      gpus: req.gpus,
      labels: req.labels ?? {},
      agentVersion: row.agent_version,
      agentUrl: row.agent_url,
      draining: row.draining === 1,
      registeredAt: row.registered_at,
      lastSeenMs: now.getTime(),
      lastStats: previous?.lastStats ?? null,
      dirty: false,
    });
    this.emitDevice(req.hostId);
    this.requestSchedule();
    return { agentToken, heartbeatIntervalS: this.config.heartbeatIntervalS };
  }

  hostForAgentToken(token: string): string | undefined {
    return this.devices.hostForTokenHash(hashToken(token));
  }

  /** Records a heartbeat and answers which of the agent's jobs it must stop. */
  heartbeat(hostId: string, hb: HeartbeatRequest): { cancel: string[] } {
    const nowMs = Date.now();
    const before = this.devices.heartbeat(hostId, hb, nowMs);
    if (before !== "healthy") this.requestSchedule();
    const active = this.store.activeJobsOnHost(hostId);
    const current = new Set(active.filter((j) => !j.cancelRequested).map((j) => j.id));
    const cancel = new Set(active.filter((j) => j.cancelRequested).map((j) => j.id));
    // Jobs the agent still runs that are no longer its to run (requeued elsewhere, ended, unknown).
    for (const id of hb.runningJobs ?? []) if (!current.has(id)) cancel.add(id);
    const last = this.deviceEmittedMs.get(hostId) ?? 0;
    if (before !== "healthy" || nowMs - last >= DEVICE_EVENT_EVERY_MS) {
      this.deviceEmittedMs.set(hostId, nowMs);
      this.emitDevice(hostId, active);
    }
    return { cancel: [...cancel] };
  }

  /**
   * Resolves with the next assignment for this host: at once when one is waiting, else as soon as
   * the scheduler makes one, else null after `waitMs`.
   */
  lease(hostId: string, waitMs: number, signal?: AbortSignal): Promise<LeaseGrant | null> {
    const now = this.take(hostId);
    if (now || this.closing || waitMs <= 0) return Promise.resolve(now);
    this.requestSchedule();
    return new Promise((resolve) => {
      let set = this.waiters.get(hostId);
      if (!set) this.waiters.set(hostId, (set = new Set()));
      const waiter: Waiter = (grant) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        set!.delete(waiter);
        resolve(grant);
      };
      // A poll whose connection went away must not be handed a job it can never receive.
      const onAbort = () => waiter(null);
      const timer = setTimeout(() => waiter(null), waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      set.add(waiter);
    });
  }

  private take(hostId: string): LeaseGrant | null {
    const job = this.store.takeNextAssignment(hostId);
    if (!job) return null;
    const queuedAt = this.queuedAtMs.get(job.id) ?? Date.parse(job.createdAt);
    this.queuedAtMs.delete(job.id);
    this.observer.leased?.(job, Date.now() - queuedAt);
    this.events.emit({ type: "job", job });
    return { job, attempt: job.attempt, gpuIndices: job.gpuIndices };
  }

  /** Wakes one waiting long poll of a host, if any, with its next assignment. */
  private wake(hostId: string): void {
    const set = this.waiters.get(hostId);
    if (!set || set.size === 0) return;
    const [first] = set;
    const grant = this.take(hostId);
    if (grant) first(grant);
  }

  agentReport(jobId: string, hostId: string, ev: JobEventRequest): StoredJob {
    const job = this.store.applyAgentReport(jobId, hostId, ev);
    this.events.emit({ type: "job", job });
    if (job.state !== "running") {
      this.sync.forget(job.id);
      this.emitDevice(hostId);
      this.requestSchedule();
    }
    return job;
  }

  // ---- jobs ----

  submit(req: SubmitJob): StoredJob {
    const name = req.name ?? defaultJobName(req.command);
    const job = this.store.insertJob({ ...req, name, project: req.project ?? "default" });
    this.queuedAtMs.set(job.id, Date.now());
    this.events.emit({ type: "job", job });
    this.requestSchedule();
    return job;
  }

  queueAdd(configPath: string, priority: Priority): StoredJob {
    const command = this.config.queueCommand.replaceAll("{config_path}", shellQuote(configPath));
    return this.submit({
      name: configPath.split("/").pop()!.replace(/\.ya?ml$/, ""),
      command,
      gpus: 1,
      priority,
      maxRetries: 0,
    });
  }

  cancel(jobId: string): StoredJob {
    const job = this.store.cancel(jobId);
    this.events.emit({ type: "job", job });
    if (job.state === "cancelled" && job.hostId) this.requestSchedule();
    return job;
  }

  retry(jobId: string): StoredJob {
    const job = this.store.retry(jobId);
    this.queuedAtMs.set(job.id, Date.now());
    this.events.emit({ type: "job", job });
    this.requestSchedule();
    return job;
  }

  setPriority(jobId: string, priority: Priority): StoredJob {
    const job = this.store.setPriority(jobId, priority);
    this.events.emit({ type: "job", job });
    this.requestSchedule();
    return job;
  }

  // ---- devices ----

  listDevices(): Device[] {
    const nowMs = Date.now();
    const byHost = groupByHost(this.store.activeJobs());
    return this.devices.all().map((a) => toDevice(a, byHost.get(a.hostId) ?? [], nowMs, this.config));
  }

  device(hostId: string): Device | undefined {
    const a = this.devices.get(hostId);
    return a ? toDevice(a, this.store.activeJobsOnHost(hostId), Date.now(), this.config) : undefined;
  }

  setDraining(hostId: string, draining: boolean): Device | undefined {
    const a = this.devices.get(hostId);
    if (!a) return undefined;
    this.store.setDraining(hostId, draining);
    a.draining = draining;
    this.emitDevice(hostId);
    if (!draining) this.requestSchedule();
    return this.device(hostId);
  }

  private emitDevice(hostId: string, active?: StoredJob[]): void {
    if (this.events.subscribers === 0) return;
    const a = this.devices.get(hostId);
    if (a) this.events.emit({ type: "device", device: toDevice(a, active ?? this.store.activeJobsOnHost(hostId), Date.now(), this.config) });
  }

  // ---- scheduling ----

  /** Runs the scheduler once after the current burst of changes (coalesced). */
  requestSchedule(): void {
    if (this.scheduleQueued || this.closing) return;
    this.scheduleQueued = true;
    setImmediate(() => {
      this.scheduleQueued = false;
      this.scheduleNow();
    });
  }

  scheduleNow(): number {
    const queue = this.store.queuedJobs();
    if (queue.length === 0) return 0;
    const nowMs = Date.now();
    const byHost = groupByHost(this.store.activeJobs());
    const devices: SchedDevice[] = this.devices.all().map((a) => {
      const busy = new Set<number>();
      for (const j of byHost.get(a.hostId) ?? []) for (const i of j.gpuIndices) busy.add(i);
      const stats = new Map((a.lastStats?.gpus ?? []).map((g) => [g.index, g]));
      return {
        hostId: a.hostId,
        schedulable: this.devices.status(a.hostId, nowMs) === "healthy",
        labels: a.labels,
        gpus: a.gpus.map((g) => ({
          index: g.index,
          name: g.name,
          memoryTotalMiB: stats.get(g.index)?.memoryTotalMiB ?? g.memoryTotalMiB,
          free: !busy.has(g.index),
        })),
      };
    });
    const assignments = scheduleJobs(
      queue.map((j) => ({ id: j.id, priority: j.priority, createdAtMs: Date.parse(j.createdAt), gpus: j.gpus, constraints: j.constraints })),
      devices,
      nowMs,
    );
    const touched = new Set<string>();
    for (const a of assignments) {
      const job = this.store.assign(a.jobId, a.hostId, a.gpuIndices);
      if (!job) continue;
      this.events.emit({ type: "job", job });
      touched.add(a.hostId);
    }
    for (const hostId of touched) {
      // Wake as many waiting polls as there are new assignments for the host.
      const n = this.waiters.get(hostId)?.size ?? 0;
      for (let i = 0; i < n; i++) this.wake(hostId);
      this.emitDevice(hostId);
    }
    return assignments.length;
  }

  // ---- reaper ----

  /** Gives back the jobs of disconnected agents, and assignments never started in time. */
  reap(nowMs = Date.now()): void {
    let changed = false;
    for (const job of this.store.activeJobs()) {
      const status = job.hostId ? this.devices.status(job.hostId, nowMs) : "disconnected";
      let lost: StoredJob | undefined;
      if (status === "disconnected" || status === undefined) {
        lost = this.store.loseJob(job.id, `host ${job.hostId} went silent`, true);
      } else if (job.state === "assigned" && job.deliveredAt && nowMs - Date.parse(job.deliveredAt) > this.config.assignTimeoutMs) {
        lost = this.store.loseJob(job.id, `host ${job.hostId} did not start it within ${this.config.assignTimeoutMs / 1000} s`, false);
      }
      if (lost) {
        changed = true;
        if (lost.state === "queued") this.queuedAtMs.set(lost.id, nowMs);
        this.events.emit({ type: "job", job: lost });
        this.events.emit({
          type: "notice",
          level: "warn",
          message: `job ${lost.id} ${lost.state === "queued" ? `requeued as attempt ${lost.attempt}` : lost.state}: ${lost.reason ?? "its host went silent"}`,
          at: new Date(nowMs).toISOString(),
        });
      }
    }
    if (changed) this.requestSchedule();
  }

  persistSeen(): void {
    const dirty = this.devices.takeDirty();
    this.store.saveSeen(dirty.map((a) => ({ hostId: a.hostId, lastSeenAt: new Date(a.lastSeenMs).toISOString(), stats: a.lastStats })));
  }
}

function groupByHost(jobs: StoredJob[]): Map<string, StoredJob[]> {
  const m = new Map<string, StoredJob[]>();
  for (const j of jobs) {
    if (!j.hostId) continue;
    let list = m.get(j.hostId);
    if (!list) m.set(j.hostId, (list = []));
    list.push(j);
  }
  return m;
}

export function defaultJobName(command: string | string[]): string {
  const words = Array.isArray(command) ? command : command.trim().split(/\s+/);
  return words.slice(0, 3).join(" ").slice(0, 60) || "job";
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
