// The code a job carries, on the GPU host: each snapshot's manifest and blobs are fetched once per
// host into a cache folder, verified against their sha256 (the dispatcher is not trusted blindly),
// kept read-only, and placed into an attempt's folder as hard links (copies where linking fails).
// The cache stays near a byte bound by evicting the least recently used blobs.
//
// Layout under the cache folder (0700):
//   blobs/<sha256>.<manifest mode in octal>  a file's content, 0400 or 0500 (a hard link shares the
//                                            mode, so one content with two modes is two files)
//   snapshots/<id>.json                      the checked snapshot info
//   index.json                               {key: {size, mtimeMs, ctimeMs, lastUsed}}, key = path above
// One process uses a cache folder at a time; within it, materialize calls run one after another.
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  constants,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, posix } from "node:path";
import {
  type CodeFile,
  type CodeManifest,
  CodeManifestError,
  type CodeSnapshotInfo,
  checkCodeManifest,
  codeSnapshotId,
  DEFAULT_CODE_LIMIT_BYTES,
  type GitFacts,
  isCodeLink,
  SHA256_PATTERN,
  summarizeManifest,
} from "../core/code.js";
import { errorMessage, LabrigError } from "../core/errors.js";
import { ensurePrivateDir, readJsonFile, writeJsonFile } from "./json-file.js";

/** Where the snapshot and its blobs come from: the dispatcher (DispatcherClient has these methods), or anything else in tests. */
export interface CodeSource {
  snapshot(id: string): Promise<CodeSnapshotInfo>;
  blob(snapshotId: string, sha256: string): Promise<Buffer>;
}

export interface MaterializedCode {
  dir: string;
  files: number;
  bytes: number;
  /** Blob bytes downloaded for this call (0 on a full cache hit). */
  fetchedBytes: number;
  /** "copy" when any file was copied: linking failed (EXDEV, EPERM, …) or `link: false`. */
  method: "hardlink" | "copy";
  git: GitFacts | null;
}

export interface CodeCacheOptions {
  dir: string;
  /** The bound `size()` is brought back under after each materialize (a bigger snapshot still works). */
  maxBytes: number;
  /** The largest snapshot accepted; DEFAULT_CODE_LIMIT_BYTES unless given. */
  limitBytes?: number;
  log?: (m: string) => void;
}

