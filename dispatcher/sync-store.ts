// Synced run artefacts: runs/<project>/<jobId>/attempt-<n>/<path> under the state dir, with each
// file's size and sha256 in SQLite. Appends land at a byte offset (a repeat is a no-op, a gap is
// refused with the current size); whole files are replaced after their sha256 is checked.
import { createHash, type Hash } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, existsSync } from "node:fs";
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
  private readonly hashes = new Map<string, Hash>();
  private readonly stmts;

  constructor(
    private readonly db: Db,
    readonly runsDir: string,
  ) {
    this.stmts = {
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

  info(jobId: string, attempt: number, path: string): SyncFileInfo | undefined {
    const r = this.stmts.get.get(jobId, attempt, path);
    return r ? { size: r.size, sha256: r.sha256, updatedAt: r.updated_at } : undefined;
  }

  list(jobId: string, attempt: number): Record<string, SyncFileInfo> {
    const out: Record<string, SyncFileInfo> = {};
    for (const r of this.stmts.list.all(jobId, attempt)) out[r.path] = { size: r.size, sha256: r.sha256, updatedAt: r.updated_at };
    return out;
  }

  /**
   * Appends `bytes` at `offset`. Bytes before the current size are taken as already held (a
   * repeat); an offset past the end throws SyncGapError carrying the size to resume from.
   */
  append(project: string, jobId: string, attempt: number, path: string, offset: number, bytes: Buffer): { size: number; written: number } {
    const full = this.filePath(project, jobId, attempt, path);
    const key = `${jobId}/${attempt}/${path}`;
    const held = this.info(jobId, attempt, path);
    const size = held?.size ?? 0;
    if (offset > size) throw new SyncGapError(size, offset);
    const fresh = bytes.subarray(Math.min(bytes.length, size - offset));
    if (fresh.length === 0 && held) return { size, written: 0 };

    mkdirSync(dirname(full), { recursive: true });
    let hash = this.hashes.get(key);
    if (!hash) {
      hash = createHash("sha256");
      if (size > 0) hash.update(readFileSync(full).subarray(0, size));
      this.hashes.set(key, hash);
    }
    // Write at the exact offset the database says we hold, so a crash between the write and the
    // commit leaves bytes that the next append simply overwrites.
    const fd = openSync(full, existsSync(full) ? "r+" : "w");
    try {
      let done = 0;
      while (done < fresh.length) done += writeSync(fd, fresh, done, fresh.length - done, size + done);
    } finally {
      closeSync(fd);
    }
    hash.update(fresh);
    const newSize = size + fresh.length;
    this.stmts.upsert.run(jobId, attempt, path, newSize, hash.copy().digest("hex"), new Date().toISOString());
    return { size: newSize, written: fresh.length };
  }

  /** Replaces a file whole after checking its sha256. */
  put(project: string, jobId: string, attempt: number, path: string, bytes: Buffer, sha256: string | undefined): { size: number } {
    const full = this.filePath(project, jobId, attempt, path);
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (sha256 !== undefined && sha256.toLowerCase() !== actual) {
      throw new SyncHashError(`sha256 mismatch: the body hashes to ${actual}, the request said ${sha256}`);
    }
    mkdirSync(dirname(full), { recursive: true });
    const tmp = `${full}.labrig-tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, full);
    const key = `${jobId}/${attempt}/${path}`;
    const hash = createHash("sha256").update(bytes);
    this.hashes.set(key, hash);
    this.stmts.upsert.run(jobId, attempt, path, bytes.length, actual, new Date().toISOString());
    return { size: bytes.length };
  }

  /** The bytes of a held file, cut to the size the database vouches for. */
  read(project: string, jobId: string, attempt: number, path: string): Buffer | undefined {
    const held = this.info(jobId, attempt, path);
    if (!held) return undefined;
    const full = this.filePath(project, jobId, attempt, path);
    if (!existsSync(full)) return undefined;
    const buf = readFileSync(full);
    return buf.length > held.size ? buf.subarray(0, held.size) : buf;
  }

}
