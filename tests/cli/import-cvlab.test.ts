// `labrig import cvlab-kit` as a user runs it: a CVLab-Kit checkout built here with its own
// database schema (tests/fixtures/cvlab-kit/queue_experiments.sql, from its SQLAlchemy model) and
// queue log folders, rows in every status its JobStatus has (web_helper/backend/models/queue.py
// lines 10-21), imported into a real dispatcher process, then imported again.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../core/api.js";
import { Database } from "../../dispatcher/sqlite.js";
import { repoRoot } from "../helpers/dispatcher-process.js";
import { type InProcessDispatcher, startInProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { cliEnv, runCli } from "./cli-process.js";

let d: InProcessDispatcher;
let root: string;
let env: Record<string, string>;
let dbFile: string;
let logsDir: string;

interface Row {
  uid: string;
  status: string;
  name?: string;
  project?: string;
  priority?: string;
  started?: string;
  completed?: string;
  exit?: number;
  error?: string;
  device?: string;
  /** Written to queue_logs/<uid>/: config.yaml, terminal_log.log, terminal_err.log. */
  config?: string;
  out?: string;
  err?: string;
}

const yaml = (lr: number) => `project: cifar\nmodel: resnet18(num_classes=10)\nbetas: !!python/tuple [0.9, 0.999]\nlr: ${lr}\ndevice: 0\n`;

const rows: Row[] = [
  { uid: "20251007_a001", status: "pending", name: "waiting", priority: "high", config: yaml(0.1) },
  { uid: "20251007_a002", status: "queued", name: "urgent-one", priority: "urgent", config: yaml(0.2) },
  { uid: "20251007_a003", status: "completed", name: "done", started: "2025-10-07 10:00:05", completed: "2025-10-07 11:30:00.250000", exit: 0, device: "gnode-3:0", config: yaml(0.3), out: "epoch 1 loss 2.1\nepoch 2 loss 1.7\n" },
  { uid: "20251007_a004", status: "failed", name: "crashed", started: "2025-10-07 10:01:00", completed: "2025-10-07 10:02:00", exit: 1, error: "CUDA out of memory", config: yaml(0.4), out: "epoch 1\n", err: "Traceback ...\nRuntimeError: CUDA out of memory\n" },
  { uid: "20251007_a005", status: "cancelled", name: "stopped", started: "2025-10-07 10:03:00", completed: "2025-10-07 10:04:00", config: yaml(0.5), out: "epoch 1\n" },
  { uid: "20251007_a006", status: "expired", name: "too-old", config: yaml(0.6) },
  { uid: "20251007_a007", status: "running", name: "was-running", started: "2025-10-07 12:00:00", device: "gnode-1:1", config: yaml(0.7), out: "epoch 1\nepoch 2\n" },
  { uid: "20251007_a008", status: "assigned", name: "was-assigned", device: "gnode-2:0", config: yaml(0.8) },
  { uid: "20251007_a009", status: "paused", name: "on-hold", config: yaml(0.9) },
  { uid: "20251007_a010", status: "pending", name: "lost-config", project: "cifar" },
  { uid: "20251007_a011", status: "weird", name: "strange" },
  { uid: "20251007_a012", status: "completed", name: "spaced", project: "my project", priority: "highest", completed: "2025-10-07 13:00:00", config: yaml(1.2), out: "ok\n" },
];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "labrig-cvlab-import-"));
  mkdirSync(join(root, "web_helper", "state"), { recursive: true });
  logsDir = join(root, "web_helper", "queue_logs");
  dbFile = join(root, "web_helper", "state", "web_helper.db");
  const db = new Database(dbFile);
  db.exec(readFileSync(join(repoRoot, "tests/fixtures/cvlab-kit/queue_experiments.sql"), "utf8"));
  const insert = db.prepare(`INSERT INTO queue_experiments (experiment_uid, name, project, status, created_at, started_at, completed_at,
    config_path, log_path, error_log_path, assigned_device, priority, exit_code, error_message, meta, server_origin, sync_status, last_indexed)
    VALUES (@uid, @name, @project, @status, @created, @started, @completed, @config_path, @log_path, @err_path, @device, @priority, @exit, @error, @meta, 'local', 'synced', @created)`);
  rows.forEach((r, i) => {
    const folder = join(logsDir, r.uid);
    mkdirSync(folder, { recursive: true });
    if (r.config) writeFileSync(join(folder, "config.yaml"), r.config);
    if (r.out) writeFileSync(join(folder, "terminal_log.log"), r.out);
    if (r.err) writeFileSync(join(folder, "terminal_err.log"), r.err);
    const rel = `web_helper/queue_logs/${r.uid}`;
    insert.run({
      uid: r.uid,
      name: r.name ?? null,
      project: r.project ?? "cifar",
      status: r.status,
      created: `2025-10-07 09:${String(i).padStart(2, "0")}:00.123456`,
      started: r.started ?? null,
      completed: r.completed ?? null,
      config_path: `${rel}/config.yaml`,
      log_path: `${rel}/terminal_log.log`,
      err_path: `${rel}/terminal_err.log`,
      device: r.device ?? null,
      priority: r.priority ?? "normal",
      exit: r.exit ?? null,
      error: r.error ?? null,
      meta: JSON.stringify({ submitted_from: "execute_tab" }),
    });
  });
  db.close();
  d = await startInProcessDispatcher();
  env = cliEnv({ LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: root, TZ: "UTC" });
});