export class CodeFetchError extends LabrigError {
  constructor(
    readonly snapshotId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface IndexEntry {
  size: number;
  mtimeMs: number;
  /** Changed by any chmod, write or utimes, which a job cannot set back; also by our own links, so re-read after them. */
  ctimeMs: number;
  lastUsed: number;
}

const BLOB_KEY = /^blobs\/[0-9a-f]{64}\.[4-7]00$/;
const SNAPSHOT_KEY = /^snapshots\/[0-9a-f]{64}\.json$/;
const FETCH_CONCURRENCY = 4;
// Errors that say no file on this file system can be linked there: stop trying for the rest.
const LINK_UNSUPPORTED = new Set(["EXDEV", "EPERM", "ENOTSUP", "EOPNOTSUPP", "EACCES"]);

const blobKey = (sha256: string, mode: number) => `blobs/${sha256}.${mode.toString(8)}`;
const snapshotKey = (id: string) => `snapshots/${id}.json`;
/** Write bits off: a job holding a hard link cannot change the cache (unless it is root, or chmods it: see IndexEntry). */
const cachedMode = (manifestMode: number) => manifestMode & 0o500;
const sha256Of = (b: Buffer) => createHash("sha256").update(b).digest("hex");

export class CodeCache {
  private readonly index = new Map<string, IndexEntry>();
  private readonly limitBytes: number;
  private readonly log: (m: string) => void;
  private queue: Promise<unknown> = Promise.resolve();
  private lastStamp = 0;

  constructor(private readonly opts: CodeCacheOptions) {
    this.limitBytes = opts.limitBytes ?? DEFAULT_CODE_LIMIT_BYTES;
    this.log = opts.log ?? (() => {});
    ensurePrivateDir(opts.dir);
    ensurePrivateDir(join(opts.dir, "blobs"));
    ensurePrivateDir(join(opts.dir, "snapshots"));
    this.loadIndex();
  }

  /** Bytes held now. */
  size(): number {
    let total = 0;
    for (const e of this.index.values()) total += e.size;
    return total;
  }

  /** Fetches what is missing (verifying each blob's sha256), then writes the tree into `dest` (which must not exist yet, or be empty). */
  materialize(snapshotId: string, dest: string, source: CodeSource, opts: { link?: boolean } = {}): Promise<MaterializedCode> {
    const run = this.queue.then(() => this.materializeNow(snapshotId, dest, source, opts.link ?? true));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async materializeNow(snapshotId: string, dest: string, source: CodeSource, link: boolean): Promise<MaterializedCode> {
    if (!SHA256_PATTERN.test(snapshotId)) throw new CodeFetchError(snapshotId, `'${snapshotId}' is not a code snapshot id (64 lower-case hex digits)`);
    checkDestFree(snapshotId, dest);
    const stamp = this.nextStamp();
    const keep = new Set<string>([snapshotKey(snapshotId)]);
    let destState: "untouched" | "created" | "given" = "untouched";
    try {
      const info = await this.snapshotInfo(snapshotId, source);
      const files = info.manifest.entries.filter((e): e is CodeFile => !isCodeLink(e));
      for (const f of files) keep.add(blobKey(f.sha256, f.mode));
      const fetchedBytes = await this.fillBlobs(snapshotId, files, source);
      this.keepSnapshot(snapshotId, info);
      destState = makeDest(snapshotId, dest);
      const method = this.writeTree(info.manifest, dest, link);
      for (const key of keep) this.touch(key, stamp);
      return { dir: dest, files: info.files, bytes: info.bytes, fetchedBytes, method, git: info.manifest.git };
    } catch (err) {
      if (destState === "created") rmSync(dest, { recursive: true, force: true });
      else if (destState === "given") emptyFolder(dest);
      if (err instanceof LabrigError) throw err;
      throw new CodeFetchError(snapshotId, `could not place code snapshot ${snapshotId} in ${dest}: ${errorMessage(err)}`, { cause: err });
    } finally {
      this.evict(keep);
      this.saveIndex();
    }
  }

  private async snapshotInfo(id: string, source: CodeSource): Promise<CodeSnapshotInfo> {
    const key = snapshotKey(id);
    if (this.index.has(key)) {
      try {
        return checkSnapshotInfo(id, JSON.parse(readFileSync(this.path(key), "utf8")), this.limitBytes);
      } catch (err) {
        this.log(`code cache: ${key} is unreadable or changed (${errorMessage(err)}); fetching it again`);
        this.discard(key);
      }
    }
    let raw: CodeSnapshotInfo;
    try {
      raw = await source.snapshot(id);
    } catch (err) {
      throw new CodeFetchError(id, `could not fetch code snapshot ${id}: ${errorMessage(err)}`, { cause: err });
    }
    return checkSnapshotInfo(id, raw, this.limitBytes);
  }

  /** Caches every blob the files need that is not held intact; returns the bytes downloaded. */
  private async fillBlobs(snapshotId: string, files: CodeFile[], source: CodeSource): Promise<number> {
    const missing = new Map<string, { size: number; modes: Set<number> }>();
    const seen = new Set<string>();
    for (const f of files) {
      const key = blobKey(f.sha256, f.mode);
      if (seen.has(key)) continue;
      seen.add(key);
      if (this.holdsIntact(key, f.sha256)) continue;
      const m = missing.get(f.sha256) ?? { size: f.size, modes: new Set<number>() };
      m.modes.add(f.mode);
      missing.set(f.sha256, m);
    }
    const queue = [...missing.entries()];
    let fetchedBytes = 0;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined) {
        const next = queue.shift();
        if (!next) return;
        const [sha256, { size, modes }] = next;
        try {
          let content = this.heldContent(sha256);
          if (!content) {
            content = await this.fetchBlob(snapshotId, sha256, size, source);
            fetchedBytes += content.length;
          }
          for (const mode of modes) this.writeBlob(blobKey(sha256, mode), mode, content);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(FETCH_CONCURRENCY, queue.length) }, worker));
    if (failure !== undefined) throw failure;
    if (missing.size > 0) this.log(`code cache: fetched ${missing.size} blob(s), ${fetchedBytes} bytes, of snapshot ${snapshotId}`);
    return fetchedBytes;
  }

  private async fetchBlob(snapshotId: string, sha256: string, size: number, source: CodeSource): Promise<Buffer> {
    let content: Buffer;
    try {
      content = await source.blob(snapshotId, sha256);
    } catch (err) {
      throw new CodeFetchError(snapshotId, `could not fetch blob ${sha256} of snapshot ${snapshotId}: ${errorMessage(err)}`, { cause: err });
    }
    if (!Buffer.isBuffer(content)) throw new CodeFetchError(snapshotId, `blob ${sha256} of snapshot ${snapshotId} arrived as ${typeof content}, not bytes`);
    const actual = sha256Of(content);
    if (actual !== sha256) {
      throw new CodeFetchError(snapshotId, `blob ${sha256} of snapshot ${snapshotId} has sha256 ${actual}, not ${sha256}; the dispatcher's copy is damaged: send the code again`);
    }
    if (content.length !== size) {
      // Same hash, different size: the manifest's size is wrong (it was checked against the limit, not the content).
      throw new CodeFetchError(snapshotId, `blob ${sha256} of snapshot ${snapshotId} holds ${content.length} bytes, not the manifest's ${size}`);
    }
    return content;
  }

  /** The content of `sha256` from a cache file with another mode, read and re-hashed, so it is not downloaded twice. */
  private heldContent(sha256: string): Buffer | undefined {
    for (const mode of [0o600, 0o700, 0o400, 0o500]) {
      const key = blobKey(sha256, mode);
      if (!this.index.has(key)) continue;
      try {
        const content = readFileSync(this.path(key));
        if (sha256Of(content) === sha256) return content;
      } catch {
        // unreadable: fall through to the next copy or the dispatcher
      }
      this.discard(key);
    }
    return undefined;
  }

  private writeBlob(key: string, mode: number, content: Buffer): void {
    const final = this.path(key);
    const tmp = join(dirname(final), `.${randomBytes(6).toString("hex")}.tmp`);
    try {
      writeFileSync(tmp, content, { mode: 0o600, flag: "wx" });
      chmodSync(tmp, cachedMode(mode));
      renameSync(tmp, final);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    this.record(key, this.nextStamp());
  }

  private keepSnapshot(id: string, info: CodeSnapshotInfo): void {
    const key = snapshotKey(id);
    if (this.index.has(key)) return;
    const final = this.path(key);
    const tmp = join(dirname(final), `.${randomBytes(6).toString("hex")}.tmp`);
    writeFileSync(tmp, JSON.stringify(info), { mode: 0o400, flag: "wx" });
    renameSync(tmp, final);
    this.record(key, this.nextStamp());
  }

  /**
   * Whether the cache file for `key` is what was written. Size, mtime or mode changed: tampered,
   * discarded. Only the ctime changed (our links and a job removing its tree change it too, and so
   * would a chmod, write and utimes that put size, mtime and mode back): re-hashed, kept if it matches.
   */
  private holdsIntact(key: string, sha256: string): boolean {
    const entry = this.index.get(key);
    if (!entry) return false;
    let st;
    try {
      st = lstatSync(this.path(key));
    } catch {
      this.index.delete(key);
      return false;
    }
    const mode = cachedMode(Number.parseInt(key.slice(key.lastIndexOf(".") + 1), 8));
    if (!st.isFile() || st.size !== entry.size || st.mtimeMs !== entry.mtimeMs || (st.mode & 0o777) !== mode) {
      this.log(`code cache: ${key} changed since it was cached (size, mtime or mode); fetching it again`);
      this.discard(key);
      return false;
    }
    if (st.ctimeMs !== entry.ctimeMs) {
      if (sha256Of(readFileSync(this.path(key))) !== sha256) {
        this.log(`code cache: ${key} no longer holds its sha256; fetching it again`);
        this.discard(key);
        return false;
      }
      entry.ctimeMs = st.ctimeMs;
    }
    return true;
  }

  /** Folders first (mkdir in a fresh folder, so none is a link), then files, then links, so nothing is written through a link. */
  private writeTree(manifest: CodeManifest, dest: string, link: boolean): "hardlink" | "copy" {
    const made = new Set<string>(["."]);
    const makeFolders = (entryPath: string) => {
      const parent = posix.dirname(entryPath);
      if (made.has(parent)) return;
      makeFolders(parent);
      mkdirSync(join(dest, parent), { mode: 0o700 });
      made.add(parent);
    };
    let linking = link;
    let copied = !link;
    for (const e of manifest.entries) {
      if (isCodeLink(e)) continue;
      makeFolders(e.path);
      const cacheFile = this.path(blobKey(e.sha256, e.mode));
      const target = join(dest, e.path);
      if (linking) {
        try {
          linkSync(cacheFile, target);
          continue;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? "";
          if (LINK_UNSUPPORTED.has(code)) {
            linking = false;
            this.log(`code cache: cannot hard-link into ${dest} (${code}); copying the files`);
          }
        }
      }
      copyFileSync(cacheFile, target, constants.COPYFILE_EXCL);
      chmodSync(target, e.mode);
      copied = true;
    }
    for (const e of manifest.entries) {
      if (!isCodeLink(e)) continue;
      makeFolders(e.path);
      symlinkSync(e.link, join(dest, e.path));
    }
    return copied ? "copy" : "hardlink";
  }

  private touch(key: string, stamp: number): void {
    const entry = this.index.get(key);
    if (!entry) return;
    entry.lastUsed = stamp;
    try {
      entry.ctimeMs = statSync(this.path(key)).ctimeMs;
    } catch {
      this.index.delete(key);
    }
  }

  private evict(keep: Set<string>): void {
    let held = this.size();
    if (held <= this.opts.maxBytes) return;
    const candidates = [...this.index.entries()].filter(([key]) => !keep.has(key)).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key, entry] of candidates) {
      if (held <= this.opts.maxBytes) break;
      this.discard(key);
      held -= entry.size;
    }
  }

