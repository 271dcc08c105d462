// The job on screen: its detail, its synced files, and its log. While the job runs the log comes
// live through the dispatcher (which relays it from the agent: no token of ours ever goes to an
// agent's URL); finished, queued, or when that stream fails, it is the dispatcher's synced copy,
// re-read as `log` events say the agent appended to it.
import { isTerminalJobState, type DispatcherEvent, type Job } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { ApiError } from "../core/errors.js";
import { visibleDeep, visibleText } from "../core/visible.js";
import { describeError } from "./describe-error.js";
import { appendLogText, flash, replaceLogText, setLogSource, setSynced, upsertJob } from "./state.js";
import type { TuiStore } from "./store.js";

const LOG_TAIL_LINES = 200;
/** How much of a synced job.log is shown when the agent cannot stream it. */
const SYNCED_LOG_TAIL_BYTES = 64 * 1024;

export class JobLogFeed {
  private log: { jobId: string; abort: AbortController } | null = null;
  private syncedReread: { jobId: string; timer: NodeJS.Timeout | null; pending: boolean } | null = null;
  private syncedLoadedAt = 0;

  constructor(
    private readonly api: DispatcherClient,
    private readonly store: TuiStore,
  ) {}

  /** Loads a job's detail and synced files, and starts its log tail when asked. */
  async openJob(jobId: string, follow: boolean): Promise<void> {
    this.stop();
    let job: Job | undefined = this.store.get().jobs[jobId];
    try {
      job = visibleDeep(await this.api.job(jobId));
      const fresh = job;
      this.store.update((s) => upsertJob(s, fresh));
    } catch (err) {
      if (!job) {
        this.store.updateNow((s) => flash(s, `cannot load job ${jobId}: ${describeError(err)}`, "error", Date.now()));
        return;
      }
    }
    void this.loadSynced(jobId);
    if (follow) await this.follow(job);
    else await this.readSyncedLog(jobId);
  }

  setFollow(jobId: string, following: boolean): void {
    if (!following) {
      this.stop();
      return;
    }
    const job = this.store.get().jobs[jobId];
    if (job) void this.follow(job);
  }

  async loadSynced(jobId: string): Promise<void> {
    try {
      const st = await this.api.syncStatus(jobId);
      const files = Object.entries(st.files)
        .map(([path, f]) => ({ path, size: f.size, updatedAt: f.updatedAt }))
        .sort((a, b) => a.path.localeCompare(b.path));
      this.store.update((s) => setSynced(s, { jobId, attempt: st.attempt, files, error: null }));
    } catch (err) {
      this.store.update((s) => setSynced(s, { jobId, attempt: null, files: [], error: describeError(err) }));
    }
  }

  /** What an event means beyond the state: the open job's log and synced files. */
  onEvent(ev: DispatcherEvent): void {
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

  stop(): void {
    this.log?.abort.abort();
    this.log = null;
    if (this.syncedReread?.timer) clearTimeout(this.syncedReread.timer);
    this.syncedReread = null;
  }

  private async follow(job: Job): Promise<void> {
    this.stop();
    const abort = new AbortController();
    this.log = { jobId: job.id, abort };
    const live = !isTerminalJobState(job.state) && job.state !== "queued";
    if (live) {
      try {
        await this.streamLiveLog(job.id, abort.signal);
        if (abort.signal.aborted) return;
      } catch (err) {
        if (abort.signal.aborted) return;
        this.store.update((s) => setLogSource(s, job.id, null, `the dispatcher does not stream the log (${describeError(err)}); showing the synced copy`));
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
      const msg = err instanceof ApiError && err.status === 404 ? "no job.log synced yet" : describeError(err);
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
}
