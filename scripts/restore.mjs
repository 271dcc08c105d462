#!/usr/bin/env node
// @ts-check
// Proves a backup restorable, or restores it for real. `--verify` restores the latest labrig
// snapshot into a temporary folder and checks it three ways: restic's own restore verification
// (every restored file re-read and compared with the snapshot's blob hashes), the restored tree
// against the snapshot's listing (every file present with its size), and the database (its sha256
// against the manifest written at backup time, and PRAGMA integrity_check). It says OK or names
// each file that is wrong. `--target DIR` does the same into DIR and leaves a state folder the
// dispatcher can start on.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { BACKUP_TAG, MANIFEST, STAGING_DIR } from "./backup.mjs";
import { BackupError } from "./lib/errors.mjs";
import { Restic } from "./lib/restic.mjs";
import { inspectDatabase } from "./lib/sqlite-snapshot.mjs";

export const usage = `usage: labrig restore (--verify | --target DIR) --repo REPO --password-file F [options]

  --verify               restore the latest snapshot into a temporary folder, check it, remove it
  --target DIR           restore for real into DIR (new or empty), checked the same way; DIR is then
                         a state folder: labrig dispatcher --state DIR
  --repo REPO            restic repository
  --password-file F      file holding the repository's password
  --snapshot ID          this snapshot instead of the latest
  --lab NAME             only snapshots of this lab
  --host NAME            only snapshots taken on this host
  --json                 print one JSON document instead of text
`;

/**
 * @typedef {{ path: string, problem: string }} Problem
 */

/**
 * @typedef {object} RestoreReport
 * @property {boolean} ok
 * @property {{ id: string, time: string, host: string, tags: string[] }} snapshot
 * @property {number} files
 * @property {number} bytes
 * @property {{ integrity: string, jobs: number | null }} database
 * @property {Problem[]} problems
 * @property {string | null} target
 */

/** @typedef {{ id: string, time: string, hostname: string, tags?: string[] }} Snapshot */
/** @typedef {{ type: string, size?: number, path: string }} SnapshotNode */
/** @typedef {{ exitCode: number | null, stderr: string }} CommandOutput */

/**
 * @typedef {object} RestoreOptions
 * @property {string} repo
 * @property {string} passwordFile
 * @property {string} [target]   restore for real here; without it, a temporary folder is used and removed
 * @property {string} [snapshot]
 * @property {string} [lab]
 * @property {string} [host]
 */

/**
 * Restores and checks one snapshot. Resolves with a report whose `ok` says whether everything
 * matched; throws a BackupError only when nothing could be checked (no repository, no snapshot).
 * @param {RestoreOptions} opts
 * @returns {Promise<RestoreReport>}
 */
export async function restoreSnapshot(opts) {
  Restic.preflight(opts);
  const restic = new Restic(opts);
  const snapshot = await pickSnapshot(restic, opts);
  const target = opts.target ? prepareTarget(resolve(opts.target)) : mkdtempSync(join(tmpdir(), "labrig-restore-verify-"));
  try {
    /** @type {Problem[]} */
    const problems = [];
    const restore = await restic.run(["restore", snapshot.id, "--target", target, "--verify"]);
    problems.push(...resticRestoreProblems(restore));

    const expected = await snapshotListing(restic, snapshot.id);
    problems.push(...compareTree(target, expected));

    const database = await checkDatabase(target, problems);
    const files = [...expected.values()].filter((n) => n.type === "file");
    const report = {
      ok: problems.length === 0,
      snapshot: { id: snapshot.id, time: snapshot.time, host: snapshot.hostname, tags: snapshot.tags ?? [] },
      files: files.length,
      bytes: files.reduce((sum, n) => sum + (n.size ?? 0), 0),
      database,
      problems: dedupe(problems),
      target: opts.target ? target : null,
    };
    if (opts.target && report.ok) unstage(target);
    return report;
  } finally {
    if (!opts.target) rmSync(target, { recursive: true, force: true });
  }
}

/**
 * @param {Restic} restic
 * @param {RestoreOptions} opts
 * @returns {Promise<Snapshot>}
 */
