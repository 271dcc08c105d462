// Sync of one job attempt's output dir to the dispatcher: growing files as appends from the
// acknowledged size, rewritten files whole (sha256-checked), driven by the pure planner; the bytes
// stream from disk (./sync-upload.ts). What the dispatcher acknowledged is kept in a state file,
// so an agent restart resumes where it was; after a network cut, a dispatcher restart or a
// restart of this agent the first round asks `GET /api/sync/{jobId}/status` and reconciles by
// hash, so nothing is sent twice or left out.
import { createHash } from "node:crypto";
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, writeFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { SyncStatus } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { ApiError, LabrigError } from "../core/errors.js";
import { type AckedFile, planFileSync } from "./sync-plan.js";
import { FileChangedError, SyncUploader } from "./sync-upload.js";

/** The dispatcher says this attempt is no longer this agent's: stop the job. */
export class StaleAttemptError extends LabrigError {}

const WINDOW = 64 * 1024;
const MAX_APPEND = 8 * 1024 * 1024;

export interface JobSyncOptions {
  client: DispatcherClient;
  jobId: string;
  attempt: number;
  outputDir: string;
  stateFile: string;
  /** A rewritten file is sent once it has not changed for this long (or at the final sync). */
  quietMs?: number;
  log?: (message: string) => void;
}

interface SyncStateFile {
  jobId: string;
  attempt: number;
  files: Record<string, AckedFile>;
}

/**
 * The fingerprint of a file's first `size` bytes: its size and a hash of its first and last 64 KiB.
 * Cheap to compute every second on a growing multi-GB log; a rewrite that keeps both ends and the
 * size (rare for logs, YAML, checkpoints) is the one change it misses.
 */
export function fingerprint(size: number, head: Uint8Array, tail: Uint8Array): string {
  return `${size}:${createHash("sha256").update(head).update(tail).digest("hex")}`;
}

