// The dispatcher's behaviour, between the HTTP routes and the store: registering agents, taking
// heartbeats, scheduling the queue onto free GPUs, handing out leases through long polls, the
// reaper for silent agents, and events for everything that changes.
//
// Every job change goes through the store (one transaction each) and the job it returns is fed to
// the in-memory JobIndex, which the hot paths (heartbeats, scheduling, the reaper) read instead of
// the database.
import { type Device, type HeartbeatRequest, type ImportedJob, type JobEventRequest, type PersonLimits, type Priority, type QueueAddRequest, type RegisterRequest, type SubmitJob, type UsageReport, hasForeignProcesses, isTerminalJobState } from "../core/api.js";
import type { CodeSummary } from "../core/code.js";
import { gpusForDevice, parseCvlabConfig } from "../core/cvlab-config.js";
import { jobFromQueueAdd, RequestProblem, settleJob } from "./cvlab.js";
import { DeviceRegistry, toDevice, type Thresholds } from "./devices.js";
import { EventBus } from "./events.js";
import { type ActiveJob, JobIndex } from "./job-index.js";
import { neverFits, scheduleQueue, type OwnerLimits, type SchedDevice, type SchedJob } from "./scheduler.js";
import { decayedGpuHours, DEFAULT_RESOURCES, describeWait, gpuHoursSince, jobResources, type ResourceSettings } from "./resources.js";
import { EVERYONE } from "./people.js";
import { Store, StoreConflict, type StoredJob } from "./store.js";
import { SlurmJobs } from "./slurm-jobs.js";
import { SyncStore } from "./sync-store.js";
import { generateToken, hashToken } from "./tokens.js";

export interface ServiceConfig extends Thresholds {
  heartbeatIntervalS: number;
  /** A job handed to a host whose heartbeats leave it out this long (and that never reported it ended) is lost. */
  missingGraceMs: number;
  /** A running job this long past its timeout ends timed_out at the dispatcher, whatever its agent says. */
  timeoutGraceMs: number;
  /** A lease not started (no `running` event), or an assignment not picked up, within this goes back to the queue. */
  assignTimeoutMs: number;
  /** What runs a CVLab-Kit config: `{config_path}` is its path on the GPU host. */
  queueCommand: string;
  /** The lab's CVLab-Kit checkout on the GPU hosts, where its trainer runs. */
  cvlabDir?: string;
  persistSeenEveryMs: number;
  /** Default cores and memory for jobs that name none, and fair share's half-life (DEFAULT_RESOURCES when absent). */
  resources?: ResourceSettings;
  /**
   * Who places queued jobs on hosts: labrig's own scheduler (default), or Slurm, in which case this
   * service assigns nothing itself and a job goes to the host whose Slurm batch script claims it.
   */
  scheduler?: "labrig" | "slurm";
}

/** Who may have what: each person's limits (their own, else everyone's default). */
export interface LimitsSource {
  limitsOf(owner: string | null): PersonLimits;
  limits(): Map<string, PersonLimits>;
}

/**
 * The queue with no job asking more cores or memory than the largest host has: the lab's defaults
 * (4 cores a GPU) must not make a job unrunnable on a smaller workstation, and a job that asked
 * for more itself was refused at submit when such hosts were there.
 */
export function withinLargestHost(queue: SchedJob[], devices: SchedDevice[]): SchedJob[] {
  const largest = (f: (d: SchedDevice) => number | undefined) => Math.max(0, ...devices.map((d) => (Number.isFinite(f(d)) ? f(d)! : Infinity)));
  const cpus = largest((d) => d.cpus);
  const memoryMiB = largest((d) => d.memoryMiB);
  if (devices.length === 0 || (cpus === Infinity && memoryMiB === Infinity)) return queue;
  return queue.map((j) => ((j.cpus ?? 0) > cpus || (j.memoryMiB ?? 0) > memoryMiB ? { ...j, cpus: Math.min(j.cpus ?? 0, cpus), memoryMiB: Math.min(j.memoryMiB ?? 0, memoryMiB) } : j));
}

