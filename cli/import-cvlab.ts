// `labrig import cvlab-kit`: brings a CVLab-Kit queue's history over from its SQLite database
// (web_helper/state/web_helper.db, table queue_experiments) and its queue logs folder
// (web_helper/queue_logs/<experiment_uid>/{config.yaml,terminal_log.log,terminal_err.log}).
// Each row becomes a labrig job in the state it had (pending → queued and runs here; completed →
// succeeded; failed and expired → failed; running or assigned → failed, lost), keyed by its
// experiment_uid so a second import adds nothing; the terminal logs become the job's job.log.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { type ImportedJob, type ImportResponse, type JobState, type Priority, priorities } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { parseCvlabConfig } from "../core/cvlab-config.js";
import { ApiError, errorMessage, InputError } from "../core/errors.js";
import { Database } from "../dispatcher/sqlite.js";

export const IMPORT_SOURCE = "cvlab-kit";

/** A queue_experiments row, as CVLab-Kit's QueueExperiment model (web_helper/backend/models/queue_experiment.py) defines it. */
export interface CvlabRow {
  experiment_uid: string | null;
  name: string | null;
  project: string | null;
  status: string | null;
  created_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  config_path: string | null;
  log_path: string | null;
  error_log_path: string | null;
  assigned_device: string | null;
  priority: string | null;
  exit_code: number | null;
  error_message: string | null;
}

/** What was found on disk for a row. */
export interface RowFiles {
  config?: string;
  log?: Buffer;
}

export interface MappedRow {
  uid: string;
  job?: ImportedJob;
  log?: Buffer;
  skip?: string;
  notes: string[];
}

const stateFor: Record<string, { state: JobState; reason?: string }> = {
  pending: { state: "queued" },
  queued: { state: "queued" },
  completed: { state: "succeeded" },
  failed: { state: "failed" },
  cancelled: { state: "cancelled" },
  expired: { state: "failed", reason: "expired in CVLab-Kit's queue" },
  running: { state: "failed", reason: "lost: it was running in CVLab-Kit's queue when the queue moved to labrig; how it ended is unknown" },
  assigned: { state: "failed", reason: "lost: it was assigned to a device in CVLab-Kit's queue when the queue moved to labrig; it may never have started" },
  paused: { state: "cancelled", reason: "paused in CVLab-Kit's queue; labrig has no pause: retry it to run it" },
};

