// Code snapshots on the dispatcher: blobs under code/blobs/ in the state folder (one file per
// sha256, checked on the way in), snapshots as checked manifests in SQLite, and the collection of
// what no kept job uses any more. A snapshot is stored only once every blob it names is here.
import { createHash, randomBytes } from "node:crypto";
import { closeSync, createReadStream, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";
import { join } from "node:path";
import {
  checkCodeManifest,
  codeSnapshotId,
  manifestBlobs,
  SHA256_PATTERN,
  summarizeManifest,
  type CodeManifest,
  type CodeOffer,
  type CodeSnapshotInfo,
  type CodeSummary,
  type CodeUsage,
} from "../core/code.js";
import type { Db } from "./db.js";

export class CodeBlobError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

interface SnapshotRow {
  id: string;
  manifest: string;
  files: number;
  bytes: number;
  created_at: string;
  created_by: string | null;
}

export class CodeStore {
  private readonly blobsDir: string;
  private readonly stmts;

  constructor(
    private readonly db: Db,
    dir: string,
    /** The largest snapshot taken (LABRIG_CODE_LIMIT_MB). */
    readonly maxBytes: number,
  ) {
    this.blobsDir = join(dir, "blobs");
    this.stmts = {
      hasBlob: db.prepare<[string], unknown>("SELECT 1 FROM code_blobs WHERE sha256 = ?").pluck(),
      insertBlob: db.prepare("INSERT OR IGNORE INTO code_blobs (sha256, size, created_at) VALUES (?, ?, ?)"),
      getSnapshot: db.prepare<[string], SnapshotRow>("SELECT * FROM code_snapshots WHERE id = ?"),
      insertSnapshot: db.prepare("INSERT OR IGNORE INTO code_snapshots (id, manifest, files, bytes, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)"),
      insertSnapshotBlob: db.prepare("INSERT OR IGNORE INTO code_snapshot_blobs (snapshot_id, sha256) VALUES (?, ?)"),
      snapshotHasBlob: db.prepare<[string, string], unknown>("SELECT 1 FROM code_snapshot_blobs WHERE snapshot_id = ? AND sha256 = ?").pluck(),
      usedOnHost: db.prepare<[string, string], unknown>(
        "SELECT 1 FROM jobs WHERE code_snapshot = ? AND host_id = ? AND state IN ('assigned', 'running') LIMIT 1",
      ).pluck(),
      unusedSnapshots: db.prepare<[string], { id: string }>(
        "SELECT id FROM code_snapshots s WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.code_snapshot = s.id)",
      ),
      deleteSnapshot: db.prepare("DELETE FROM code_snapshots WHERE id = ?"),
      unusedBlobs: db.prepare<[string], { sha256: string; size: number }>(
        "SELECT sha256, size FROM code_blobs b WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM code_snapshot_blobs sb WHERE sb.sha256 = b.sha256)",
      ),
      deleteBlob: db.prepare("DELETE FROM code_blobs WHERE sha256 = ?"),
      counts: db.prepare<[], { snapshots: number; blobs: number; bytes: number; unused: number }>(
        `SELECT (SELECT COUNT(*) FROM code_snapshots) AS snapshots, (SELECT COUNT(*) FROM code_blobs) AS blobs,
          (SELECT COALESCE(SUM(size), 0) FROM code_blobs) AS bytes,
          (SELECT COUNT(*) FROM code_snapshots s WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.code_snapshot = s.id)) AS unused`,
      ),
    };
  }

  /**
   * A manifest offered by a person: checked, and answered with the blobs still missing. Once none
   * is missing the snapshot is stored (offering it again is a no-op) and can go with jobs.
   */
  offer(input: unknown, by: string | null, now = new Date()): CodeOffer {
    const manifest = checkCodeManifest(input, { maxBytes: this.maxBytes });
    const id = codeSnapshotId(manifest);
    const blobs = manifestBlobs(manifest);
    const missing = [...blobs.keys()].filter((sha) => this.stmts.hasBlob.get(sha) === undefined);
    const { files, bytes } = summarizeManifest(id, manifest);
    if (missing.length === 0 && !this.stmts.getSnapshot.get(id)) {
      this.db.transaction(() => {
        this.stmts.insertSnapshot.run(id, JSON.stringify(manifest), files, bytes, now.toISOString(), by);
        for (const sha of blobs.keys()) this.stmts.insertSnapshotBlob.run(id, sha);
      })();
    }
    return { id, missing, files, bytes };
  }

  /** Stores a blob whose bytes hash to `sha256` (else CodeBlobError, and nothing is kept). */
  putBlob(sha256: string, chunks: Buffer[], now = new Date()): { sha256: string; size: number } {
    if (!SHA256_PATTERN.test(sha256)) throw new CodeBlobError("sha256: the blob's SHA-256 as 64 lower-case hex digits", "sha256");
    const hash = createHash("sha256");
    let size = 0;
    for (const c of chunks) {
      hash.update(c);
      size += c.length;
    }
    const actual = hash.digest("hex");
    if (actual !== sha256) throw new CodeBlobError(`the body's SHA-256 is ${actual}, not ${sha256}; nothing was stored`, "sha256");
    if (size > this.maxBytes) throw new CodeBlobError(`the blob holds ${size} bytes, over the snapshot limit of ${this.maxBytes}`, "(body)");
    if (this.stmts.hasBlob.get(sha256) !== undefined) return { sha256, size };
    const file = this.blobFile(sha256);
    mkdirSync(join(file, ".."), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      for (const c of chunks) writeSync(fd, c);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this.stmts.insertBlob.run(sha256, size, now.toISOString());
    return { sha256, size };
  }

  snapshot(id: string): CodeSnapshotInfo | undefined {
    const r = this.stmts.getSnapshot.get(id);
    if (!r) return undefined;
    const manifest = JSON.parse(r.manifest) as CodeManifest;
    return { ...summarizeManifest(id, manifest), manifest, createdAt: r.created_at, createdBy: r.created_by };
  }

  /** What a job shows of its snapshot; undefined when the dispatcher has no such snapshot. */
  summary(id: string): CodeSummary | undefined {
    const info = this.snapshot(id);
    return info && { snapshot: info.snapshot, files: info.files, bytes: info.bytes, git: info.git };
  }

  /** An agent reads a snapshot only while a job of its host that uses it is assigned or running. */
  usedOnHost(id: string, hostId: string): boolean {
    return this.stmts.usedOnHost.get(id, hostId) !== undefined;
  }

  /** One of the snapshot's blobs as a stream, or undefined when the snapshot does not name it. */
  openBlob(snapshotId: string, sha256: string): { size: number; stream: Readable } | undefined {
    if (!SHA256_PATTERN.test(sha256) || this.stmts.snapshotHasBlob.get(snapshotId, sha256) === undefined) return undefined;
    const file = this.blobFile(sha256);
    return { size: statSync(file).size, stream: createReadStream(file) };
  }

  usage(): CodeUsage {
    return this.stmts.counts.get()!;
  }

  /**
   * Removes the snapshots no job uses and the blobs no snapshot needs, once older than `keepMs`
   * (a snapshot is offered before the job that uses it is submitted). Jobs keep theirs as long
   * as the jobs are kept.
   */
  collect(keepMs: number, now = new Date()): { snapshots: number; blobs: number; bytes: number } {
    const before = new Date(now.getTime() - keepMs).toISOString();
    const removed = { snapshots: 0, blobs: 0, bytes: 0 };
    const files: string[] = [];
    this.db.transaction(() => {
      for (const { id } of this.stmts.unusedSnapshots.all(before)) {
        this.stmts.deleteSnapshot.run(id);
        removed.snapshots++;
      }
      for (const b of this.stmts.unusedBlobs.all(before)) {
        this.stmts.deleteBlob.run(b.sha256);
        files.push(this.blobFile(b.sha256));
        removed.blobs++;
        removed.bytes += b.size;
      }
    })();
    for (const f of files) rmSync(f, { force: true });
    return removed;
  }

  private blobFile(sha256: string): string {
    return join(this.blobsDir, sha256.slice(0, 2), sha256);
  }
}
