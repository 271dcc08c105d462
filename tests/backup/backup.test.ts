// The nightly backup and its restore check, against real restic repositories in temp folders and a
// real dispatcher process writing its SQLite database while the backup runs.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "../../dispatcher/sqlite.js";
import { execa } from "execa";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { BackupSummary } from "../../scripts/backup.mjs";
import type { RestoreReport } from "../../scripts/restore.mjs";
import { startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { jsonOutput, makeResticFixture, runScript, type ResticFixture } from "./restic-fixture.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function fixture(): ResticFixture {
  const fx = makeResticFixture();
  cleanups.push(() => fx.cleanup());
  return fx;
}

async function dispatcher(): Promise<DispatcherProcess> {
  const d = await startDispatcher();
  cleanups.push(async () => {
    await d.stop();
    d.cleanup();
  });
  return d;
}

/**
 * A state folder at rest: a dispatcher that took five jobs and was stopped, plus a synced
 * checkpoint. Made once; each test gets its own copy.
 */
let template: Promise<{ stateDir: string; jobIds: string[] }> | undefined;
function makeTemplate() {
  return (template ??= (async () => {
    const d = await startDispatcher();
    const jobIds: string[] = [];
    for (let i = 0; i < 5; i++) jobIds.push((await d.admin().submit({ name: `job-${i}`, project: "p", command: "true", gpus: 0 })).id);
    await d.stop();
    const run = join(d.stateDir, "runs", "p", jobIds[0], "attempt-1");
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, "checkpoint.pt"), randomBytes(200_000));
    writeFileSync(join(run, "metrics.csv"), "step,loss\n1,0.5\n");
    return { stateDir: d.stateDir, jobIds };
  })());
}
afterAll(async () => {
  if (template) rmSync((await template).stateDir, { recursive: true, force: true });
});

async function stateAtRest(): Promise<{ stateDir: string; jobIds: string[] }> {
  const t = await makeTemplate();
  const stateDir = mkdtempSync(join(tmpdir(), "labrig-state-copy-"));
  cpSync(t.stateDir, stateDir, { recursive: true });
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  return { stateDir, jobIds: t.jobIds };
}

function jobIdsIn(dbFile: string): Set<string> {
  const db = new Database(dbFile, { readOnly: true });
  try {
    return new Set(db.prepare("SELECT id FROM jobs").pluck().all() as string[]);
  } finally {
    db.close();
  }
}

describe("backup of a live dispatcher", () => {
  it("restores to a database that passes integrity_check and holds every job committed before the backup began, while jobs kept arriving", async () => {
    const fx = fixture();
    const d = await dispatcher();
    const admin = d.admin();
    for (let i = 0; i < 30; i++) await admin.submit({ name: `before-${i}`, project: "p", command: "true", gpus: 0 });
    const run = join(d.stateDir, "runs", "p", "job-x", "attempt-1");
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, "log.csv"), "step,loss\n1,0.9\n");
    writeFileSync(join(run, "half-upload.bin.labrig-tmp"), "partial");

    // A client that keeps submitting jobs over HTTP for as long as the backup runs.
    const committed: { id: string; at: number }[] = [];
    let submitting = true;
    const submitter = (async () => {
      for (let i = 0; submitting; i++) {
        const job = await admin.submit({ name: `during-${i}`, project: "p", command: "true", gpus: 0 });
        committed.push({ id: job.id, at: Date.now() });
      }
    })();
    while (committed.length < 5) await new Promise((r) => setTimeout(r, 10));

    const began = Date.now();
    const committedBefore = committed.filter((c) => c.at < began).map((c) => c.id);
    const all = await admin.jobs({ limit: 10_000 });
    const before = new Set([...all.map((j) => j.id), ...committedBefore]);
    const backup = await runScript("backup", ["--state", d.stateDir, "--lab", "testlab", "--json", "--check-subset", "0"], fx);
    const ended = Date.now();
    submitting = false;
    await submitter;

    expect(backup.exitCode, backup.stderr).toBe(0);
    const summary = jsonOutput<BackupSummary & { warnings: string[] }>(backup);
    expect(summary.ok).toBe(true);
    expect(summary.repository.created).toBe(true);
    expect(summary.snapshot.tags).toEqual(["labrig", "lab:testlab"]);
    expect(summary.database.jobs).toBeGreaterThanOrEqual(before.size);
    const during = committed.filter((c) => c.at >= began && c.at <= ended);
    expect(during.length, "the submitter should have committed jobs while the backup ran").toBeGreaterThan(0);

    const target = join(fx.dir, "restored");
    const restore = await runScript("restore", ["--target", target, "--json"], fx);
    expect(restore.exitCode, restore.stdout + restore.stderr).toBe(0);
    const report = jsonOutput<RestoreReport>(restore);
    expect(report.database.integrity).toBe("ok");
    const restoredIds = jobIdsIn(join(target, "labrig.db"));
    const lost = [...before].filter((id) => !restoredIds.has(id));
    expect(lost, "jobs committed before the backup began but missing from the restore").toEqual([]);
    expect(restoredIds.size).toBe(report.database.jobs);

    // Runs and tokens come back; what the dispatcher rebuilds does not.
    expect(readFileSync(join(target, "runs", "p", "job-x", "attempt-1", "log.csv"), "utf8")).toContain("0.9");
    expect(existsSync(join(target, "runs", "p", "job-x", "attempt-1", "half-upload.bin.labrig-tmp"))).toBe(false);
    expect(readFileSync(join(target, "admin-token"), "utf8").trim()).toBe(d.adminToken);
    expect(existsSync(join(target, "dispatcher.json"))).toBe(false);
    expect(existsSync(join(target, "labrig.db-wal"))).toBe(false);

    // The restored folder is a state folder a dispatcher starts on, with the same admin token.
    const restored = await startDispatcher({ stateDir: target });
    cleanups.push(() => restored.stop());
    const served = new Set((await restored.admin().jobs({ limit: 10_000 })).map((j) => j.id));
    expect([...before].filter((id) => !served.has(id))).toEqual([]);
  });
});