/** CVLab-Kit's DateTime columns: naive `YYYY-MM-DD HH:MM:SS[.ffffff]` in the server's local time. */
export function cvlabTime(t: string | null): string | null {
  if (!t) return null;
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(t.trim());
  if (!m) return null;
  const ms = m[3] ? m[3].slice(0, 4).padEnd(4, "0") : "";
  const d = new Date(`${m[1]}T${m[2]}${ms}${m[4] ?? ""}`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** One row as a labrig job, or why it is skipped. Pure. */
export function mapCvlabRow(row: CvlabRow, files: RowFiles): MappedRow {
  const uid = row.experiment_uid ?? "";
  const notes: string[] = [];
  if (!uid) return { uid: "(none)", skip: "no experiment_uid", notes };
  const status = (row.status ?? "unknown").toLowerCase();
  const target = stateFor[status];
  if (!target) return { uid, skip: `status '${row.status}' has no labrig state`, notes };
  const createdAt = cvlabTime(row.created_at);
  if (!createdAt) return { uid, skip: `created_at '${row.created_at}' is not a time`, notes };

  let config = files.config;
  if (config !== undefined) {
    try {
      parseCvlabConfig(config, `${uid}/config.yaml`);
    } catch (err) {
      if (target.state === "queued") return { uid, skip: `its config does not parse: ${errorMessage(err)}`, notes };
      notes.push(`config not kept: ${errorMessage(err)}`);
      config = undefined;
    }
  } else if (target.state === "queued") {
    return { uid, skip: `its config (${row.config_path ?? "no config_path"}) was not found, so there is nothing to run`, notes };
  }

  let project = (row.project ?? "").trim() || "default";
  const safe = project.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100);
  if (safe !== project) {
    notes.push(`project '${project}' is '${safe}' in labrig`);
    project = safe;
  }
  let priority: Priority = "normal";
  const p = (row.priority ?? "normal").toLowerCase();
  if ((priorities as readonly string[]).includes(p)) priority = p as Priority;
  else notes.push(`priority '${row.priority}' is normal in labrig`);

  const ended = target.state !== "queued";
  const reason = target.reason ?? (row.error_message || (row.status === "failed" && row.exit_code != null ? `exit code ${row.exit_code}` : null));
  return {
    uid,
    notes,
    log: ended ? files.log : undefined,
    job: {
      externalId: uid,
      name: (row.name ?? "").trim().slice(0, 200) || uid,
      project,
      state: target.state,
      priority,
      reason: ended ? reason : null,
      exitCode: ended ? row.exit_code : null,
      hostId: ended ? row.assigned_device : null,
      createdAt,
      startedAt: ended ? cvlabTime(row.started_at) : null,
      endedAt: ended ? (cvlabTime(row.completed_at) ?? cvlabTime(row.started_at) ?? createdAt) : null,
      config: config ?? null,
    },
  };
}

export interface ImportOptions {
  db: string;
  logs?: string;
  dryRun: boolean;
}

function readIfThere(path: string | undefined): Buffer | undefined {
  if (!path || !existsSync(path)) return undefined;
  return readFileSync(path);
}

/** Reads the CVLab-Kit database and the files each row names. */
export function readCvlabQueue(opts: ImportOptions): MappedRow[] {
  if (!existsSync(opts.db)) throw new InputError("--db", `${opts.db}: no such file (CVLab-Kit keeps it at web_helper/state/web_helper.db)`);
  let rows: CvlabRow[];
  const db = new Database(opts.db, { readOnly: true, mustExist: true });
  try {
    const has = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'queue_experiments'").get();
    if (!has) throw new InputError("--db", `${opts.db} has no queue_experiments table: is it CVLab-Kit's web_helper.db?`);
    const cols = new Set((db.prepare("PRAGMA table_info(queue_experiments)").all() as { name: string }[]).map((c) => c.name));
    const col = (name: keyof CvlabRow) => (cols.has(name) ? name : `NULL AS ${name}`);
    const names: (keyof CvlabRow)[] = ["experiment_uid", "name", "project", "status", "created_at", "started_at", "completed_at", "config_path", "log_path", "error_log_path", "assigned_device", "priority", "exit_code", "error_message"];
    rows = db.prepare(`SELECT ${names.map(col).join(", ")} FROM queue_experiments ORDER BY created_at, id`).all() as CvlabRow[];
  } finally {
    db.close();
  }
  // Paths in the database are relative to the CVLab-Kit checkout: the folder above web_helper/state/.
  const root = resolve(dirname(opts.db), "..", "..");
  const at = (p: string | null) => (p ? (isAbsolute(p) ? p : join(root, p)) : undefined);
  return rows.map((row) => {
    const folder = opts.logs && row.experiment_uid ? join(opts.logs, row.experiment_uid) : undefined;
    const config = readIfThere(folder ? join(folder, "config.yaml") : undefined) ?? readIfThere(at(row.config_path));
    const out = readIfThere(folder ? join(folder, "terminal_log.log") : undefined) ?? readIfThere(at(row.log_path));
    const err = readIfThere(folder ? join(folder, "terminal_err.log") : undefined) ?? readIfThere(at(row.error_log_path));
    let log = out;
    if (err && err.length > 0) log = Buffer.concat([out ?? Buffer.alloc(0), Buffer.from(`${out && !out.toString().endsWith("\n") ? "\n" : ""}--- terminal_err.log ---\n`), err]);
    return mapCvlabRow(row, { config: config?.toString("utf8"), log });
  });
}

export interface ImportReport {
  dryRun: boolean;
  imported: { uid: string; id: string | null; state: JobState; notes: string[] }[];
  skipped: { uid: string; reason: string }[];
  logs: { uploaded: number; alreadyThere: number };
}

/** Sends the rows to the dispatcher, then each ended job's log (only where the dispatcher lacks it). */
export async function importCvlabQueue(client: DispatcherClient, rows: MappedRow[], dryRun: boolean): Promise<ImportReport> {
  const toSend = rows.filter((r) => r.job);
  const res: ImportResponse = toSend.length ? await client.importJobs({ source: IMPORT_SOURCE, dryRun, jobs: toSend.map((r) => r.job!) }) : { imported: [], skipped: [] };
  const byUid = new Map(rows.map((r) => [r.uid, r]));
  const report: ImportReport = {
    dryRun,
    imported: res.imported.map((i) => ({ uid: i.externalId, id: i.id, state: i.state, notes: byUid.get(i.externalId)?.notes ?? [] })),
    skipped: [...rows.filter((r) => r.skip).map((r) => ({ uid: r.uid, reason: r.skip! })), ...res.skipped.map((s) => ({ uid: s.externalId, reason: s.reason }))],
    logs: { uploaded: 0, alreadyThere: 0 },
  };
  if (dryRun) return report;
  const ids = [...res.imported.map((i) => [i.externalId, i.id] as const), ...res.skipped.map((s) => [s.externalId, s.id] as const)];
  for (const [uid, id] of ids) {
    const log = byUid.get(uid)?.log;
    if (!log || !id) continue;
    const sha256 = createHash("sha256").update(log).digest("hex");
    let held: string | undefined;
    try {
      held = (await client.syncStatus(id)).files["job.log"]?.sha256;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    if (held === sha256) {
      report.logs.alreadyThere++;
      continue;
    }
    await client.syncPut(id, "job.log", log, sha256, 1);
    report.logs.uploaded++;
  }
  return report;
}

export function formatImportReport(r: ImportReport): string {
  const lines: string[] = [];
  const verb = r.dryRun ? "would import" : "imported";
  const byState = new Map<string, number>();
  for (const i of r.imported) byState.set(i.state, (byState.get(i.state) ?? 0) + 1);
  lines.push(`${verb} ${r.imported.length} job${r.imported.length === 1 ? "" : "s"}${byState.size ? ` (${[...byState].map(([s, n]) => `${n} ${s}`).join(", ")})` : ""}; skipped ${r.skipped.length}`);
  for (const i of r.imported) lines.push(`  + ${i.uid} → ${i.id ?? "(dry run)"} ${i.state}${i.notes.length ? `; ${i.notes.join("; ")}` : ""}`);
  for (const s of r.skipped) lines.push(`  - ${s.uid}: ${s.reason}`);
  if (!r.dryRun) lines.push(`logs: ${r.logs.uploaded} uploaded as job.log, ${r.logs.alreadyThere} already there`);
  return lines.join("\n");
}
