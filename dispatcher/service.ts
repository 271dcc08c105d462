// The dispatcher's behaviour, between the HTTP routes and the store: registering agents, taking
// heartbeats, scheduling the queue onto free GPUs, handing out leases through long polls, the
// reaper for silent agents, and events for everything that changes.
//
// Every job change goes through the store (one transaction each) and the job it returns is fed to
// the in-memory JobIndex, which the hot paths (heartbeats, scheduling, the reaper) read instead of
// the database.
import type { Device, HeartbeatRequest, JobEventRequest, Priority, RegisterRequest, SubmitJob } from "../core/api.js";
import { shq } from "../core/shell.js";
import { DeviceRegistry, toDevice, type Thresholds } from "./devices.js";
import { EventBus } from "./events.js";
import { JobIndex } from "./job-index.js";
import { scheduleJobs, type SchedDevice } from "./scheduler.js";
import { Store, type StoredJob } from "./store.js";
import { SyncStore } from "./sync-store.js";
import { generateToken, hashToken } from "./tokens.js";

export interface ServiceConfig extends Thresholds {
  heartbeatIntervalS: number;
  /** A lease not started (no `running` event), or an assignment not picked up, within this goes back to the queue. */
  assignTimeoutMs: number;
  queueCommand: string;
  persistSeenEveryMs: number;
}

export interface LeaseGrant {
  job: StoredJob;
  attempt: number;
  gpuIndices: number[];
}