async function pickSnapshot(restic, opts) {
  const tags = [BACKUP_TAG, ...(opts.lab ? [`lab:${opts.lab}`] : [])].join(",");
  /** @type {Snapshot[]} */
  const list = await restic.json("restore", ["snapshots", "--tag", tags, ...(opts.host ? ["--host", opts.host] : [])]);
  if (opts.snapshot) {
    const wanted = opts.snapshot;
    const hit = list.find((s) => s.id.startsWith(wanted));
    if (!hit) throw new BackupError("restore", `no labrig snapshot ${opts.snapshot} in ${opts.repo} (restic snapshots lists them)`);
    return hit;
  }
  if (list.length === 0) {
    throw new BackupError("restore", `no labrig snapshot${opts.lab ? ` of lab ${opts.lab}` : ""}${opts.host ? ` from ${opts.host}` : ""} in ${opts.repo}: run a backup first`);
  }
  return list.reduce((a, b) => (Date.parse(b.time) > Date.parse(a.time) ? b : a));
}

/** @param {string} dir */
function prepareTarget(dir) {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new BackupError("restore", `${dir} is not empty; restore into a new or empty folder (a live state folder is never overwritten)`);
  }
  return dir;
}

/**
 * restic restore names each file it could not restore or verify on stderr; a fatal error has no file.
 * @param {CommandOutput} out
 */
function resticRestoreProblems(out) {
  /** @type {Problem[]} */
  const problems = [];
  for (const line of out.stderr.split("\n")) {
    const m = /^ignoring error for (.+?): (.+)$/.exec(line.trim());
    if (m) problems.push({ path: m[1], problem: `restic could not restore it: ${m[2]}` });
    const v = /^(?:Error verifying|verify) (.+?): (.+)$/i.exec(line.trim());
    if (v) problems.push({ path: v[1], problem: `restored content differs from the snapshot: ${v[2]}` });
  }
  if (out.exitCode !== 0 && problems.length === 0) {
    problems.push({ path: "(snapshot)", problem: `restic restore exited ${out.exitCode}: ${out.stderr.trim().split("\n").slice(-4).join(" ")}` });
  }
  return problems;
}

/**
 * The snapshot's own listing: snapshot-relative path → node (type, size).
 * @param {Restic} restic
 * @param {string} id
 */
async function snapshotListing(restic, id) {
  const out = await restic.ok("restore", ["ls", "--json", id]);
  /** @type {Map<string, SnapshotNode>} */
  const nodes = new Map();
  for (const n of Restic.jsonLines(out.stdout)) if (n.struct_type === "node") nodes.set(n.path, n);
  return nodes;
}

/**
 * Files missing, of the wrong kind or size, or not in the snapshot at all.
 * @param {string} root
 * @param {Map<string, SnapshotNode>} expected
 */
function compareTree(root, expected) {
  /** @type {Problem[]} */
  const problems = [];
  for (const [path, node] of expected) {
    const local = join(root, path);
    if (!existsSync(local)) {
      problems.push({ path, problem: "missing from the restored folder" });
      continue;
    }
    const st = lstatSync(local);
    const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : "other";
    if (kind !== node.type) problems.push({ path, problem: `restored as a ${kind}, the snapshot has a ${node.type}` });
    else if (kind === "file" && st.size !== node.size) problems.push({ path, problem: `restored ${st.size} bytes, the snapshot has ${node.size}` });
  }
  for (const path of walk(root)) {
    const snapPath = `/${relative(root, path).split(sep).join("/")}`;
    if (!expected.has(snapPath)) problems.push({ path: snapPath, problem: "restored but not in the snapshot" });
  }
  return problems;
}

/**
 * @param {string} dir
 * @returns {Generator<string>}
 */
function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    yield p;
    if (e.isDirectory()) yield* walk(p);
  }
}

/**
 * The restored database against the manifest's hash, then SQLite's own integrity check.
 * @param {string} root
 * @param {Problem[]} problems
 * @returns {Promise<{ integrity: string, jobs: number | null }>}
 */