afterAll(async () => {
  await d?.stop();
  d?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

const importCli = (...extra: string[]) => runCli(["import", "cvlab-kit", "--db", dbFile, "--logs", logsDir, "--json", ...extra], env);

describe("labrig import cvlab-kit", () => {
  it("says what it would do on --dry-run and changes nothing", async () => {
    const r = await importCli("--dry-run");
    expect(r.stderr).toBe("");
    const report = JSON.parse(r.stdout);
    expect(report.imported).toHaveLength(10);
    expect(report.imported.every((i: { id: string | null }) => i.id === null)).toBe(true);
    expect(report.skipped.map((s: { uid: string }) => s.uid).sort()).toEqual(["20251007_a010", "20251007_a011"]);
    expect(await d.admin().jobs()).toEqual([]);
  });

  it("imports every state with its name, project, priority, times, YAML and terminal logs", async () => {
    const r = await importCli();
    expect(r.exitCode).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.skipped).toEqual([
      { uid: "20251007_a010", reason: "its config (web_helper/queue_logs/20251007_a010/config.yaml) was not found, so there is nothing to run" },
      { uid: "20251007_a011", reason: "status 'weird' has no labrig state" },
    ]);
    const byUid = new Map<string, Job>();
    const admin = d.admin();
    for (const i of report.imported) byUid.set(i.uid, await admin.job(i.id));
    const job = (uid: string) => byUid.get(uid)!;

    expect(Object.fromEntries([...byUid].map(([uid, j]) => [uid, j.state]))).toEqual({
      "20251007_a001": "queued",
      "20251007_a002": "queued",
      "20251007_a003": "succeeded",
      "20251007_a004": "failed",
      "20251007_a005": "cancelled",
      "20251007_a006": "failed",
      "20251007_a007": "failed",
      "20251007_a008": "failed",
      "20251007_a009": "cancelled",
      "20251007_a012": "succeeded",
    });
    expect(job("20251007_a001")).toMatchObject({ name: "waiting", project: "cifar", priority: "high", createdAt: "2025-10-07T09:00:00.123Z", command: "uv run main.py --config {config_path} --fast" });
    expect(job("20251007_a002").priority).toBe("urgent");
    expect(job("20251007_a003")).toMatchObject({ exitCode: 0, hostId: "gnode-3:0", startedAt: "2025-10-07T10:00:05.000Z", endedAt: "2025-10-07T11:30:00.250Z" });
    expect(job("20251007_a004")).toMatchObject({ exitCode: 1, reason: "CUDA out of memory" });
    expect(job("20251007_a006").reason).toBe("expired in CVLab-Kit's queue");
    expect(job("20251007_a007").reason).toMatch(/^lost: it was running in CVLab-Kit's queue/);
    expect(job("20251007_a008").reason).toMatch(/^lost: it was assigned/);
    expect(job("20251007_a009").reason).toMatch(/paused in CVLab-Kit's queue; labrig has no pause/);
    expect(job("20251007_a012")).toMatchObject({ project: "my_project", priority: "normal" });
    expect(report.imported.find((i: { uid: string }) => i.uid === "20251007_a012").notes).toEqual(["project 'my project' is 'my_project' in labrig", "priority 'highest' is normal in labrig"]);

    // The YAML byte for byte; the terminal logs as job.log (stderr after stdout).
    expect(await admin.jobConfig(job("20251007_a001").id)).toBe(yaml(0.1));
    expect(await admin.jobConfig(job("20251007_a007").id)).toBe(yaml(0.7));
    expect((await admin.syncGet(job("20251007_a003").id, "job.log")).toString()).toBe("epoch 1 loss 2.1\nepoch 2 loss 1.7\n");
    expect((await admin.syncGet(job("20251007_a004").id, "job.log")).toString()).toBe("epoch 1\n--- terminal_err.log ---\nTraceback ...\nRuntimeError: CUDA out of memory\n");
    expect((await admin.syncGet(job("20251007_a007").id, "job.log")).toString()).toBe("epoch 1\nepoch 2\n");
    expect(report.logs).toEqual({ uploaded: 5, alreadyThere: 0 });

    // The history the dispatcher keeps says where each came from.
    const detail = (await admin.job(job("20251007_a003").id)) as Job & { history: { toState: string; message: string }[] };
    expect(detail.history.map((h) => h.toState)).toEqual(["queued", "succeeded"]);
  });

  it("adds nothing the second time, and says why each is skipped", async () => {
    const before = await d.admin().jobs({ limit: 1000 });
    const r = await importCli();
    const report = JSON.parse(r.stdout);
    expect(report.imported).toEqual([]);
    expect(report.skipped).toHaveLength(12);
    expect(report.skipped.filter((s: { reason: string }) => s.reason.startsWith("already imported as job ")).length).toBe(10);
    expect(report.logs).toEqual({ uploaded: 0, alreadyThere: 5 });
    expect((await d.admin().jobs({ limit: 1000 })).length).toBe(before.length);
    const text = await runCli(["import", "cvlab-kit", "--db", dbFile, "--logs", logsDir], env);
    expect(text.stdout).toMatch(/^imported 0 jobs; skipped 12\n/);
    expect(text.stdout).toContain("  - 20251007_a011: status 'weird' has no labrig state");
  });

  it("names a file that is not CVLab-Kit's database", async () => {
    const other = join(root, "other.db");
    new Database(other).close();
    const r = await runCli(["import", "cvlab-kit", "--db", other], env);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`--db: ${other} has no queue_experiments table`);
  });
});