describe("restore --verify", () => {
  it("says OK for an intact snapshot and leaves no temporary folder behind", async () => {
    const fx = fixture();
    const { stateDir, jobIds } = await stateAtRest();
    const backup = await runScript("backup", ["--state", stateDir, "--check-subset", "0"], fx);
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/backup OK: snapshot [0-9a-f]{8}/);

    const verify = await runScript("restore", ["--verify"], fx);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain("restore OK");
    expect(verify.stdout).toContain(`${jobIds.length} jobs`);
  });

  it("fails on a corrupted pack file and names every file whose data was in it", async () => {
    const fx = fixture();
    const { stateDir } = await stateAtRest();
    const backup = await runScript("backup", ["--state", stateDir, "--check-subset", "0"], fx);
    expect(backup.exitCode, backup.stderr).toBe(0);

    // Find the pack that holds the database copy, and what else restic stored in it.
    const [snap] = await fx.snapshots();
    let corrupted: { file: string; paths: string[] } | undefined;
    for (const file of fx.packFiles()) {
      const found = JSON.parse(await fx.restic(["find", "--pack", file.split("/").pop()!, "--json"])) as { object_type: string; path: string }[];
      const paths = found.filter((f) => f.object_type === "blob").map((f) => f.path);
      if (paths.includes("/.labrig-backup/labrig.db")) corrupted = { file, paths };
    }
    expect(corrupted, "a pack holding the database copy").toBeDefined();
    const bytes = readFileSync(corrupted!.file);
    for (let i = 0; i < bytes.length; i += 7) bytes[i] ^= 0x5a; // flips bits in every blob of the pack
    writeFileSync(corrupted!.file, bytes);

    const verify = await runScript("restore", ["--verify", "--json"], fx);
    expect(verify.exitCode).toBe(1);
    const report = jsonOutput<RestoreReport>(verify);
    expect(report.ok).toBe(false);
    expect(report.snapshot.id).toBe(snap.id);
    const named = new Set(report.problems.map((p) => p.path));
    expect([...corrupted!.paths].filter((p) => !named.has(p)), "files in the corrupted pack the report does not name").toEqual([]);
    expect(report.problems.find((p) => p.path === "/.labrig-backup/labrig.db")?.problem).toMatch(/ciphertext verification failed|integrity_check|missing|differs/);

    const text = await runScript("restore", ["--verify"], fx);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toContain("restore FAILED");
    expect(text.stdout).toContain("/.labrig-backup/labrig.db:");
  });

  it("fails with a clear message when the repository holds no labrig snapshot", async () => {
    const fx = fixture();
    await fx.restic(["init"]);
    const verify = await runScript("restore", ["--verify"], fx);
    expect(verify.exitCode).toBe(1);
    expect(verify.stderr).toMatch(/no labrig snapshot in .*: run a backup first/);
  });
});

