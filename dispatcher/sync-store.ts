// Synced run artefacts: runs/<project>/<jobId>/attempt-<n>/<path> under the state dir, with each
// file's size and sha256 in SQLite. Appends land at a byte offset (a repeat is a no-op, a gap is
// refused with the current size); whole files are replaced after their sha256 is checked.
import { createHash, type Hash } from "node:crypto";
import { closeSync, createReadStream, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeSync } from "node:fs";
import { Readable } from "node:stream";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { Db } from "./db.js";

export class SyncPathError extends Error {}
export class SyncGapError extends Error {
  constructor(readonly size: number, offset: number) {
    super(`offset ${offset} is beyond the end of the file (${size} bytes held); resume from ${size}`);
  }
}
export class SyncHashError extends Error {}

export interface SyncFileInfo {
  size: number;
  sha256: string;
  updatedAt: string;
}

/**
 * Checks a client-given relative path (already URL-decoded) and returns it normalised, or throws
 * SyncPathError. Refuses absolute paths, `..` segments, backslashes, NUL and empty segments.
 */
export function checkSyncPath(p: string): string {
  if (p.length === 0 || p.length > 1024) throw new SyncPathError("the path is empty or longer than 1024 characters");
  if (p.includes("\0")) throw new SyncPathError("the path holds a NUL byte");
  if (p.includes("\\")) throw new SyncPathError("the path holds a backslash; use '/'");
  if (p.startsWith("/") || isAbsolute(p)) throw new SyncPathError("the path is absolute; give it relative to the job's output folder");
  const segments = p.split("/");
  for (const s of segments) {
    if (s === "..") throw new SyncPathError("the path leaves the job's folder ('..')");
    if (s === "" || s === ".") throw new SyncPathError("the path has an empty or '.' segment");
  }
  return segments.join("/");
}

export class SyncStore {
  /** Running hashes of appended files, keyed by job/attempt/path, and how far each has read. */
  private readonly hashes = new Map<string, { hash: Hash; upTo: number }>();
  private readonly stmts;

  constructor(
    private readonly db: Db,
    readonly runsDir: string,
  ) {
    this.stmts = {
      getSize: db.prepare("SELECT size FROM sync_files WHERE job_id = ? AND attempt = ? AND path = ?").pluck(),
      setHash: db.prepare("UPDATE sync_files SET sha256 = ? WHERE job_id = ? AND attempt = ? AND path = ? AND size = ?"),
      get: db.prepare<[string, number, string], { size: number; sha256: string; updated_at: string }>(
        "SELECT size, sha256, updated_at FROM sync_files WHERE job_id = ? AND attempt = ? AND path = ?",
      ),
      upsert: db.prepare(`INSERT INTO sync_files (job_id, attempt, path, size, sha256, updated_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (job_id, attempt, path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, updated_at = excluded.updated_at`),
      list: db.prepare<[string, number], { path: string; size: number; sha256: string; updated_at: string }>(
        "SELECT path, size, sha256, updated_at FROM sync_files WHERE job_id = ? AND attempt = ? ORDER BY path",
      ),
    };
  }

  attemptDir(project: string, jobId: string, attempt: number): string {
    return join(this.runsDir, project, jobId, `attempt-${attempt}`);
  }