  private record(key: string, lastUsed: number): void {
    const st = statSync(this.path(key));
    this.index.set(key, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, lastUsed });
  }

  private discard(key: string): void {
    this.index.delete(key);
    rmSync(this.path(key), { force: true });
  }

  private path(key: string): string {
    return join(this.opts.dir, key);
  }

  private nextStamp(): number {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return this.lastStamp;
  }

  private get indexFile(): string {
    return join(this.opts.dir, "index.json");
  }

  private saveIndex(): void {
    writeJsonFile(this.indexFile, Object.fromEntries(this.index));
  }

  /** Keeps the entries whose files exist, and removes files the index does not know (a crash between rename and index write, temp files). */
  private loadIndex(): void {
    const saved = readJsonFile<Record<string, Partial<IndexEntry>>>(this.indexFile) ?? {};
    for (const [key, e] of Object.entries(saved)) {
      if (!(BLOB_KEY.test(key) || SNAPSHOT_KEY.test(key)) || typeof e !== "object" || e === null) continue;
      const { size, mtimeMs, ctimeMs, lastUsed } = e;
      if (![size, mtimeMs, ctimeMs, lastUsed].every((n) => typeof n === "number" && Number.isFinite(n))) continue;
      try {
        lstatSync(this.path(key));
      } catch {
        continue;
      }
      this.index.set(key, { size: size!, mtimeMs: mtimeMs!, ctimeMs: ctimeMs!, lastUsed: lastUsed! });
      this.lastStamp = Math.max(this.lastStamp, lastUsed!);
    }
    for (const folder of ["blobs", "snapshots"]) {
      for (const name of readdirSync(join(this.opts.dir, folder))) {
        if (!this.index.has(`${folder}/${name}`)) rmSync(join(this.opts.dir, folder, name), { recursive: true, force: true });
      }
    }
  }
}

