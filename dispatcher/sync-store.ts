// Synced run artefacts: runs/<project>/<jobId>/attempt-<n>/<path> under the state dir, with each
// file's size and sha256 in SQLite. Appends land at a byte offset (a repeat is a no-op, a gap is
// refused with the current size); whole files are replaced after their sha256 is checked. Bodies
// are written as they arrive, never gathered in memory, and hashed on the way.
import { createHash, type Hash } from "node:crypto";
import { closeSync, constants, createReadStream, existsSync, fstatSync, fsync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { Readable } from "node:stream";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { checkRelativePath, RelativePathError } from "../core/relative-path.js";
import type { Db } from "./db.js";
import { OpenFiles } from "./open-files.js";

/** An upload's bytes: the request body as it arrives, or chunks already in memory. */
export type Body = AsyncIterable<Buffer> | Iterable<Buffer>;

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
  /** Open append handles of active attempts' files, so an append neither walks the folders nor opens the file again. */
  private readonly handles = new OpenFiles();
  /** The last upload of each file still in progress (see serially()). */
  private readonly busy = new Map<string, Promise<void>>();
  private readonly stmts;

  constructor(
    db: Db,
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
        sha256 = this.digest(full, fileKey(jobId, attempt, r.path), r.size);
        this.stmts.setHash.run(sha256, jobId, attempt, r.path, r.size);
      }
      out[r.path] = { size: r.size, sha256, updatedAt: r.updated_at };
    }
    return out;
  }

  /** Drops the in-memory hashes of a job's files (they are rebuilt from disk when needed). */
  forget(jobId: string): void {
    for (const key of this.hashes.keys()) if (key.startsWith(`${jobId}/`)) this.hashes.delete(key);
    this.handles.closeJob(jobId);
  }

  /**
   * Appends `body` at `offset`, writing each chunk as it arrives. Bytes before the current size
   * are taken as already held (a repeat); an offset past the end throws SyncGapError carrying the
   * size to resume from. The file's running sha256 takes the new bytes as they are written, so
   * list() reads nothing back from disk for an attempt whose every byte came through here.
   */
  append(project: string, jobId: string, attempt: number, path: string, offset: number, body: Body): Promise<{ size: number; written: number }> {
    const key = fileKey(jobId, attempt, path);
    return this.serially(key, async () => {
      const fd = this.handles.acquire(key, () => guardFs(() => openSync(this.safeFile(project, jobId, attempt, path, true), APPEND_FLAGS, 0o600)));
      try {
        return await this.appendAt(key, fd, jobId, attempt, path, offset, body);
      } finally {
        this.handles.release(key);
      }
    });
  }

  private async appendAt(key: string, fd: number, jobId: string, attempt: number, path: string, offset: number, body: Body): Promise<{ size: number; written: number }> {
    const held = this.stmts.getSize.get(jobId, attempt, path) as number | undefined;
    const size = held ?? 0;
    if (offset > size) throw new SyncGapError(size, offset);
    let h = this.hashes.get(key);
    if (!h && size === 0) this.hashes.set(key, (h = { hash: createHash("sha256"), upTo: 0 }));
    const hashing = h !== undefined && h.upTo === size ? h : undefined;
    // Write at the exact offset the database says we hold, so a crash (or a cut body) between
    // the write and the commit leaves bytes that the next append simply overwrites.
    let skip = size - offset;
    let pos = size;
    try {
      for await (const chunk of body) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        writeAllAt(fd, fresh, pos);
        hashing?.hash.update(fresh);
        pos += fresh.length;
      }
    } catch (err) {
      if (hashing) this.hashes.delete(key); // it took bytes that are not committed
      throw err;
    }
    if (hashing) hashing.upTo = pos;
    const written = pos - size;
    if (written === 0 && held !== undefined) return { size, written: 0 };
    this.stmts.upsert.run(jobId, attempt, path, pos, "", new Date().toISOString());
    return { size: pos, written };
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

  /**
   * Replaces a file whole: `body` goes to a temporary file as it arrives, hashed on the way, and
   * takes the file's place only when its sha256 is the one given (a large checkpoint is never
   * held in memory).
   */
  put(project: string, jobId: string, attempt: number, path: string, body: Body, sha256: string | undefined): Promise<{ size: number }> {
    const key = fileKey(jobId, attempt, path);
    return this.serially(key, async () => {
      const full = this.safeFile(project, jobId, attempt, path, true);
      const tmp = `${full}.labrig-tmp`;
      const fd = guardFs(() => openSync(tmp, REPLACE_FLAGS, 0o600));
      const hash = createHash("sha256");
      let length = 0;
      try {
        for await (const chunk of body) {
          writeAllAt(fd, chunk, length);
          hash.update(chunk);
          length += chunk.length;
        }
        const actual = hash.copy().digest("hex");
        if (sha256 !== undefined && sha256.toLowerCase() !== actual) {
          throw new SyncHashError(`sha256 mismatch: the body hashes to ${actual}, the request said ${sha256}`);
        }
        await new Promise<void>((res, rej) => fsync(fd, (err) => (err ? rej(err) : res())));
      } catch (err) {
        closeSync(fd);
        rmSync(tmp, { force: true });
        throw err;
      }
      closeSync(fd);
      this.handles.close(key); // an append handle would write to the file being replaced
      guardFs(() => renameSync(tmp, full));
      this.hashes.set(key, { hash, upTo: length });
      this.stmts.upsert.run(jobId, attempt, path, length, hash.copy().digest("hex"), new Date().toISOString());
      return { size: length };
    });
  }

  /** Runs `fn` after every earlier call for the same file has settled: two uploads of one file never interleave. */
  private serially<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.busy.get(key) ?? Promise.resolve();
    const run = prev.then(fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.busy.set(key, settled);
    void settled.then(() => {
      if (this.busy.get(key) === settled) this.busy.delete(key);
    });
    return run;
  }

  /** Closes every open append handle (at shutdown). */
  close(): void {
    this.handles.closeAll();
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

function writeAllAt(fd: number, chunk: Buffer, position: number): void {
  let done = 0;
  while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done, position + done);
}

function fileKey(jobId: string, attempt: number, path: string): string {
  return `${jobId}/${attempt}/${path}`;
}
