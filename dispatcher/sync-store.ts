// Synced run artefacts: runs/<project>/<jobId>/attempt-<n>/<path> under the state dir, with each
// file's size and sha256 in SQLite. Appends land at a byte offset (a repeat is a no-op, a gap is
// refused with the current size); whole files are replaced after their sha256 is checked.
import { createHash, type Hash } from "node:crypto";
import { closeSync, constants, createReadStream, existsSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readSync, renameSync, writeSync } from "node:fs";
import { Readable } from "node:stream";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { checkRelativePath, RelativePathError } from "../core/relative-path.js";
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

/** Errors of the file system that mean "this name cannot be a file here": answered as a bad path, never with the server's path. */
const BAD_NAME_ERRNO: Record<string, string> = {
  ENAMETOOLONG: "the name is too long for the file system",
  EEXIST: "something else already has this name",
  EISDIR: "a folder has this name",
  ENOTDIR: "a part of the path is a file, not a folder",
  ELOOP: "the path holds a symbolic link; links are not followed",
};

// Open flags that never follow a symbolic link at the last step (the folders above are checked one by one).
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;
const APPEND_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
const REPLACE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/** A client-given relative path (already URL-decoded), normalised; SyncPathError when it could leave the job's folder. */
export function checkSyncPath(p: string): string {
  try {
    return checkRelativePath(p, "the job's folder");
  } catch (err) {
    if (err instanceof RelativePathError) throw new SyncPathError(err.message);
    throw err;
  }
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
    if (rel === "" || isAbsolute(rel) || rel.split(sep).includes("..")) {
      throw new SyncPathError("the path resolves outside the job's folder");
    }
    return full;
  }

  /**
   * The file for a path, after checking every folder from runs/ down is a real folder (not a
   * link, not a file) and the file itself is not a link or a folder; with `create`, makes the
   * missing folders (0700).
   */
  safeFile(project: string, jobId: string, attempt: number, path: string, create: boolean): string {
    const full = this.filePath(project, jobId, attempt, path);
    const inner = path.split("/");
    const parts = [project, jobId, `attempt-${attempt}`, ...inner];
    if (create) mkdirSync(this.runsDir, { recursive: true, mode: 0o700 });
    let cur = this.runsDir;
    for (let i = 0; i < parts.length - 1; i++) {
      cur = join(cur, parts[i]!);
      const shown = i < 3 ? "the job's folder" : `'${inner.slice(0, i - 2).join("/")}'`;
      const st = lstatSync(cur, { throwIfNoEntry: false });
      if (!st) {
        if (!create) return full;
        guardFs(() => mkdirSync(cur, { mode: 0o700 }));
        continue;
      }
      if (st.isSymbolicLink()) throw new SyncPathError(`${shown} is a symbolic link; links are not followed`);
      if (!st.isDirectory()) throw new SyncPathError(`${shown} is a file, not a folder`);
    }
    const st = lstatSync(full, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) throw new SyncPathError(`'${path}' is a symbolic link; links are not followed`);
    if (st?.isDirectory()) throw new SyncPathError(`'${path}' is a folder, not a file`);
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
        const full = this.safeFile(project, jobId, attempt, r.path, false);
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
    const full = this.safeFile(project, jobId, attempt, path, true);
    const held = this.stmts.getSize.get(jobId, attempt, path) as number | undefined;
    const size = held ?? 0;
    if (offset > size) throw new SyncGapError(size, offset);
    const fresh = skipBytes(chunks, size - offset);
    const freshLength = fresh.reduce((n, c) => n + c.length, 0);
    if (freshLength === 0 && held !== undefined) return { size, written: 0 };

    // Write at the exact offset the database says we hold, so a crash between the write and the
    // commit leaves bytes that the next append simply overwrites.
    const fd = guardFs(() => openSync(full, APPEND_FLAGS, 0o600));
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
      const fd = guardFs(() => openSync(full, READ_FLAGS));
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
    const full = this.safeFile(project, jobId, attempt, path, true);
    const hash = createHash("sha256");
    for (const c of chunks) hash.update(c);
    const length = chunks.reduce((n, c) => n + c.length, 0);
    const actual = hash.copy().digest("hex");
    if (sha256 !== undefined && sha256.toLowerCase() !== actual) {
      throw new SyncHashError(`sha256 mismatch: the body hashes to ${actual}, the request said ${sha256}`);
    }
    const tmp = `${full}.labrig-tmp`;
    const fd = guardFs(() => openSync(tmp, REPLACE_FLAGS, 0o600));
    try {
      writeAllAt(fd, chunks, 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    guardFs(() => renameSync(tmp, full));
    const key = `${jobId}/${attempt}/${path}`;
    this.hashes.set(key, { hash, upTo: length });
    this.stmts.upsert.run(jobId, attempt, path, length, actual, new Date().toISOString());
    return { size: length };
  }

  /** A held file as a stream (checkpoints can be large), cut to the size the database vouches for. */
  openRead(project: string, jobId: string, attempt: number, path: string): { size: number; stream: Readable } | undefined {
    const full = this.safeFile(project, jobId, attempt, path, false); // refuses a bad path before anything else
    const size = this.stmts.getSize.get(jobId, attempt, path) as number | undefined;
    if (size === undefined || !existsSync(full)) return undefined;
    const fd = guardFs(() => openSync(full, READ_FLAGS));
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new SyncPathError(`'${path}' is not a file`);
    }
    return { size, stream: size === 0 ? (closeSync(fd), Readable.from([])) : createReadStream("", { fd, start: 0, end: size - 1 }) };
  }

  /** The bytes of a held file, cut to the size the database vouches for. */
  read(project: string, jobId: string, attempt: number, path: string): Buffer | undefined {
    const full = this.safeFile(project, jobId, attempt, path, false);
    const held = this.info(jobId, attempt, path);
    if (!held || !existsSync(full)) return undefined;
    const fd = guardFs(() => openSync(full, READ_FLAGS));
    try {
      const buf = Buffer.alloc(held.size);
      let n = 0;
      while (n < held.size) {
        const r = readSync(fd, buf, n, held.size - n, n);
        if (r === 0) break;
        n += r;
      }
      return buf.subarray(0, n);
    } finally {
      closeSync(fd);
    }
  }

}

/** Runs a file system call, turning "this name cannot be a file here" errors into SyncPathError without the server's path. */
function guardFs<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const reason = BAD_NAME_ERRNO[(err as NodeJS.ErrnoException).code ?? ""];
    if (reason) throw new SyncPathError(reason, { cause: err });
    throw err;
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
