// The dashboard's one data client: it keeps the store in step with the lab. It subscribes to the
// dispatcher's server-sent events, resyncs devices and jobs on (re)connect and periodically,
// reconnects with backoff when the dispatcher goes away, streams the open job's log through the
// dispatcher (which relays it from the agent: no token of ours ever goes to an agent's URL),
// polls the Docker engines while the Containers view is open, and performs the operator's
// commands. Everything from the API enters the store with control characters made visible.
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { isTerminalJobState, jobStates, type DispatcherEvent, type Job } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { ApiError, LabrigError, errorMessage } from "../core/errors.js";
import { visibleDeep, visibleText } from "../core/visible.js";
import { type ContainerSource, pollSources } from "./containers.js";
import {
  type Command,
  appendLogText,
  applyDispatcherEvents,
  applySnapshot,
  flash,
  replaceLogText,
  setConnection,
  setContainers,
  setLogSource,
  setSynced,
  upsertDevice,
  upsertJob,
} from "./state.js";
import type { TuiStore } from "./store.js";
import { Backoff } from "../core/backoff.js";

export interface DataClientOptions {
  url: string;
  token: string;
  store: TuiStore;
  /** Full re-read of devices and jobs while connected. */
  resyncMs?: number;
  backoffMs?: { initial: number; max: number };
  /** No bytes (not even the dispatcher's 15 s ping) for this long: the stream is dead. */
  silenceMs?: number;
  containerSources?: ContainerSource[];
  containerPollMs?: number;
  now?: () => Date;
}

const LOG_TAIL_LINES = 200;
/** How much of a synced job.log is shown when the agent cannot stream it. */
const SYNCED_LOG_TAIL_BYTES = 64 * 1024;
const activeStates = jobStates.filter((s) => !isTerminalJobState(s));
const finishedStates = jobStates.filter((s) => isTerminalJobState(s));

export class DataClient {
  readonly api: DispatcherClient;
  private readonly store: TuiStore;
  private readonly opts: Required<Omit<DataClientOptions, "store" | "containerSources">> & { containerSources: ContainerSource[] };
  private readonly stopped = new AbortController();
  private resyncTimer: NodeJS.Timeout | null = null;
  private containerTimer: NodeJS.Timeout | null = null;
  private log: { jobId: string; abort: AbortController } | null = null;
  private syncedReread: { jobId: string; timer: NodeJS.Timeout | null; pending: boolean } | null = null;
  private containerPoll: Promise<void> | null = null;
  private syncedLoadedAt = 0;

  constructor(opts: DataClientOptions) {
    this.store = opts.store;
    this.opts = {
      url: opts.url.replace(/\/+$/, ""),
      token: opts.token,
      resyncMs: opts.resyncMs ?? 15_000,
      backoffMs: opts.backoffMs ?? { initial: 500, max: 10_000 },
      silenceMs: opts.silenceMs ?? 40_000,
      containerSources: opts.containerSources ?? [],
      containerPollMs: opts.containerPollMs ?? 5_000,
      now: opts.now ?? (() => new Date()),
    };
    this.api = new DispatcherClient({ url: this.opts.url, token: opts.token, timeoutMs: 5_000, via: "the dashboard" });
  }

  start(): void {
    void this.eventLoop();
    this.resyncTimer = setInterval(() => {
      if (this.store.get().connection.status === "connected") void this.resync();
    }, this.opts.resyncMs);
    if (this.opts.containerSources.length) {
      this.containerTimer = setInterval(() => {
        if (this.store.get().view === "containers") void this.refreshContainers();
      }, this.opts.containerPollMs);
    }
  }

