// @ts-check
// Takes a consistent copy of the dispatcher's live SQLite database with SQLite's online backup API
// (node:sqlite's backup()): the pages are copied under one read transaction, so the copy is the
// database as of one committed instant even while the dispatcher keeps writing. A plain file copy
// of a WAL database in use can miss committed pages or tear; it is never used here.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { DatabaseSync, backup } from "node:sqlite";
import { BackupError } from "./errors.mjs";

/** All pages in one step: the copy then comes from a single read transaction. */
const ALL_PAGES = 0x7fffffff;

/**
 * Copies `liveFile` to `destFile` online and checks the copy.
 * @param {string} liveFile
 * @param {string} destFile
 * @returns {Promise<{ pages: number, sizeBytes: number, sha256: string, jobs: number | null, integrity: string }>}
 */
export async function snapshotDatabase(liveFile, destFile) {
  if (!existsSync(liveFile)) {
    throw new BackupError("database", `${liveFile} does not exist: is --state the dispatcher's state folder (the one holding labrig.db)?`);
  }
  rmSync(destFile, { force: true });
  let live;
  try {
    live = new DatabaseSync(liveFile, { timeout: 10_000 });
    const totalPages = await backup(live, destFile, { rate: ALL_PAGES });
    selfContained(destFile);
    const check = inspectDatabase(destFile);
    if (check.integrity !== "ok") throw new BackupError("database", `the online copy of ${liveFile} fails integrity_check: ${check.integrity}`);
    const bytes = readFileSync(destFile);
    return {
      pages: totalPages,
      sizeBytes: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      jobs: check.jobs,
      integrity: check.integrity,
    };
  } catch (/** @type {any} */ err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError("database", `online backup of ${liveFile} failed: ${err.message}`, { cause: err });
  } finally {
    live?.close();
  }
}

/**
 * The copy inherits WAL mode; switching it to a rollback journal keeps it one file with nothing beside it.
 * @param {string} file
 */
function selfContained(file) {
  const copy = new DatabaseSync(file);
  try {
    copy.exec("PRAGMA journal_mode = DELETE");
  } finally {
    copy.close();
  }
}

/**
 * Opens a database copy read-only and reports `PRAGMA integrity_check` ("ok" or the problems,
 * joined) and how many jobs it holds (null when it has no jobs table).
 * @param {string} file
 * @returns {{ integrity: string, jobs: number | null }}
 */
export function inspectDatabase(file) {
  let db;
  try {
    if (!existsSync(file)) throw new Error(`${file} does not exist`);
    db = new DatabaseSync(file, { readOnly: true });
    const rows = db.prepare("PRAGMA integrity_check").all().map((r) => r.integrity_check);
    const integrity = rows.length === 1 && rows[0] === "ok" ? "ok" : rows.join("; ");
    const hasJobs = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").get();
    const jobs = hasJobs && integrity === "ok" ? Number(db.prepare("SELECT count(*) AS n FROM jobs").get()?.n) : null;
    return { integrity, jobs };
  } catch (/** @type {any} */ err) {
    return { integrity: `cannot read it as an SQLite database: ${err.message}`, jobs: null };
  } finally {
    db?.close();
  }
}