// Reads here are synchronous: two 64 KiB reads from the page cache take microseconds, while each
// asynchronous step is a hop through libuv's thread pool, which on a busy host costs more than the
// read (an 8-hop append ran at a third of the speed of its bytes, measured in bench/sync-throughput.ts).
async function fingerprintRange(path: string, size: number): Promise<string> {
  const fd = openSync(path, "r");
  try {
    const head = readAt(fd, 0, Math.min(size, WINDOW));
    const tailStart = Math.max(Math.min(size, WINDOW), size - WINDOW);
    const tail = readAt(fd, tailStart, size - tailStart);
    return fingerprint(size, head, tail);
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

async function sha256OfRange(path: string, size: number): Promise<string> {
  const h = createHash("sha256");
  if (size > 0) for await (const chunk of createReadStream(path, { start: 0, end: size - 1 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Every regular file under dir, as '/'-separated paths relative to it (symlinks are not followed). */
export function listOutputFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join("/"));
    }
  };
  walk(dir);
  return out.sort();
}

function isStale(err: unknown): boolean {
  return err instanceof ApiError && ((err.status === 409 && err.code === "stale_attempt") || err.status === 403 || (err.status === 404 && err.code === "not_found"));
}

export class JobSync {
  private acked: Record<string, AckedFile> = {};
  private needStatus = true;
  /** Files the dispatcher refused (a name it does not take, too large): left out of this attempt's sync. */
  private refused = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  readonly quietMs: number;
  /** Bytes sent in appends and puts, for metrics. */
  bytesSent = 0;

  private readonly log?: (message: string) => void;
  private readonly uploader: SyncUploader;

  constructor(private readonly opts: JobSyncOptions) {
    this.uploader = new SyncUploader(opts.client);
    this.quietMs = opts.quietMs ?? 2_000;
    this.log = opts.log;
    if (existsSync(opts.stateFile)) {
      try {
        const s = JSON.parse(readFileSync(opts.stateFile, "utf8")) as SyncStateFile;
        if (s.jobId === opts.jobId && s.attempt === opts.attempt) this.acked = s.files;
      } catch {
        /* unreadable state: the status reconcile rebuilds it */
      }
    }
  }

  /** One sync round (rounds never overlap). `final` sends rewritten files without waiting for quiet. */
  sync(final = false): Promise<void> {
    const run = this.chain.then(() => this.round(final));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async round(final: boolean): Promise<void> {
    try {
      if (this.needStatus) await this.reconcile();
      for (const path of listOutputFiles(this.opts.outputDir)) {
        if (this.refused.has(path)) continue;
        try {
          await this.syncFile(path, final);
        } catch (err) {
          // A file the dispatcher will never take must not hold back the job's end report.
          if (!(err instanceof ApiError) || err.status >= 500 || [401, 403, 404, 409].includes(err.status)) throw err;
          this.refused.add(path);
          this.log?.(`job ${this.opts.jobId}: the dispatcher refused ${path}; it is left out: ${err.message}`);
        }
      }
    } catch (err) {
      if (isStale(err)) throw new StaleAttemptError(`attempt ${this.opts.attempt} of job ${this.opts.jobId} is no longer this agent's: ${(err as Error).message}`, { cause: err });
      if (!(err instanceof ApiError) || err.status >= 500 || err.status === 401) this.needStatus = true;
      throw err;
    } finally {
      this.save();
    }
  }

  private async reconcile(): Promise<void> {
    const { client, jobId, attempt, outputDir } = this.opts;
    const status = (await client.request<SyncStatus>("GET", `/api/sync/${encodeURIComponent(jobId)}/status?attempt=${attempt}`)).body;
    const next: Record<string, AckedFile> = {};
    for (const [path, server] of Object.entries(status.files)) {
      const mine = this.acked[path];
      if (mine && mine.size === server.size) {
        next[path] = mine;
        continue;
      }
      const local = join(outputDir, ...path.split("/"));
      const st = await stat(local).catch(() => undefined);
      const same = st !== undefined && st.size >= server.size && (await sha256OfRange(local, server.size)) === server.sha256;
      // Held bytes that are not ours (or no longer on disk here) are replaced whole by the next round.
      next[path] = {
        size: server.size,
        mtimeMs: -1,
        localSize: -1,
        fingerprint: same ? await fingerprintRange(local, server.size) : "differs",
      };
    }
    this.acked = next;
    this.needStatus = false;
  }

  private async syncFile(path: string, final: boolean): Promise<void> {
    const local = join(this.opts.outputDir, ...path.split("/"));
    const st = await stat(local).catch(() => undefined);
    if (!st?.isFile()) return;
    const facts: { size: number; mtimeMs: number; prefixFingerprint?: string } = { size: st.size, mtimeMs: st.mtimeMs };
    const planOpts = { nowMs: Date.now(), quietMs: this.quietMs, final };
    let action = planFileSync(facts, this.acked[path], planOpts);
    if (action.kind === "fingerprint") {
      facts.prefixFingerprint = await fingerprintRange(local, action.length);
      action = planFileSync(facts, this.acked[path], planOpts);
    }
    switch (action.kind) {
      case "skip":
        if (this.acked[path]) Object.assign(this.acked[path], { mtimeMs: st.mtimeMs, localSize: st.size });
        return;
      case "wait":
      case "fingerprint":
        return;
      case "append":
        return this.append(path, local, action.offset, st.size, st.mtimeMs);
      case "put":
        return this.put(path, local);
    }
  }

  private async append(path: string, local: string, offset: number, localSize: number, mtimeMs: number): Promise<void> {
    const { jobId, attempt } = this.opts;
    while (offset < localSize) {
      const length = Math.min(MAX_APPEND, localSize - offset);
      const end = offset + length;
      // The fingerprint of [0, end) is taken before the bytes are streamed: should the file be
      // rewritten in between, the next round finds the fingerprint changed and sends it whole.
      const fp = await fingerprintRange(local, end);
      try {
        const r = await this.uploader.append(jobId, path, attempt, offset, { file: local, start: offset, length });
        this.bytesSent += length;
        this.acked[path] = { size: r.size, mtimeMs: end === localSize ? mtimeMs : -1, localSize: end === localSize ? localSize : -1, fingerprint: r.size === end ? fp : await fingerprintRange(local, r.size) };
        offset = r.size;
      } catch (err) {
        if (err instanceof FileChangedError) return; // truncated or removed meanwhile: the next round sees it
        if (err instanceof ApiError && err.status === 409 && err.code === "offset_gap") {
          // The dispatcher holds fewer bytes than acknowledged (it lost a torn write): resume from its size.
          const size = Number((err.body as { size?: number } | undefined)?.size);
          if (!Number.isInteger(size) || size > localSize) throw err;
          this.acked[path] = { size, mtimeMs: -1, localSize: -1, fingerprint: await fingerprintRange(local, size) };
          offset = size;
          continue;
        }
        throw err;
      }
    }
  }

  private async put(path: string, local: string): Promise<void> {
    const { jobId, attempt } = this.opts;
    const st = await stat(local);
    const size = st.size;
    const sha = await sha256OfRange(local, size);
    const fp = await fingerprintRange(local, size);
    try {
      await this.uploader.put(jobId, path, attempt, sha, { file: local, start: 0, length: size });
    } catch (err) {
      // The file changed while it was sent (shorter now, or other bytes): the next round sends it again.
      if (err instanceof FileChangedError) return;
      if (err instanceof ApiError && err.status === 400 && err.code === "sha256_mismatch") return;
      throw err;
    }
    this.bytesSent += size;
    this.acked[path] = { size, mtimeMs: st.mtimeMs, localSize: size, fingerprint: fp };
  }

  private save(): void {
    const state: SyncStateFile = { jobId: this.opts.jobId, attempt: this.opts.attempt, files: this.acked };
    mkdirSync(dirname(this.opts.stateFile), { recursive: true });
    const tmp = `${this.opts.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, this.opts.stateFile);
  }
}
