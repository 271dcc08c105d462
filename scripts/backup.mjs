#!/usr/bin/env node
// @ts-check
// The nightly backup (zx + restic): an online SQLite copy of the dispatcher's live database, then
// one restic snapshot of that copy plus tokens, config and the runs' artefacts (not what the
// dispatcher rebuilds), pruning by the retention policy and a short `restic check`. Run as
// `pnpm backup ...`, `labrig backup ...` or by the labrig-backup timer; any failure exits non-zero,
// and is posted to the webhook and the dispatcher's events when those are known.
import { cpSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { BackupError } from "./lib/errors.mjs";
import { postDispatcherNotice, postWebhook, resolveNoticeTarget } from "./lib/notify.mjs";
import { Restic } from "./lib/restic.mjs";
import { snapshotDatabase } from "./lib/sqlite-snapshot.mjs";

/** Inside the state folder: the database copy, config copy and manifest that go into the snapshot. */
export const STAGING_DIR = ".labrig-backup";
export const MANIFEST = "manifest.json";
/** Every snapshot carries this tag, so forget/restore never touch another tool's snapshots. */
export const BACKUP_TAG = "labrig";

export const usage = `usage: pnpm backup [--state DIR] --repo REPO --password-file F [options]

Backs up a labrig dispatcher's state folder with restic.

  --state DIR            the dispatcher's state folder (labrig.db, tokens, runs/); default: the
                         local lab's, $LABRIG_HOME/dispatcher (LABRIG_HOME defaults to ~/.labrig)
  --repo REPO            restic repository (a folder, sftp:host:/path, rest:..., s3:...); created if new
  --password-file F      file holding the repository's password
  --config DIR           also back up this folder (inventory, compose env, ...)
  --lab NAME             lab name, tagged on the snapshot as lab:NAME (default: env LABRIG_LAB or "lab")
  --host NAME            host name recorded on the snapshot (default: this machine's)
  --keep-last N          retention: keep the last N snapshots
  --keep-daily N         retention: keep one a day for N days (default 7)
  --keep-weekly N        retention: keep one a week for N weeks (default 4)
  --keep-monthly N       retention: keep one a month for N months (default 0)
  --check-subset P       share of pack data restic check reads, e.g. 5% (default); 0 checks structure only
  --webhook URL          on failure POST {"text": ...} here (Slack, or Telegram's sendMessage?chat_id=...)
  --dispatcher URL       dispatcher to post a notice to (default: the one in DIR/dispatcher.json)
  --token-file F         admin token for --dispatcher (default: DIR/admin-token)
  --json                 print one JSON document instead of text
`;

/** The local lab's state folder, where `pnpm start` keeps it (as core/config.ts localLabPaths has it). */
export function localLabStateDir(env = process.env) {
  return join(env.LABRIG_HOME ? env.LABRIG_HOME : join(homedir(), ".labrig"), "dispatcher");
}

/**
 * @typedef {object} BackupOptions
 * @property {string} state
 * @property {string} repo
 * @property {string} passwordFile
 * @property {string} [config]
 * @property {string} [lab]
 * @property {string} [host]
 * @property {{ last?: number, daily?: number, weekly?: number, monthly?: number }} [keep]
 * @property {string} [checkSubset]
 */

/**
 * @typedef {object} BackupSummary
 * @property {true} ok
 * @property {string} lab
 * @property {string} host
 * @property {{ location: string, created: boolean }} repository
 * @property {{ id: string, tags: string[] }} snapshot
 * @property {{ total: number, new: number, changed: number, unmodified: number }} files
 * @property {{ processed: number, added: number }} bytes
 * @property {{ jobs: number | null, sizeBytes: number, sha256: string }} database
 * @property {{ policy: Record<string, number | undefined>, kept: number, removed: number }} retention
 * @property {string} check
 * @property {number} durationMs
 */

/** @typedef {{ lab: string, host: string, keep: Record<string, number | undefined> }} SnapshotScope */

/**
 * Runs one backup; throws a BackupError naming the failed stage.
 * @param {BackupOptions} opts
 * @returns {Promise<BackupSummary>}
 */
export async function runBackup(opts) {
  const started = Date.now();
  const state = resolve(opts.state);
  Restic.preflight(opts);
  if (!existsSync(state) || !statSync(state).isDirectory()) throw new BackupError("options", `state folder ${state} does not exist`);
  const lab = opts.lab ?? process.env.LABRIG_LAB ?? "lab";
  const host = opts.host ?? process.env.LABRIG_HOST ?? hostname();
  const keep = { daily: 7, weekly: 4, ...stripUndefined(opts.keep ?? {}) };
  const restic = new Restic(opts);

  const staging = join(state, STAGING_DIR);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  try {
    const database = await snapshotDatabase(join(state, "labrig.db"), join(staging, "labrig.db"));
    if (opts.config) copyConfig(resolve(opts.config), join(staging, "config"));
    const manifest = { lab, host, createdAt: new Date().toISOString(), database, config: Boolean(opts.config) };
    writeFileSync(join(staging, MANIFEST), JSON.stringify(manifest, null, 2));

    const created = await restic.ensureRepository();
    const summary = await resticBackup(restic, state, { lab, host });
    const retention = await forget(restic, { lab, host, keep });
    const check = opts.checkSubset ?? "5%";
    await restic.ok("restic check", ["check", ...(check === "0" ? [] : [`--read-data-subset=${check}`])]);

    return {
      ok: true,
      lab,
      host,
      repository: { location: opts.repo, created },
      snapshot: { id: summary.snapshot_id, tags: tagsFor(lab) },
      files: {
        total: summary.total_files_processed,
        new: summary.files_new,
        changed: summary.files_changed,
        unmodified: summary.files_unmodified,
      },
      bytes: { processed: summary.total_bytes_processed, added: summary.data_added },
      database: { jobs: database.jobs, sizeBytes: database.sizeBytes, sha256: database.sha256 },
      retention,
      check: check === "0" ? "structure" : `structure and ${check} of the data`,
      durationMs: Date.now() - started,
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** @param {string} lab */
function tagsFor(lab) {
  return [BACKUP_TAG, `lab:${lab}`];
}

/** Backs up the state folder as the snapshot's root, leaving out the live database and what the dispatcher rebuilds. */
/**
 * @param {Restic} restic
 * @param {string} state
 * @param {Omit<SnapshotScope, "keep">} scope
 */
async function resticBackup(restic, state, { lab, host }) {
  const excludes = [
    join(state, "labrig.db"), // the live file; its consistent copy is in the staging folder
    join(state, "labrig.db-wal"),
    join(state, "labrig.db-shm"),
    join(state, "dispatcher.json"), // rewritten at every start
    "*.labrig-tmp", // half-written sync uploads
  ];
  const args = ["backup", ".", "--host", host, ...tagsFor(lab).flatMap((t) => ["--tag", t]), ...excludes.flatMap((e) => ["--exclude", e]), "--json"];
  const out = await restic.run(args, { cwd: state });
  const lines = Restic.jsonLines(out.stdout);
  const summary = lines.find((l) => l.message_type === "summary");
  if (out.exitCode !== 0 || !summary) {
    const unreadable = lines.filter((l) => l.message_type === "error").map((l) => `${l.item}: ${l.error?.message ?? "unreadable"}`);
    const why = unreadable.length ? `files it could not read: ${unreadable.join("; ")}` : out.stderr.trim().split("\n").slice(-6).join("\n");
    throw new BackupError("restic backup", `restic backup exited ${out.exitCode}${out.exitCode === 3 ? " (the snapshot is incomplete)" : ""}: ${why}`);
  }
  return summary;
}

/** `restic forget --prune` over this lab's snapshots from this host; returns what was kept and removed. */
/**
 * @param {Restic} restic
 * @param {SnapshotScope} scope
 */
async function forget(restic, { lab, host, keep }) {
  const policy = [];
  for (const [name, n] of Object.entries(keep)) if (n !== undefined && n > 0) policy.push(`--keep-${name}`, String(n));
  const groups = await restic.json("restic forget", [
    "forget",
    "--prune",
    "--host",
    host,
    "--tag",
    tagsFor(lab).join(","),
    "--group-by",
    "host,tags",
    ...(policy.length ? policy : ["--keep-last", "1"]),
  ]);
  /** @type {{ keep?: { id: string }[], remove?: { id: string }[] }[]} */
  const byGroup = groups;
  const kept = byGroup.flatMap((g) => (g.keep ?? []).map((s) => s.id));
  const removed = byGroup.flatMap((g) => (g.remove ?? []).map((s) => s.id));
  return { policy: keep, kept: kept.length, removed: removed.length };
}

/**
 * @param {string} from
 * @param {string} to
 */
function copyConfig(from, to) {
  if (!existsSync(from)) throw new BackupError("config", `config folder ${from} does not exist`);
  cpSync(from, to, { recursive: true, dereference: true });
}

/**
 * @template T
 * @param {Record<string, T | undefined>} o
 * @returns {Record<string, T>}
 */
function stripUndefined(o) {
  return /** @type {Record<string, T>} */ (Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
}

/**
 * One line for people: what was saved, how much was new, how long it took.
 * @param {BackupSummary} s
 */
export function formatSummary(s) {
  const mib = (/** @type {number} */ n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return [
    `backup OK: snapshot ${s.snapshot.id.slice(0, 8)} of lab ${s.lab} on ${s.host}${s.repository.created ? " (new repository)" : ""}`,
    `  files: ${s.files.total} (${s.files.new} new, ${s.files.changed} changed), ${mib(s.bytes.processed)} read, ${mib(s.bytes.added)} added`,
    `  database: ${s.database.jobs ?? "?"} jobs, ${mib(s.database.sizeBytes)}, integrity ok`,
    `  retention: kept ${s.retention.kept}, removed ${s.retention.removed}; check: ${s.check} ok`,
    `  took ${(s.durationMs / 1000).toFixed(1)} s`,
  ].join("\n");
}

/**
 * The command line: parses argv, runs the backup, reports. Returns the exit code.
 * @param {string[]} argv arguments after the command name
 * @param {{ out?: (s: string) => void, err?: (s: string) => void }} [io]
 */
export async function main(argv, io = {}) {
  const out = io.out ?? ((s) => process.stdout.write(s));
  const err = io.err ?? ((s) => process.stderr.write(s));
  let values;
  try {
    ({ values } = parseArgs({
      args: argv.filter((a) => a !== "--"),
      options: {
        state: { type: "string" },
        repo: { type: "string" },
        "password-file": { type: "string" },
        config: { type: "string" },
        lab: { type: "string" },
        host: { type: "string" },
        "keep-last": { type: "string" },
        "keep-daily": { type: "string" },
        "keep-weekly": { type: "string" },
        "keep-monthly": { type: "string" },
        "check-subset": { type: "string" },
        webhook: { type: "string" },
        dispatcher: { type: "string" },
        "token-file": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (/** @type {any} */ e) {
    err(`labrig backup: ${e.message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    out(usage);
    return 0;
  }
  const webhook = values.webhook ?? process.env.LABRIG_BACKUP_WEBHOOK;
  let state = values.state;
  const noticeTarget = () => resolveNoticeTarget({ dispatcherUrl: values.dispatcher, tokenFile: values["token-file"], stateDir: state && resolve(state) });

  try {
    if (!state) {
      state = localLabStateDir();
      if (!existsSync(join(state, "labrig.db"))) {
        throw new BackupError("options", `no state folder given, and the local lab has none at ${state}: pass --state DIR (the dispatcher's state folder)`);
      }
      err(`labrig backup: backing up the local lab's state folder ${state} (pass --state DIR for another)\n`);
    }
    const summary = await runBackup({
      state,
      repo: values.repo ?? process.env.RESTIC_REPOSITORY ?? "",
      passwordFile: values["password-file"] ?? process.env.RESTIC_PASSWORD_FILE ?? "",
      config: values.config,
      lab: values.lab,
      host: values.host,
      keep: {
        last: count(values, "keep-last"),
        daily: count(values, "keep-daily"),
        weekly: count(values, "keep-weekly"),
        monthly: count(values, "keep-monthly"),
      },
      checkSubset: values["check-subset"],
    });
    const warnings = [];
    const target = noticeTarget();
    if (target) {
      const w = await postDispatcherNotice(
        target,
        "info",
        `backup OK: snapshot ${summary.snapshot.id.slice(0, 8)}, ${summary.files.total} files, ${summary.bytes.added} bytes added`,
      );
      if (w) warnings.push(w);
    }
    out(values.json ? `${JSON.stringify({ ...summary, warnings })}\n` : `${formatSummary(summary)}\n${warnings.map((w) => `warning: ${w}\n`).join("")}`);
    return 0;
  } catch (e) {
    if (!(e instanceof BackupError)) throw e;
    const lab = values.lab ?? process.env.LABRIG_LAB ?? "lab";
    const host = values.host ?? process.env.LABRIG_HOST ?? hostname();
    const text = `labrig backup FAILED on ${host} (lab ${lab}): ${e.message}`;
    const warnings = [];
    if (webhook) {
      const w = await postWebhook(webhook, text);
      if (w) warnings.push(w);
    }
    const target = e.stage === "options" ? null : noticeTarget();
    if (target) {
      const w = await postDispatcherNotice(target, "error", text);
      if (w) warnings.push(w);
    }
    if (values.json) out(`${JSON.stringify({ ok: false, stage: e.stage, error: e.message, warnings })}\n`);
    err(`${text}\n${warnings.map((w) => `warning: ${w}\n`).join("")}`);
    return 1;
  }
}

/**
 * @param {Record<string, string | boolean | undefined>} values
 * @param {string} name
 */
function count(values, name) {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new BackupError("options", `--${name} wants a whole number of snapshots (0 or more), got '${v}'`);
  return n;
}

// Run as a script, not imported (the name check keeps a bundle that inlines this module from running it).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href && import.meta.url.endsWith("/backup.mjs")) {
  process.exitCode = await main(process.argv.slice(2));
}