  stop(): void {
    this.stopped.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.containerTimer) clearInterval(this.containerTimer);
    this.stopLog();
  }

  // ---- the event stream ----

  private async eventLoop(): Promise<void> {
    const backoff = new Backoff(this.opts.backoffMs.initial, this.opts.backoffMs.max);
    while (!this.stopped.signal.aborted) {
      try {
        await this.streamEvents(() => backoff.reset());
        throw new LabrigError("the dispatcher closed the event stream");
      } catch (err) {
        if (this.stopped.signal.aborted) return;
        const retryAt = Date.now() + backoff.peek();
        this.store.update((s) => setConnection(s, "disconnected", this.opts.now(), { error: describe(err), retryAt }));
        await backoff.wait(this.stopped.signal);
      }
    }
  }

  private async streamEvents(onConnected: () => void): Promise<void> {
    const conn = new AbortController();
    const signal = AbortSignal.any([this.stopped.signal, conn.signal]);
    let watchdog: NodeJS.Timeout | undefined;
    const feedWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => conn.abort(new LabrigError(`no data from the dispatcher for ${this.opts.silenceMs / 1000} s`)), this.opts.silenceMs);
    };
    try {
      feedWatchdog();
      const res = await fetch(`${this.opts.url}/api/events`, { headers: { authorization: `Bearer ${this.opts.token}`, accept: "text/event-stream" }, signal });
      if (res.status === 401) throw new LabrigError("the dispatcher refused the token (HTTP 401): pass its admin token with --token");
      if (!res.ok || !res.body) throw new LabrigError(`GET /api/events answered HTTP ${res.status}`);
      onConnected();
      this.store.update((s) => setConnection(s, "connected", this.opts.now()));
      void this.resync();
      let burst: DispatcherEvent[] = [];
      const parser = createParser({ onEvent: (m) => this.onMessage(m, burst) });
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        feedWatchdog();
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (burst.length) {
          const evs = burst;
          burst = [];
          this.store.update((s) => applyDispatcherEvents(s, evs, this.opts.now()));
          for (const ev of evs) this.afterEvent(ev);
        }
      }
    } catch (err) {
      throw conn.signal.aborted && conn.signal.reason ? conn.signal.reason : err;
    } finally {
      clearTimeout(watchdog);
      conn.abort();
    }
  }

  private onMessage(m: EventSourceMessage, burst: DispatcherEvent[]): void {
    let ev: DispatcherEvent;
    try {
      ev = JSON.parse(m.data) as DispatcherEvent;
    } catch {
      return;
    }
    if (ev && typeof ev === "object" && "type" in ev) burst.push(visibleDeep(ev));
  }

  /** What an event means beyond the state: the open job's log and synced files. */
  private afterEvent(ev: DispatcherEvent): void {
    if (ev.type === "log" && this.syncedReread?.jobId === ev.jobId && ev.path === "job.log") this.scheduleSyncedReread();
    if (ev.type === "log" && this.store.get().detailJobId === ev.jobId && Date.now() - this.syncedLoadedAt > 2000) {
      this.syncedLoadedAt = Date.now();
      void this.loadSynced(ev.jobId);
    }
    if (ev.type === "job" && this.log?.jobId === ev.job.id && isTerminalJobState(ev.job.state)) {
      // The agent's stream ends with the job; the synced copy is complete soon after.
      this.scheduleSyncedReread(1000);
    }
  }

  /** Re-reads devices and jobs whole: what SSE does not replay (it has no history). */
  async resync(): Promise<void> {
    try {
      const [devices, active, finished] = visibleDeep(
        await Promise.all([this.api.devices(), this.api.jobs({ state: [...activeStates], limit: 5000 }), this.api.jobs({ state: [...finishedStates], limit: 200 })]),
      );
      this.store.update((s) => applySnapshot(s, devices, [...active, ...finished], this.opts.now()));
    } catch {
      /* the event stream notices a lost dispatcher and says so; the next resync catches up */
    }
  }

  // ---- commands ----

  async perform(command: Command): Promise<void> {
    const now = () => Date.now();
    try {
      switch (command.kind) {
        case "cancel": {
          const job = visibleDeep(await this.api.cancel(command.jobId));
          this.store.updateNow((s) => flash(upsertJob(s, job), `asked to cancel job ${job.id}: now ${job.state}`, "info", now()));
          return;
        }
        case "retry": {
          const job = visibleDeep(await this.api.retry(command.jobId));
          this.store.updateNow((s) => flash(upsertJob(s, job), `job ${job.id} queued again (attempt ${job.attempt})`, "info", now()));
          return;
        }
        case "cancel-group":
        case "retry-group": {
          const cancel = command.kind === "cancel-group";
          const r = visibleDeep(cancel ? await this.api.cancelGroup(command.groupId) : await this.api.retryGroup(command.groupId));
          const n = r.jobs.length;
          const text = `group ${command.groupId}: ${n} job${n === 1 ? "" : "s"} ${cancel ? "cancelled or asked to stop" : "queued again"}`;
          this.store.updateNow((s) => flash(r.jobs.reduce(upsertJob, s), text, "info", now()));
          return;
        }
        case "priority": {
          const job = visibleDeep(await this.api.setPriority(command.jobId, command.priority));
          this.store.updateNow((s) => flash(upsertJob(s, job), `job ${job.id} priority is now ${job.priority}`, "info", now()));
          return;
        }
        case "drain":
        case "undrain": {
          const device = visibleDeep(command.kind === "drain" ? await this.api.drain(command.hostId) : await this.api.undrain(command.hostId));
          this.store.updateNow((s) => flash(upsertDevice(s, device), `${device.hostId} is ${device.draining ? "draining: no new jobs" : "taking jobs again"}`, "info", now()));
          return;
        }
      }
    } catch (err) {
      this.store.updateNow((s) => flash(s, `${command.kind.replace("-", " ")} failed: ${describe(err)}`, "error", now()));
    }
  }

  // ---- the job on screen ----

  /** Loads a job's detail and synced files, and starts its log tail when asked. */
  async openJob(jobId: string, follow: boolean): Promise<void> {
    this.stopLog();
    let job: Job | undefined = this.store.get().jobs[jobId];
    try {
      job = visibleDeep(await this.api.job(jobId));
      const fresh = job;
      this.store.update((s) => upsertJob(s, fresh));
    } catch (err) {
      if (!job) {
        this.store.updateNow((s) => flash(s, `cannot load job ${jobId}: ${describe(err)}`, "error", Date.now()));
        return;
      }
    }
    void this.loadSynced(jobId);
    if (follow) await this.followLog(job);
    else await this.readSyncedLog(jobId);
  }

  setFollow(jobId: string, following: boolean): void {
    if (!following) {
      this.stopLog();
      return;
    }
    const job = this.store.get().jobs[jobId];
    if (job) void this.followLog(job);
  }

  async loadSynced(jobId: string): Promise<void> {
    try {
      const st = await this.api.syncStatus(jobId);
      const files = Object.entries(st.files)
        .map(([path, f]) => ({ path, size: f.size, updatedAt: f.updatedAt }))
        .sort((a, b) => a.path.localeCompare(b.path));
      this.store.update((s) => setSynced(s, { jobId, attempt: st.attempt, files, error: null }));
    } catch (err) {
      this.store.update((s) => setSynced(s, { jobId, attempt: null, files: [], error: describe(err) }));
    }
  }

  private async followLog(job: Job): Promise<void> {
    this.stopLog();
    const abort = new AbortController();
    this.log = { jobId: job.id, abort };
    const live = !isTerminalJobState(job.state) && job.state !== "queued";
    if (live) {
      try {
        await this.streamLiveLog(job.id, abort.signal);
        if (abort.signal.aborted) return;
      } catch (err) {
        if (abort.signal.aborted) return;
        this.store.update((s) => setLogSource(s, job.id, null, `the dispatcher does not stream the log (${describe(err)}); showing the synced copy`));
      }
    }
    // Finished, not yet started, or the stream failed: the dispatcher's synced copy, re-read as
    // the agent appends to it.
    this.syncedReread = { jobId: job.id, timer: null, pending: false };
    await this.readSyncedLog(job.id);
  }

  /** The dispatcher's `GET /api/jobs/{id}/log?follow=1`: live from the agent while the job runs. */
  private async streamLiveLog(jobId: string, signal: AbortSignal): Promise<void> {
    const decoder = new TextDecoder();
    const onSource = (source: "agent" | "dispatcher") => this.store.update((s) => setLogSource(replaceLogText(s, jobId, ""), jobId, source));
    await this.api.jobLog(jobId, { follow: true, tail: LOG_TAIL_LINES, signal, onSource }, (bytes) => {
      const text = visibleText(decoder.decode(bytes, { stream: true }));
      this.store.update((s) => appendLogText(s, jobId, text));
    });
  }

  private async readSyncedLog(jobId: string): Promise<void> {
    try {
      const bytes = await this.api.syncGet(jobId, "job.log");
      const tail = bytes.length > SYNCED_LOG_TAIL_BYTES ? bytes.subarray(bytes.length - SYNCED_LOG_TAIL_BYTES) : bytes;
      let text = tail.toString("utf8");
      if (tail !== bytes) text = text.slice(text.indexOf("\n") + 1);
      text = visibleText(text);
      this.store.update((s) => setLogSource(replaceLogText(s, jobId, text), jobId, "dispatcher"));
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 404 ? "no job.log synced yet" : describe(err);
      this.store.update((s) => setLogSource(s, jobId, "dispatcher", msg));
    }
  }

  /** Coalesces re-reads of the synced log to one a second while appends arrive. */
  private scheduleSyncedReread(delayMs = 1000): void {
    const r = this.syncedReread;
    if (!r || r.timer) return;
    r.timer = setTimeout(() => {
      r.timer = null;
      if (this.syncedReread === r && this.store.get().log?.following) void this.readSyncedLog(r.jobId);
    }, delayMs);
  }

  private stopLog(): void {
    this.log?.abort.abort();
    this.log = null;
    if (this.syncedReread?.timer) clearTimeout(this.syncedReread.timer);
    this.syncedReread = null;
  }

  // ---- containers ----

  refreshContainers(): Promise<void> {
    if (!this.opts.containerSources.length) {
      this.store.update((s) => setContainers(s, [], "no Docker engines to ask: set DOCKER_HOST, or pass --inventory to reach the hosts' engines over SSH"));
      return Promise.resolve();
    }
    // One poll at a time: stats samples take about a second each.
    this.containerPoll ??= pollSources(this.opts.containerSources, this.opts.now())
      .then((hosts) => this.store.update((s) => setContainers(s, hosts)))
      .finally(() => (this.containerPoll = null));
    return this.containerPoll;
  }
}

function describe(err: unknown): string {
  if (err instanceof LabrigError) return err.message;
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code) return cause.code;
  return errorMessage(err);
}