describe("retention", () => {
  it("--keep-last 2 leaves exactly the two newest snapshots", async () => {
    const fx = fixture();
    const { stateDir } = await stateAtRest();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(stateDir, "runs", `note-${i}.txt`), `run ${i}`);
      const r = await runScript("backup", ["--state", stateDir, "--keep-last", "2", "--keep-daily", "0", "--keep-weekly", "0", "--check-subset", "0", "--json"], fx);
      expect(r.exitCode, r.stderr).toBe(0);
      ids.push(jsonOutput<BackupSummary>(r).snapshot.id);
    }
    const left = (await fx.snapshots()).map((s) => s.id.slice(0, 8)).sort();
    expect(left).toEqual(ids.slice(1).map((id) => id.slice(0, 8)).sort());
  });

  it("--keep-daily 2 keeps the newest snapshot of each of the last two days and drops the rest", async () => {
    const fx = fixture();
    const { stateDir } = await stateAtRest();
    await fx.restic(["init"]);
    const host = "nas-test";
    const day = (offset: number, hh: string) => {
      const d = new Date(Date.now() - offset * 86_400_000);
      const p = (n: number) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${hh}`;
    };
    const older: Record<string, string> = {};
    for (const [name, time] of [
      ["three-days-ago", day(3, "12:00:00")],
      ["yesterday-morning", day(1, "08:00:00")],
      ["yesterday-evening", day(1, "20:00:00")],
    ]) {
      const out = await fx.restic(["backup", stateDir, "--host", host, "--tag", "labrig", "--tag", "lab:lab", "--time", time, "--json"]);
      older[name] = JSON.parse(out.trim().split("\n").pop()!).snapshot_id;
    }
    const r = await runScript("backup", ["--state", stateDir, "--host", host, "--keep-daily", "2", "--keep-weekly", "0", "--check-subset", "0", "--json"], fx);
    expect(r.exitCode, r.stderr).toBe(0);
    const summary = jsonOutput<BackupSummary>(r);
    expect(summary.retention).toMatchObject({ kept: 2, removed: 2 });
    const left = (await fx.snapshots()).map((s) => s.id.slice(0, 8)).sort();
    expect(left).toEqual([summary.snapshot.id, older["yesterday-evening"]].map((id) => id.slice(0, 8)).sort());
  });
});

describe("failures are visible", () => {
  it("a failed backup exits non-zero, says why, posts the webhook and an error notice to the dispatcher's POST /api/notices", async () => {
    const fx = fixture();
    const { stateDir } = await stateAtRest();
    await fx.restic(["init"]);
    writeFileSync(fx.passwordFile, "not the password\n");

    // One loopback server stands in for the chat webhook and for the dispatcher's notice endpoint
    // (which the dispatcher does not have yet: see the report).
    const received: { path?: string; body: string; type?: string; auth?: string }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push({ path: req.url, body, type: req.headers["content-type"], auth: req.headers.authorization });
        res.statusCode = req.url === "/api/notices" ? 201 : 200;
        res.end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tokenFile = join(fx.dir, "admin-token");
    writeFileSync(tokenFile, "lra_test-admin\n");

    const r = await runScript("backup", ["--state", stateDir, "--lab", "weblab", "--webhook", `${base}/hook`, "--dispatcher", base, "--token-file", tokenFile], fx);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/labrig backup FAILED on .* \(lab weblab\): restic backup: .*wrong password/);
    expect(r.stderr).not.toContain("warning:");
    const hook = received.find((x) => x.path === "/hook");
    expect(hook?.type).toBe("application/json");
    expect(JSON.parse(hook!.body).text).toMatch(/FAILED.*wrong password/);
    const notice = received.find((x) => x.path === "/api/notices");
    expect(notice?.auth).toBe("Bearer lra_test-admin");
    expect(JSON.parse(notice!.body)).toMatchObject({ level: "error", message: expect.stringMatching(/FAILED.*wrong password/) });
    expect(received).toHaveLength(2);
    expect(existsSync(join(stateDir, ".labrig-backup")), "the staging folder is removed after a failure").toBe(false);
  });

  it("without --state backs up the local lab's state folder under LABRIG_HOME, and says which; with no local lab it names the flag", async () => {
    const fx = fixture();
    const { stateDir, jobIds } = await stateAtRest();
    const home = mkdtempSync(join(tmpdir(), "labrig-home-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    cpSync(stateDir, join(home, "dispatcher"), { recursive: true });
    const r = await runScript("backup", ["--check-subset", "0", "--json"], fx, { LABRIG_HOME: home });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`backing up the local lab's state folder ${join(home, "dispatcher")}`);
    expect(jsonOutput<BackupSummary>(r).database.jobs).toBe(jobIds.length);

    const noLab = await runScript("backup", [], fx, { LABRIG_HOME: join(home, "nothing-here") });
    expect(noLab.exitCode).toBe(1);
    expect(noLab.stderr).toContain(`no state folder given, and the local lab has none at ${join(home, "nothing-here", "dispatcher")}: pass --state DIR`);
  }, 120_000);

  it("refuses a folder that holds no database, naming what it looked for", async () => {
    const fx = fixture();
    const empty = mkdtempSync(join(tmpdir(), "labrig-empty-state-"));
    cleanups.push(() => rmSync(empty, { recursive: true, force: true }));
    const r = await runScript("backup", ["--state", empty], fx);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${join(empty, "labrig.db")} does not exist`);
    expect(existsSync(fx.repo), "no repository is created for a failed run").toBe(false);
  });

  it("labrig backup and labrig restore are the same scripts, exit codes included", async () => {
    const fx = fixture();
    const empty = mkdtempSync(join(tmpdir(), "labrig-empty-state-"));
    cleanups.push(() => rmSync(empty, { recursive: true, force: true }));
    const labrig = (args: string[]) =>
      execa(process.execPath, ["--import", "tsx", "cli/main.ts", ...args], { reject: false, cwd: join(import.meta.dirname, "../..") });
    const backup = await labrig(["backup", "--state", empty, "--repo", fx.repo, "--password-file", fx.passwordFile]);
    expect(backup.exitCode).toBe(1);
    expect(backup.stderr).toContain(`${join(empty, "labrig.db")} does not exist`);
    const restore = await labrig(["restore", "--repo", fx.repo, "--password-file", fx.passwordFile]);
    expect(restore.exitCode).toBe(2);
    expect(restore.stderr).toContain("give exactly one of --verify");
  });
});