/** How long a fair-share reading of the jobs table is used before it is taken again. */
const USAGE_REFRESH_MS = 60_000;

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
  /** People's limits (set by main.ts; none: no limits). */
  people: LimitsSource | undefined;
  /** Why each of the first waiting jobs waits, from the last scheduling decision. */
  private waiting = new Map<string, string>();
  private usageCache: { atMs: number; decayed: Record<string, number> } | undefined;
  /** Which Slurm job carries each attempt, and its claim token (used in slurm mode only). */
  readonly slurmJobs: SlurmJobs;

  constructor(
    readonly store: Store,
    readonly sync: SyncStore,
    readonly config: ServiceConfig,
    private readonly startedMs = Date.now(),
  ) {
    this.devices = new DeviceRegistry(config);
    this.slurmJobs = new SlurmJobs(store.db);
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
    this.sync.close();
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
    // A start or an end changes who has used what: fair share reads the jobs table again.
    if (job.state === "running" || isTerminalJobState(job.state)) this.usageCache = undefined;
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
  heartbeat(hostId: string, hb: HeartbeatRequest, nowMs = Date.now()): { cancel: string[] } {
    const othersBefore = gpusInUseByOthers(this.devices.get(hostId)?.lastStats);
    const before = this.devices.heartbeat(hostId, hb, nowMs);
    const othersNow = gpusInUseByOthers(hb);
    // A host back, or a GPU that a process outside labrig has let go of: work may fit now.
    if (before === "stale" || before === "disconnected" || [...othersBefore].some((i) => !othersNow.has(i))) this.requestSchedule();
    const active = this.jobs.activeOnHost(hostId);
    if (hb.runningJobs) noteListedJobs(active, hb.runningJobs, nowMs);
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

  submit(req: SubmitJob & { codeSummary?: CodeSummary }, owner: string | null = null, groupId: string | null = null): StoredJob {
    const job = this.store.insertJob({ ...settleJob(req, this.config, defaultJobName), resources: jobResources(req, this.resources), owner }, new Date(), groupId);
    this.queued(job);
    this.requestSchedule();
    return job;
  }

  private queued(job: StoredJob): void {
    this.queuedAtMs.set(job.id, Date.now());
    this.changed(job);
  }

  /** CVLab-Kit's `POST /api/queue/add`: its inline YAML (or older config path) as a job running the lab's trainer. */
  queueAdd(body: QueueAddRequest, owner: string | null = null, isAdmin = true): StoredJob {
    const req = jobFromQueueAdd(body, this.config);
    this.admit([req], owner, isAdmin);
    return this.submit({ ...req, ...(req.name !== undefined ? { name: safeJobName(req.name) } : {}) }, owner);
  }

  /** A sweep: all its jobs queued at once under one group. */
  submitGroup(name: string, reqs: (SubmitJob & { codeSummary?: CodeSummary })[], owner: string | null = null): { group: JobGroupView; jobs: StoredJob[] } {
    const settled = reqs.map((r) => ({ ...settleJob(r, this.config, defaultJobName), resources: jobResources(r, this.resources), owner }));
    const { group, jobs } = this.store.insertGroup(name, settled);
    for (const j of jobs) this.queued(j);
    this.requestSchedule();
    return { group: this.groupView(group.id)!, jobs };
  }

  get resources(): ResourceSettings {
    return this.config.resources ?? DEFAULT_RESOURCES;
  }

  /**
   * Refuses, before anything is stored, jobs a person may not queue: `high` without the right
   * (admins always have it), more queued jobs than their limit, and a job no registered host
   * could ever run (a host id is left out: that host may join later).
   */
  admit(reqs: SubmitJob[], owner: string | null, isAdmin: boolean): void {
    const limits = this.people?.limitsOf(owner);
    if (!isAdmin && reqs.some((r) => r.priority === "high") && limits && !limits.high) {
      throw new RequestProblem("priority", `high is for admins and people granted it (labrig users limits ${owner ?? "NAME"} --high); ask for normal, or ask an admin`, 403, "forbidden");
    }
    if (limits?.maxQueued != null && this.jobs.queuedOf(owner) + reqs.length > limits.maxQueued) {
      const queued = this.jobs.queuedOf(owner);
      throw new RequestProblem("(body)", `${owner ?? "you"} may have at most ${limits.maxQueued} queued jobs and has ${queued}${reqs.length > 1 ? `; this adds ${reqs.length}` : ""}: wait for some to start, or ask an admin to raise the limit`, 429, "limit_reached");
    }
    const devices = this.schedDevices(Date.now());
    if (devices.length === 0) return;
    for (const r of reqs) {
      const { hostId: _pinned, ...constraints } = r.constraints ?? {};
      // Only what the job asked for itself: the lab's defaults shrink to the hosts there are (scheduleNow).
      const asked = { ...(r.cpus !== undefined ? { cpus: r.cpus } : {}), ...(r.memoryGiB !== undefined ? { memoryMiB: Math.round(r.memoryGiB * 1024) } : {}) };
      const why = neverFits({ id: "new", priority: r.priority, createdAtMs: 0, gpus: r.gpus, constraints, ...asked }, devices.map((d) => ({ ...d, schedulable: true })));
      if (why) throw new RequestProblem(r.gpus > 0 ? "gpus" : "constraints", `no host in this lab could ever run it: ${why}`);
    }
  }

  /** Each owner's recent GPU-hours with the half-life applied, read again at most once a minute. */
  decayedUsage(nowMs = Date.now()): Record<string, number> {
    if (this.usageCache && nowMs - this.usageCache.atMs < USAGE_REFRESH_MS) return this.usageCache.decayed;
    const halfLife = this.resources.fairShareHalfLifeMs;
    const rows = this.store.usageSince(new Date(nowMs - 8 * halfLife));
    this.usageCache = { atMs: nowMs, decayed: decayedGpuHours(rows, nowMs, halfLife) };
    return this.usageCache.decayed;
  }

  /** Why a queued job waits, as the last scheduling decision said (the first 200 waiting jobs). */
  waitingReason(jobId: string): string | null {
    return this.waiting.get(jobId) ?? null;
  }

  /** `GET /api/usage`: each person's GPU-hours this week and lately (decayed), what they hold and queue, their limits. */
  usageReport(nowMs = Date.now()): UsageReport {
    const halfLife = this.resources.fairShareHalfLifeMs;
    const rows = this.store.usageSince(new Date(nowMs - 8 * halfLife));
    const decayed = decayedGpuHours(rows, nowMs, halfLife);
    const week = gpuHoursSince(rows, nowMs - 7 * 24 * 3600_000, nowMs);
    const held = this.jobs.heldByOwner();
    const queued: Record<string, number> = {};
    for (const j of this.jobs.queued()) queued[j.owner ?? ""] = (queued[j.owner ?? ""] ?? 0) + 1;
    const owners = new Set([...Object.keys(decayed), ...Object.keys(week), ...Object.keys(held.jobs), ...Object.keys(queued)]);
    const total = Object.values(decayed).reduce((a, b) => a + b, 0);
    const round = (n: number) => Math.round(n * 100) / 100;
    const people = [...owners].sort().map((o) => {
      const { name: _name, ...limits } = this.people?.limitsOf(o === "" ? null : o) ?? { name: o, maxGpus: null, maxQueued: null, high: false };
      return {
        owner: o === "" ? null : o,
        gpuHoursWeek: round(week[o] ?? 0),
        decayedGpuHours: round(decayed[o] ?? 0),
        share: total > 0 ? round((decayed[o] ?? 0) / total) : 0,
        runningGpus: held.gpus[o] ?? 0,
        runningJobs: held.jobs[o] ?? 0,
        queuedJobs: queued[o] ?? 0,
        limits,
      };
    });
    return { halfLifeDays: round(halfLife / (24 * 3600_000)), people };
  }

  groupView(id: string): JobGroupView | undefined {
    const g = this.store.getGroup(id);
    if (!g) return undefined;
    const jobs = this.store.groupJobs(id);
    const states: Record<string, number> = {};
    for (const j of jobs) states[j.state] = (states[j.state] ?? 0) + 1;
    return { id: g.id, name: g.name, createdAt: g.created_at, jobs: jobs.length, states };
  }

  /** Cancels a group's jobs that have not ended, as one change. */
  cancelGroup(id: string, by: string): StoredJob[] {
    const jobs = this.store.cancelGroup(id, by).map((j) => this.changed(j));
    for (const hostId of new Set(jobs.filter((j) => j.state === "cancelled" && j.hostId).map((j) => j.hostId!))) this.emitDevice(hostId);
    this.requestSchedule();
    return jobs;
  }

  /** Queues a group's failed, cancelled and timed-out jobs again, as one change. */
  retryGroup(id: string, by: string): StoredJob[] {
    const jobs = this.store.retryGroup(id, by);
    for (const j of jobs) this.queued(j);
    this.requestSchedule();
    return jobs;
  }

  /**
   * Brings another queue's jobs over: each not imported before is inserted in its state there
   * (queued ones run here); one already imported is skipped. `dryRun` changes nothing.
   */
  importJobs(source: string, jobs: ImportedJob[], dryRun: boolean) {
    const imported: { externalId: string; id: string | null; state: StoredJob["state"] }[] = [];
    const skipped: { externalId: string; id: string; reason: string }[] = [];
    for (const j of jobs) {
      const existing = this.store.importedJobId(source, j.externalId);
      if (existing) {
        skipped.push({ externalId: j.externalId, id: existing, reason: `already imported as job ${existing}` });
        continue;
      }
      const gpus = j.config ? gpusForDevice(parseCvlabConfig(j.config, `${j.externalId} config`).data.device) : 1;
      const settled = settleJob({ ...j, config: j.config ?? undefined, gpus, maxRetries: 0 }, this.config, defaultJobName);
      if (dryRun) {
        imported.push({ externalId: j.externalId, id: null, state: j.state });
        continue;
      }
      const job = this.store.insertImported(source, { ...settled, ...j, config: settled.config });
      if (job.state === "queued") this.queued(job);
      else this.changed(job);
      imported.push({ externalId: j.externalId, id: job.id, state: job.state });
    }
    if (!dryRun) this.requestSchedule();
    return { imported, skipped };
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

  /** The devices as the scheduler sees them: free GPUs, and the cores and memory jobs may still take. */
  private schedDevices(nowMs: number): SchedDevice[] {
    return this.devices.all().map((a) => {
      const busy = this.jobs.busyGpus(a.hostId);
      const stats = new Map((a.lastStats?.gpus ?? []).map((g) => [g.index, g]));
      const used = this.jobs.usedOnHost(a.hostId);
      return {
        hostId: a.hostId,
        schedulable: this.devices.status(a.hostId, nowMs) === "healthy" && !this.notPolling.has(a.hostId),
        labels: a.labels,
        gpus: a.gpus.map((g) => ({
          index: g.index,
          name: g.name,
          memoryTotalMiB: stats.get(g.index)?.memoryTotalMiB ?? g.memoryTotalMiB,
          free: !busy.has(g.index),
          foreign: hasForeignProcesses(stats.get(g.index) ?? {}),
        })),
        cpus: a.lastStats?.cpuCount,
        memoryMiB: a.lastStats?.memoryTotalMiB,
        usedCpus: used.cpus,
        usedMemoryMiB: used.memoryMiB,
      };
    });
  }

  /** The lab's limits as the scheduler takes them: GPUs at once, per person and by default. */
  private ownerLimits(): OwnerLimits {
    const all = this.people?.limits();
    if (!all || all.size === 0) return {};
    const owners: Record<string, number> = {};
    for (const [name, l] of all) if (name !== EVERYONE && l.maxGpus !== null) owners[name] = l.maxGpus;
    const fallback = all.get(EVERYONE)?.maxGpus ?? undefined;
    return { maxGpusPerOwner: { ...(fallback !== null && fallback !== undefined ? { default: fallback } : {}), owners } };
  }

  /** One scheduling decision, committed: returns how many jobs it assigned (none when Slurm schedules). */
  scheduleNow(nowMs = Date.now()): number {
    if (this.jobs.queuedCount === 0 || this.config.scheduler === "slurm") {
      this.waiting.clear();
      return 0;
    }
    const devices = this.schedDevices(nowMs);
    const queue = withinLargestHost(this.jobs.queued(), devices);
    const held = this.jobs.heldByOwner();
    const decision = scheduleQueue({ queue, devices, nowMs, usage: this.decayedUsage(nowMs), runningGpusByOwner: held.gpus, runningJobsByOwner: held.jobs, limits: this.ownerLimits() });
    const assignments = decision.assignments;
    const byId = new Map(queue.map((j) => [j.id, j]));
    this.waiting = new Map(Object.entries(decision.waiting).map(([id, r]) => [id, describeWait(r, byId.get(id) ?? { gpus: 0 })]));
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

  // ---- Slurm ----

  /**
   * Slurm's allocation for an attempt, claimed by its batch script on `hostId` (Slurm's node name,
   * which is the host's agent id) with the GPUs Slurm gave it: the job is assigned there, and the
   * host's agent leases and runs it as any job. The same claim again (a retried request) answers
   * the job as it is; anything else that is not a queued job at that attempt is a conflict.
   */
  claimForSlurm(jobId: string, attempt: number, hostId: string, gpuIndices: number[]): StoredJob {
    const job = this.store.getJob(jobId);
    if (!job) throw new StoreConflict("not_found", `job ${jobId} does not exist`);
    if (job.attempt !== attempt) throw new StoreConflict("stale_attempt", `job ${jobId} is at attempt ${job.attempt}, not ${attempt}: this Slurm job is no longer its`);
    if ((job.state === "assigned" || job.state === "running") && job.hostId === hostId && sameIndices(job.gpuIndices, gpuIndices)) return job;
    if (job.state !== "queued") throw new StoreConflict("not_queued", `job ${jobId} attempt ${attempt} is ${job.state}${job.hostId ? ` on ${job.hostId}` : ""}; it cannot be claimed`);
    const agent = this.devices.get(hostId);
    if (!agent || agent.tokenHash === RESET_TOKEN_HASH) {
      throw new StoreConflict("unknown_host", `host ${hostId} has no registered labrig agent: each Slurm node name must be the host id of the labrig agent on that node`);
    }
    if (gpuIndices.length !== job.gpus) throw new StoreConflict("gpu_mismatch", `job ${jobId} asks for ${job.gpus} GPU(s) but Slurm's allocation names ${gpuIndices.length} ([${gpuIndices.join(",")}])`);
    const known = new Set(agent.gpus.map((g) => g.index));
    const unknown = gpuIndices.filter((i) => !known.has(i));
    if (unknown.length) throw new StoreConflict("gpu_mismatch", `host ${hostId}'s agent has no GPU ${unknown.join(", ")}; gres.conf and the agent disagree about the host's GPUs`);
    const busy = this.jobs.busyGpus(hostId);
    const taken = gpuIndices.filter((i) => busy.has(i));
    if (taken.length) throw new StoreConflict("gpu_busy", `GPU ${taken.join(", ")} of host ${hostId} is held by another labrig job`);
    const assigned = this.store.assign(jobId, hostId, gpuIndices);
    if (!assigned) throw new StoreConflict("not_queued", `job ${jobId} is no longer queued`);
    this.changed(assigned);
    this.wake(hostId);
    this.emitDevice(hostId);
    return assigned;
  }

  /**
   * An attempt whose Slurm job left Slurm's queue without claiming it (its batch script failed, the
   * claim was refused, someone scancelled it outside labrig): a new attempt, sbatched again, while
   * retries remain, else failed. Nothing happens when the job moved on meanwhile.
   */
  slurmJobEndedUnclaimed(jobId: string, attempt: number, why: string): StoredJob | undefined {
    const job = this.store.endUnstartedAttempt(jobId, attempt, why);
    if (job) this.attemptGivenUp(job, why, Date.now());
    return job;
  }

  /** After an attempt was given up (requeued as a new attempt, or ended): the queue's clock, the change, and a notice saying why. */
  private attemptGivenUp(job: StoredJob, why: string, nowMs: number): void {
    if (job.state === "queued") this.queuedAtMs.set(job.id, nowMs);
    this.changed(job);
    this.events.emit({ type: "notice", level: "warn", message: `job ${job.id} ${job.state === "queued" ? `requeued as attempt ${job.attempt}` : job.state}: ${why}`, at: new Date(nowMs).toISOString() });
  }

  /** What a Slurm batch script waits for: whether its attempt is over (ended, or replaced by a newer attempt) and whether it succeeded. */
  slurmClaimStatus(jobId: string, attempt: number): { jobId: string; attempt: number; state: StoredJob["state"]; currentAttempt: number; done: boolean; succeeded: boolean } {
    const job = this.store.getJob(jobId);
    if (!job) throw new StoreConflict("not_found", `job ${jobId} does not exist`);
    const superseded = job.attempt !== attempt;
    const done = superseded || isTerminalJobState(job.state);
    return { jobId, attempt, state: job.state, currentAttempt: job.attempt, done, succeeded: !superseded && job.state === "succeeded" };
  }

  // ---- reaper ----

  /**
   * Ends or gives back the jobs that are no longer really running where the dispatcher has them:
   * - the host has been silent past the lost threshold: lost (requeued with the attempt raised while
   *   retries remain, else failed `lost`); a host only disconnected keeps its jobs;
   * - the host heartbeats but has left the job out for the missing grace: lost the same way (a job
   *   never started does not use up a retry);
   * - running past its timeout plus a grace: timed_out, even when its agent is silent;
   * - assignments not picked up, or picked up and neither started nor listed by a host that can be
   *   heard, within assignTimeoutMs: requeued without using up a retry.
   * All ages are measured with the dispatcher's own clock.
   */
  reap(nowMs = Date.now()): void {
    let changed = false;
    const timeoutS = this.config.assignTimeoutMs / 1000;
    // While the dispatcher was down no agent could report a start: its restart restarts those clocks.
    const since = (ms: number) => Math.max(ms, this.startedMs);
    for (const job of [...this.jobs.activeJobs()]) {
      const status = this.devices.status(job.hostId, nowMs);
      const at = new Date(nowMs);
      let why: string | undefined;
      let lost: StoredJob | undefined;
      if (this.devices.isLost(job.hostId, nowMs)) {
        const silentS = Math.round((nowMs - (this.devices.get(job.hostId)?.lastSeenMs ?? 0)) / 1000);
        why = `host ${job.hostId} silent for ${silentS} s, past the lost threshold (${this.config.lostAfterMs / 1000} s)`;
        lost = this.store.loseJob(job.id, why, true, at);
      } else if (job.state === "running" && job.startedAtMs !== null && job.timeoutS !== null && nowMs >= job.startedAtMs + job.timeoutS * 1000 + this.config.timeoutGraceMs) {
        why = `timed out after ${job.timeoutS} s (ended by the dispatcher: host ${job.hostId} reported no end within ${this.config.timeoutGraceMs / 1000} s of the timeout)`;
        lost = this.store.timeOutJob(job.id, why, at);
      } else if (status === "disconnected") {
        continue;
      } else if (job.missingSinceMs !== null && nowMs - job.missingSinceMs >= this.config.missingGraceMs) {
        why = `host ${job.hostId} no longer reports the job (left out of its heartbeats for ${Math.round((nowMs - job.missingSinceMs) / 1000)} s) and never reported it ended`;
        lost = this.store.loseJob(job.id, why, job.state === "running", at);
      } else if (job.state === "assigned" && job.deliveredAtMs !== null && !job.listedByHost && nowMs - since(job.deliveredAtMs) > this.config.assignTimeoutMs) {
        why = `host ${job.hostId} took the lease but did not start the job within ${timeoutS} s`;
        lost = this.store.loseJob(job.id, why, false, at);
      } else if (job.state === "assigned" && job.deliveredAtMs === null && nowMs - since(job.assignedAtMs) > this.config.assignTimeoutMs) {
        why = `host ${job.hostId} did not ask for the job within ${timeoutS} s`;
        lost = this.store.loseJob(job.id, why, false, at);
        this.notPolling.add(job.hostId);
      }
      if (!lost) continue;
      changed = true;
      this.attemptGivenUp(lost, why!, nowMs);
      this.sync.forget(lost.id);
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

export interface JobGroupView {
  id: string;
  name: string;
  createdAt: string;
  jobs: number;
  states: Record<string, number>;
}

/**
 * Marks which of a host's active jobs its heartbeat (received at `nowMs`) lists. A job handed to
 * the agent (or running) that is left out starts its missing clock; a listed one stops it. A job
 * not yet handed over is not the agent's to list.
 */
export function noteListedJobs(active: ActiveJob[], listed: string[], nowMs: number): void {
  const ids = new Set(listed);
  for (const j of active) {
    if (ids.has(j.id)) {
      j.listedByHost = true;
      j.missingSinceMs = null;
    } else if (j.state === "running" || j.deliveredAtMs !== null) {
      j.listedByHost = false;
      j.missingSinceMs ??= nowMs;
    }
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

const sameIndices = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** The GPUs (by index) a heartbeat says a process outside labrig is using. */
function gpusInUseByOthers(hb: HeartbeatRequest | null | undefined): Set<number> {
  const out = new Set<number>();
  for (const g of hb?.gpus ?? []) if (hasForeignProcesses(g)) out.add(g.index);
  return out;
}