/**
 * The snapshot info with its manifest checked, its id verified, and its summary recomputed from the
 * manifest (which is what the id vouches for), or a CodeFetchError saying what is wrong.
 */
function checkSnapshotInfo(id: string, info: unknown, limitBytes: number): CodeSnapshotInfo {
  const raw = (typeof info === "object" && info !== null ? info : {}) as Partial<Record<keyof CodeSnapshotInfo, unknown>>;
  let manifest: CodeManifest;
  try {
    manifest = checkCodeManifest(raw.manifest, { maxBytes: limitBytes });
  } catch (err) {
    if (err instanceof CodeManifestError) throw new CodeFetchError(id, `code snapshot ${id} is refused: ${err.message}`, { cause: err });
    throw err;
  }
  const actual = codeSnapshotId(manifest);
  if (actual !== id) {
    throw new CodeFetchError(id, `code snapshot ${id} is refused: its manifest hashes to ${actual}, not ${id} (the dispatcher answered with another or a changed manifest)`);
  }
  return {
    ...summarizeManifest(id, manifest),
    manifest,
    createdAt: typeof raw.createdAt === "string" ? raw.createdAt : "",
    createdBy: typeof raw.createdBy === "string" ? raw.createdBy : null,
  };
}

/** Refuses a `dest` that exists and is not an empty folder, before anything is fetched. */
function checkDestFree(snapshotId: string, dest: string): void {
  let st;
  try {
    st = lstatSync(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new CodeFetchError(snapshotId, `cannot place code in ${dest}: ${errorMessage(err)}`, { cause: err });
  }
  if (!st.isDirectory()) throw new CodeFetchError(snapshotId, `cannot place code in ${dest}: it exists and is not a folder; give a fresh or empty folder`);
  if (readdirSync(dest).length > 0) throw new CodeFetchError(snapshotId, `cannot place code in ${dest}: the folder is not empty; give a fresh or empty folder`);
}

/** Creates `dest` (0700) and says so, or takes the empty folder given. */
function makeDest(snapshotId: string, dest: string): "created" | "given" {
  mkdirSync(dirname(dest), { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dest, { mode: 0o700 });
    return "created";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  checkDestFree(snapshotId, dest);
  return "given";
}

function emptyFolder(dir: string): void {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}