/** The token hash of a host an admin reset: no token hashes to it (hashes are hex). */
const RESET_TOKEN_HASH = "reset";

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
  readonly jobs = new JobIndex();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly queuedAtMs = new Map<string, number>();
  private readonly deviceEmittedMs = new Map<string, number>();
  /** Hosts that left an assignment untaken past the timeout: they get nothing until they poll again. */
  private readonly notPolling = new Set<string>();
  private scheduleTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private lastScheduleEndMs = 0;
  private lastScheduleTookMs = 0;
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
    for (const job of store.queuedJobs()) this.jobs.track(job);
    for (const job of store.activeJobs()) this.jobs.track(job);
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
    if (this.scheduleTimer) {
      clearTimeout(this.scheduleTimer as NodeJS.Timeout);
      clearImmediate(this.scheduleTimer as NodeJS.Immediate);
      this.scheduleTimer = undefined;
    }
    for (const set of this.waiters.values()) for (const w of [...set]) w(null);
    this.waiters.clear();
    this.persistSeen();
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Records a job the store just changed: in the index, and as an event. */
  private changed(job: StoredJob): StoredJob {
    this.jobs.track(job);
    if (job.state !== "queued" && job.state !== "assigned") this.queuedAtMs.delete(job.id);
    this.events.emit({ type: "job", job });
    return job;
  }

  // ---- agents ----

  register(req: RegisterRequest): { agentToken: string; relayToken: string; heartbeatIntervalS: number } {
    const agentToken = generateToken("lrt");
    const relayToken = generateToken("lrl");
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
      relayToken,
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
      relayToken: row.relay_token,
      draining: row.draining === 1,
      registeredAt: row.registered_at,
      lastSeenMs: now.getTime(),
      lastStats: previous?.lastStats ?? null,
      dirty: false,
    });
    this.emitDevice(req.hostId);
    this.requestSchedule();
    return { agentToken, relayToken, heartbeatIntervalS: this.config.heartbeatIntervalS };
  }

  /** Whether a host id is taken: registered and not reset by an admin. */
  hostIsClaimed(hostId: string): boolean {
    const a = this.devices.get(hostId);
    return a !== undefined && a.tokenHash !== RESET_TOKEN_HASH;
  }

  /** An admin's reset: the host's agent token stops working, and a join token may register the host id again. */
  resetHost(hostId: string): boolean {
    const a = this.devices.get(hostId);
    if (!a) return false;
    this.store.resetAgentToken(hostId, RESET_TOKEN_HASH);
    this.devices.put({ ...a, tokenHash: RESET_TOKEN_HASH, relayToken: null });
    return true;
  }

  /** Where and with what the dispatcher asks a host's agent for a live log, when it can. */
  relayTarget(hostId: string): { agentUrl: string; relayToken: string } | undefined {
    const a = this.devices.get(hostId);
    if (!a?.agentUrl || !a.relayToken) return undefined;
    const status = this.devices.status(hostId, Date.now());
    if (status !== "healthy" && status !== "draining" && status !== "stale") return undefined;
    return { agentUrl: a.agentUrl, relayToken: a.relayToken };
  }

  hostForAgentToken(token: string): string | undefined {
    return this.devices.hostForTokenHash(hashToken(token));
  }

  /**
   * Records a heartbeat (in memory only; persistSeen() writes it now and then) and answers which
   * jobs the agent must stop: those whose cancellation an operator asked for, and those it still
   * runs that are no longer its own (ended, requeued elsewhere, or unknown).
   */
  heartbeat(hostId: string, hb: HeartbeatRequest): { cancel: string[] } {
    const nowMs = Date.now();
    const before = this.devices.heartbeat(hostId, hb, nowMs);
    if (before === "stale" || before === "disconnected") this.requestSchedule();
    const active = this.jobs.activeOnHost(hostId);
    const cancel: string[] = [];
    for (const j of active) if (j.cancelRequested) cancel.push(j.id);
    if (hb.runningJobs?.length) {
      const ours = new Set(active.filter((j) => !j.cancelRequested).map((j) => j.id));
      for (const id of hb.runningJobs) if (!ours.has(id) && !cancel.includes(id)) cancel.push(id);
    }
    const last = this.deviceEmittedMs.get(hostId) ?? 0;
    if (before !== "healthy" || nowMs - last >= DEVICE_EVENT_EVERY_MS) {
      this.deviceEmittedMs.set(hostId, nowMs);
      this.emitDevice(hostId);
    }
    return { cancel };
  }

  /**
   * Resolves with the next assignment for this host: at once when one is waiting, else as soon as
   * the scheduler makes one, else null after `waitMs` (or at once while shutting down).
   */
  lease(hostId: string, waitMs: number, signal?: AbortSignal): Promise<LeaseGrant | null> {
    if (this.closing) return Promise.resolve(null);
    if (this.notPolling.delete(hostId)) this.requestSchedule();
    const now = this.take(hostId);
    if (now || waitMs <= 0) return Promise.resolve(now);
    return new Promise((resolve) => {
      let set = this.waiters.get(hostId);
      if (!set) this.waiters.set(hostId, (set = new Set()));
      const waiter: Waiter = (grant) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        set!.delete(waiter);
        if (set!.size === 0 && this.waiters.get(hostId) === set) this.waiters.delete(hostId);
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
    this.changed(job);
    return { job, attempt: job.attempt, gpuIndices: job.gpuIndices };
  }

  /** Hands a host's new assignments to its waiting long polls, one each, oldest poll first. */
  private wake(hostId: string): void {
    const set = this.waiters.get(hostId);
    if (!set) return;
    for (const waiter of [...set]) {
      const grant = this.take(hostId);
      if (!grant) return;
      waiter(grant);
    }
  }

  agentReport(jobId: string, hostId: string, ev: JobEventRequest): StoredJob {
    const job = this.changed(this.store.applyAgentReport(jobId, hostId, ev));
    if (job.state !== "running") {
      this.sync.forget(job.id);
      this.emitDevice(hostId);
      this.requestSchedule();
    }
    return job;
  }

  // ---- jobs ----

  submit(req: SubmitJob, owner: string | null = null): StoredJob {
    const name = req.name ?? defaultJobName(req.command);
    const job = this.store.insertJob({ ...req, name, project: req.project ?? "default", owner });
    this.queuedAtMs.set(job.id, Date.now());
    this.changed(job);
    this.requestSchedule();
    return job;
  }

  /** CVLab-Kit's `POST /api/queue/add`: a 1-GPU job running the lab's trainer on a config file. */
  queueAdd(configPath: string, priority: Priority, owner: string | null = null): StoredJob {
    const command = this.config.queueCommand.replaceAll("{config_path}", shq(configPath));
    return this.submit({
      name: safeJobName(configPath.split("/").pop()!.replace(/\.ya?ml$/, "")),
      command,
      gpus: 1,
      priority,
      maxRetries: 0,
    }, owner);
  }

  cancel(jobId: string, by: string): StoredJob {
    const job = this.changed(this.store.cancel(jobId, by));
    if (job.state === "cancelled" && job.hostId) {
      this.emitDevice(job.hostId);
      this.requestSchedule();
    }
    return job;
  }

  retry(jobId: string, by: string): StoredJob {
    const job = this.changed(this.store.retry(jobId, by));
    this.queuedAtMs.set(job.id, Date.now());
    this.requestSchedule();
    return job;
  }

  setPriority(jobId: string, priority: Priority): StoredJob {
    const job = this.changed(this.store.setPriority(jobId, priority));
    this.requestSchedule();
    return job;
  }

  // ---- devices ----

  listDevices(): Device[] {
    const nowMs = Date.now();
    return this.devices.all().map((a) => toDevice(a, this.jobs.activeOnHost(a.hostId), nowMs, this.config));
  }

  device(hostId: string): Device | undefined {
    const a = this.devices.get(hostId);
    return a ? toDevice(a, this.jobs.activeOnHost(hostId), Date.now(), this.config) : undefined;
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

  private emitDevice(hostId: string): void {
    if (this.events.subscribers === 0) return;
    const device = this.device(hostId);
    if (device) this.events.emit({ type: "device", device });
  }

  // ---- scheduling ----

  /**
   * Runs the scheduler once after the current burst of changes. A run follows at the next turn of
   * the event loop, but never sooner after the previous run than that run took, so a flood of
   * submits into a long queue spends at most about half the time scheduling.
   */
  requestSchedule(): void {
    if (this.scheduleTimer || this.closing) return;
    const run = () => {
      this.scheduleTimer = undefined;
      const t0 = performance.now();
      this.scheduleNow();
      this.lastScheduleTookMs = performance.now() - t0;
      this.lastScheduleEndMs = Date.now();
    };
    const waitMs = this.lastScheduleEndMs + this.lastScheduleTookMs - Date.now();
    this.scheduleTimer = waitMs >= 1 ? setTimeout(run, waitMs) : setImmediate(run);
  }

  /** One scheduling decision, committed: returns how many jobs it assigned. */
  scheduleNow(nowMs = Date.now()): number {
    if (this.jobs.queuedCount === 0) return 0;
    const devices: SchedDevice[] = this.devices.all().map((a) => {
      const busy = this.jobs.busyGpus(a.hostId);
      const stats = new Map((a.lastStats?.gpus ?? []).map((g) => [g.index, g]));
      return {
        hostId: a.hostId,
        schedulable: this.devices.status(a.hostId, nowMs) === "healthy" && !this.notPolling.has(a.hostId),
        labels: a.labels,
        gpus: a.gpus.map((g) => ({
          index: g.index,
          name: g.name,
          memoryTotalMiB: stats.get(g.index)?.memoryTotalMiB ?? g.memoryTotalMiB,
          free: !busy.has(g.index),
        })),
      };
    });
    const assignments = scheduleJobs(this.jobs.queued(), devices, nowMs);
    const touched = new Set<string>();
    for (const a of assignments) {
      const job = this.store.assign(a.jobId, a.hostId, a.gpuIndices);
      if (!job) continue;
      this.changed(job);
      touched.add(a.hostId);
    }
    for (const hostId of touched) {
      this.wake(hostId);
      this.emitDevice(hostId);
    }
    return touched.size === 0 ? 0 : assignments.length;
  }

  // ---- reaper ----

  /**
   * Gives back the jobs of disconnected agents (a lost attempt, counted against maxRetries) and
   * assignments that were not picked up, or picked up and not started, within assignTimeoutMs
   * (requeued without counting against retries).
   */
  reap(nowMs = Date.now()): void {
    let changed = false;
    const timeoutS = this.config.assignTimeoutMs / 1000;
    for (const job of [...this.jobs.activeJobs()]) {
      const status = this.devices.status(job.hostId, nowMs);
      let lost: StoredJob | undefined;
      if (status === "disconnected" || status === undefined) {
        lost = this.store.loseJob(job.id, `host ${job.hostId} went silent`, true);
      } else if (job.state === "assigned" && job.deliveredAtMs !== null && nowMs - job.deliveredAtMs > this.config.assignTimeoutMs) {
        lost = this.store.loseJob(job.id, `host ${job.hostId} took the lease but did not start the job within ${timeoutS} s`, false);
      } else if (job.state === "assigned" && job.deliveredAtMs === null && nowMs - job.assignedAtMs > this.config.assignTimeoutMs) {
        lost = this.store.loseJob(job.id, `host ${job.hostId} did not ask for the job within ${timeoutS} s`, false);
        this.notPolling.add(job.hostId);
      }
      if (!lost) continue;
      changed = true;
      if (lost.state === "queued") this.queuedAtMs.set(lost.id, nowMs);
      this.changed(lost);
      this.events.emit({
        type: "notice",
        level: "warn",
        message: `job ${lost.id} ${lost.state === "queued" ? `requeued as attempt ${lost.attempt}` : lost.state}: ${lost.reason ?? `host ${job.hostId} lost it`}`,
        at: new Date(nowMs).toISOString(),
      });
      this.emitDevice(job.hostId);
    }
    if (changed) this.requestSchedule();
  }

  /** Writes the heartbeats received since the last call to the store, in one transaction. */
  persistSeen(): void {
    const dirty = this.devices.takeDirty();
    this.store.saveSeen(dirty.map((a) => ({ hostId: a.hostId, lastSeenAt: new Date(a.lastSeenMs).toISOString(), stats: a.lastStats })));
  }
}

/** A name taken from outside (a config file's name): no control characters, never "." or "..". */
function safeJobName(s: string): string {
  const name = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?").slice(0, 200).trim();
  return name === "" || name === "." || name === ".." ? "job" : name;
}

export function defaultJobName(command: string | string[]): string {
  const words = Array.isArray(command) ? command : command.trim().split(/\s+/);
  // Control characters would reach operators' terminals; names never carry them.
  return words.slice(0, 3).join(" ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "?").slice(0, 60) || "job";
}