  /** The absolute file for a checked path, proven to stay inside the attempt's folder. */
  filePath(project: string, jobId: string, attempt: number, path: string): string {
    const dir = this.attemptDir(project, jobId, attempt);
    const full = resolve(dir, checkSyncPath(path));
    const rel = relative(dir, full);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel) || rel.split(sep).includes("..")) {
      throw new SyncPathError("the path resolves outside the job's folder");
    }
    return full;
  }

  /** What is held of one file (its sha256 may be empty until list() computes it). */
  info(jobId: string, attempt: number, path: string): SyncFileInfo | undefined {
    const r = this.stmts.get.get(jobId, attempt, path);
    return r ? { size: r.size, sha256: r.sha256, updatedAt: r.updated_at } : undefined;
  }

  /** Every file held for an attempt, with sizes and up-to-date sha256s. */
  list(project: string, jobId: string, attempt: number): Record<string, SyncFileInfo> {
    const out: Record<string, SyncFileInfo> = {};
    for (const r of this.stmts.list.all(jobId, attempt)) {
      let sha256 = r.sha256;
      if (sha256 === "") {
        const full = this.filePath(project, jobId, attempt, r.path);
        sha256 = this.digest(full, `${jobId}/${attempt}/${r.path}`, r.size);
        this.stmts.setHash.run(sha256, jobId, attempt, r.path, r.size);
      }
      out[r.path] = { size: r.size, sha256, updatedAt: r.updated_at };
    }
    return out;
  }

  /** Drops the in-memory hashes of a job's files (they are rebuilt from disk when needed). */
  forget(jobId: string): void {
    for (const key of this.hashes.keys()) if (key.startsWith(`${jobId}/`)) this.hashes.delete(key);
  }

  /**
   * Appends `bytes` at `offset`. Bytes before the current size are taken as already held (a
   * repeat); an offset past the end throws SyncGapError carrying the size to resume from. The
   * file's sha256 is brought up to date lazily, when someone asks for it (see list()).
   */
  append(project: string, jobId: string, attempt: number, path: string, offset: number, chunks: Buffer[]): { size: number; written: number } {
    const full = this.filePath(project, jobId, attempt, path);
    const held = this.stmts.getSize.get(jobId, attempt, path) as number | undefined;
    const size = held ?? 0;
    if (offset > size) throw new SyncGapError(size, offset);
    const fresh = skipBytes(chunks, size - offset);
    const freshLength = fresh.reduce((n, c) => n + c.length, 0);
    if (freshLength === 0 && held !== undefined) return { size, written: 0 };

    mkdirSync(dirname(full), { recursive: true });
    // Write at the exact offset the database says we hold, so a crash between the write and the
    // commit leaves bytes that the next append simply overwrites.
    const fd = openSync(full, existsSync(full) ? "r+" : "w");
    try {
      writeAllAt(fd, fresh, size);
    } finally {
      closeSync(fd);
    }
    const newSize = size + freshLength;
    this.stmts.upsert.run(jobId, attempt, path, newSize, "", new Date().toISOString());
    return { size: newSize, written: freshLength };
  }

  /** The sha256 of the first `size` bytes of a held file, hashing only what was appended since last time. */
  private digest(full: string, key: string, size: number): string {
    let h = this.hashes.get(key);
    if (!h || h.upTo > size) {
      h = { hash: createHash("sha256"), upTo: 0 };
      this.hashes.set(key, h);
    }
    if (h.upTo < size) {
      const fd = openSync(full, "r");
      try {
        const buf = Buffer.allocUnsafe(Math.min(4 * 1024 * 1024, size - h.upTo));
        while (h.upTo < size) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, size - h.upTo), h.upTo);
          if (n === 0) break;
          h.hash.update(buf.subarray(0, n));
          h.upTo += n;
        }
      } finally {
        closeSync(fd);
      }
    }
    return h.hash.copy().digest("hex");
  }

  /** Replaces a file whole after checking its sha256. */
  put(project: string, jobId: string, attempt: number, path: string, chunks: Buffer[], sha256: string | undefined): { size: number } {
    const full = this.filePath(project, jobId, attempt, path);
    const hash = createHash("sha256");
    for (const c of chunks) hash.update(c);
    const length = chunks.reduce((n, c) => n + c.length, 0);
    const actual = hash.copy().digest("hex");
    if (sha256 !== undefined && sha256.toLowerCase() !== actual) {
      throw new SyncHashError(`sha256 mismatch: the body hashes to ${actual}, the request said ${sha256}`);
    }
    mkdirSync(dirname(full), { recursive: true });
    const tmp = `${full}.labrig-tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeAllAt(fd, chunks, 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, full);
    const key = `${jobId}/${attempt}/${path}`;
    this.hashes.set(key, { hash, upTo: length });
    this.stmts.upsert.run(jobId, attempt, path, length, actual, new Date().toISOString());
    return { size: length };
  }

  /** A held file as a stream (checkpoints can be large), cut to the size the database vouches for. */
  openRead(project: string, jobId: string, attempt: number, path: string): { size: number; stream: Readable } | undefined {
    const full = this.filePath(project, jobId, attempt, path); // refuses a bad path before anything else
    const size = this.stmts.getSize.get(jobId, attempt, path) as number | undefined;
    if (size === undefined || !existsSync(full)) return undefined;
    return { size, stream: size === 0 ? Readable.from([]) : createReadStream(full, { start: 0, end: size - 1 }) };
  }

  /** The bytes of a held file, cut to the size the database vouches for. */
  read(project: string, jobId: string, attempt: number, path: string): Buffer | undefined {
    const full = this.filePath(project, jobId, attempt, path);
    const held = this.info(jobId, attempt, path);
    if (!held || !existsSync(full)) return undefined;
    const buf = readFileSync(full);
    return buf.length > held.size ? buf.subarray(0, held.size) : buf;
  }

}

/** The chunks without their first `n` bytes (bytes the store already holds). */
function skipBytes(chunks: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const c of chunks) {
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    out.push(skip > 0 ? c.subarray(skip) : c);
    skip = 0;
  }
  return out;
}

function writeAllAt(fd: number, chunks: Buffer[], position: number): void {
  let pos = position;
  for (const c of chunks) {
    let done = 0;
    while (done < c.length) done += writeSync(fd, c, done, c.length - done, pos + done);
    pos += c.length;
  }
}