async function checkDatabase(root, problems) {
  const dbPath = `/${STAGING_DIR}/labrig.db`;
  const file = join(root, STAGING_DIR, "labrig.db");
  const manifestFile = join(root, STAGING_DIR, MANIFEST);
  if (!existsSync(file)) {
    problems.push({ path: dbPath, problem: "no database in the restored snapshot" });
    return { integrity: "missing", jobs: null };
  }
  if (existsSync(manifestFile)) {
    try {
      const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
      const sha256 = await hashFile(file);
      if (sha256 !== manifest.database.sha256) {
        problems.push({ path: dbPath, problem: `sha256 ${sha256.slice(0, 12)}… differs from ${manifest.database.sha256.slice(0, 12)}… recorded when the backup was taken` });
      }
    } catch (/** @type {any} */ err) {
      problems.push({ path: `/${STAGING_DIR}/${MANIFEST}`, problem: `unreadable: ${err.message}` });
    }
  } else {
    problems.push({ path: `/${STAGING_DIR}/${MANIFEST}`, problem: "missing: the database's hash cannot be checked" });
  }
  const { integrity, jobs } = inspectDatabase(file);
  if (integrity !== "ok") problems.push({ path: dbPath, problem: `PRAGMA integrity_check: ${integrity}` });
  return { integrity, jobs };
}

/**
 * @param {string} file
 * @returns {Promise<string>}
 */
function hashFile(file) {
  return new Promise((res, rej) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (d) => h.update(d))
      .on("error", rej)
      .on("end", () => res(h.digest("hex")));
  });
}

/**
 * Turns a checked restore into a state folder: the database copy and config move to where the dispatcher looks.
 * @param {string} target
 */
function unstage(target) {
  const staging = join(target, STAGING_DIR);
  renameSync(join(staging, "labrig.db"), join(target, "labrig.db"));
  if (existsSync(join(staging, "config"))) renameSync(join(staging, "config"), join(target, "config"));
  renameSync(join(staging, MANIFEST), join(target, "backup-manifest.json"));
  rmSync(staging, { recursive: true, force: true });
}

/** @param {Problem[]} problems */
function dedupe(problems) {
  const seen = new Set();
  return problems.filter((p) => {
    const k = `${p.path}\0${p.problem}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** @param {RestoreReport} r */
export function formatReport(r) {
  const head = `snapshot ${r.snapshot.id.slice(0, 8)} (${r.snapshot.time}, ${r.snapshot.host}): ${r.files} files, ${(r.bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (r.ok) {
    return [
      `restore OK: ${head}`,
      `  every file restored and verified against the snapshot; database integrity ok, ${r.database.jobs ?? "?"} jobs`,
      ...(r.target ? [`  restored into ${r.target}; start it with: labrig dispatcher --state ${r.target}`] : []),
    ].join("\n");
  }
  return [
    `restore FAILED: ${head}`,
    `  ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}:`,
    ...r.problems.map((p) => `  ${p.path}: ${p.problem}`),
    ...(r.target ? [`  the partial restore is left in ${r.target} for inspection`] : []),
  ].join("\n");
}

/**
 * The command line. Returns the exit code: 0 OK, 1 something wrong, 2 bad usage.
 * @param {string[]} argv
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
        verify: { type: "boolean" },
        target: { type: "string" },
        repo: { type: "string" },
        "password-file": { type: "string" },
        snapshot: { type: "string" },
        lab: { type: "string" },
        host: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (/** @type {any} */ e) {
    err(`labrig restore: ${e.message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    out(usage);
    return 0;
  }
  if (Boolean(values.verify) === Boolean(values.target)) {
    err(`labrig restore: give exactly one of --verify (check in a temporary folder) or --target DIR (restore for real)\n${usage}`);
    return 2;
  }
  try {
    const report = await restoreSnapshot({
      repo: values.repo ?? process.env.RESTIC_REPOSITORY ?? "",
      passwordFile: values["password-file"] ?? process.env.RESTIC_PASSWORD_FILE ?? "",
      target: values.target,
      snapshot: values.snapshot,
      lab: values.lab,
      host: values.host,
    });
    out(values.json ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`);
    return report.ok ? 0 : 1;
  } catch (e) {
    if (!(e instanceof BackupError)) throw e;
    if (values.json) out(`${JSON.stringify({ ok: false, stage: e.stage, error: e.message })}\n`);
    err(`labrig restore FAILED: ${e.message}\n`);
    return 1;
  }
}

// Run as a script, not imported (the name check keeps a bundle that inlines this module from running it).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href && import.meta.url.endsWith("/restore.mjs")) {
  process.exitCode = await main(process.argv.slice(2));
}
