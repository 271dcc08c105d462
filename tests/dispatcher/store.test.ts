// The dispatcher's store, job index, sync store, tokens and configuration, on real SQLite files
// and real files in temp dirs (no server).
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, copyFileSync, readdirSync, openSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { submitJobRequestSchema, type SubmitJobRequest } from "../../core/api.js";
import { applyMigrations, openDatabase, type Db } from "../../dispatcher/db.js";
import { JobIndex } from "../../dispatcher/job-index.js";
import { advertisedUrl, configFromEnv } from "../../dispatcher/main.js";
import { newJobId, Store, StoreConflict, type StoredJob } from "../../dispatcher/store.js";
import { checkSyncPath, SyncGapError, SyncHashError, SyncPathError, SyncStore } from "../../dispatcher/sync-store.js";
import { hashToken, loadOrCreateToken, tokensEqual } from "../../dispatcher/tokens.js";

let dir: string;
let db: Db;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "labrig-store-"));
  db = openDatabase(join(dir, "labrig.db"));
  store = new Store(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function submit(req: Partial<SubmitJobRequest> = {}, now?: Date): StoredJob {
  const parsed = submitJobRequestSchema.parse({ command: ["true"], ...req });
  return store.insertJob({ ...parsed, command: parsed.command ?? ["true"], name: parsed.name ?? "job", project: parsed.project ?? "default" }, now);
}

/** A job assigned to `host`, handed to its agent and reported running. */
function runningOn(host: string, req: Partial<SubmitJobRequest> = {}): StoredJob {
  const j = submit(req);
  store.assign(j.id, host, [0]);
  store.takeNextAssignment(host);
  return store.applyAgentReport(j.id, host, { attempt: j.attempt, state: "running" });
}

describe("database", () => {
  it("opens in WAL mode with foreign keys and records each migration once", () => {
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    const names = db.prepare("SELECT name FROM schema_migrations ORDER BY name").pluck().all();
    expect(names).toEqual(readdirSync(join(import.meta.dirname, "../../dispatcher/migrations")).filter((f) => f.endsWith(".sql")).sort());
    db.close();
    db = openDatabase(join(dir, "labrig.db"));
    expect(db.prepare("SELECT COUNT(*) FROM schema_migrations").pluck().get()).toBe(names.length);
  });

  it("applies new migration files in name order, and a failing one not at all", () => {
    const migrations = join(dir, "migrations");
    mkdirSync(migrations);
    copyFileSync(join(import.meta.dirname, "../../dispatcher/migrations/001_init.sql"), join(migrations, "001_init.sql"));
    writeFileSync(join(migrations, "003_more.sql"), "ALTER TABLE extra ADD COLUMN b TEXT;");
    writeFileSync(join(migrations, "002_extra.sql"), "CREATE TABLE extra (a TEXT);");
    const fresh = openDatabase(join(dir, "other.db"));
    try {
      expect(applyMigrations(fresh, migrations)).toEqual(["002_extra.sql", "003_more.sql"]);
      expect(applyMigrations(fresh, migrations)).toEqual([]);
      writeFileSync(join(migrations, "004_bad.sql"), "CREATE TABLE good (a TEXT); THIS IS NOT SQL;");
      expect(() => applyMigrations(fresh, migrations)).toThrow();
      expect(fresh.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'good'").pluck().get()).toBe(0);
      expect(fresh.prepare("SELECT COUNT(*) FROM schema_migrations WHERE name = '004_bad.sql'").pluck().get()).toBe(0);
    } finally {
      fresh.close();
    }
  });
});

describe("job ids", () => {
  it("are 10 characters of lowercase base32 that sort by creation time", () => {
    const ids = [Date.UTC(2024, 0, 1), Date.UTC(2025, 5, 1), Date.UTC(2025, 5, 1) + 1, Date.UTC(2040, 0, 1)].map((t) => newJobId(t));
    for (const id of ids) expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{10}$/);
    expect([...ids].sort()).toEqual(ids);
  });

  it("stay unique when many jobs are made in the same millisecond", () => {
    const at = new Date();
    const ids = new Set(Array.from({ length: 300 }, () => submit({}, at).id));
    expect(ids.size).toBe(300);
  });
});

describe("jobs", () => {
  it("queues a job as attempt 1 and records the transition", () => {
    const j = submit({ command: "python train.py", gpus: 2, env: { A: "1" }, constraints: { gpuName: "a100" }, priority: "high" });
    expect(j).toMatchObject({ state: "queued", attempt: 1, command: "python train.py", gpus: 2, env: { A: "1" }, priority: "high", hostId: null, gpuIndices: [] });
    expect(store.getJob(j.id)?.constraints).toEqual({ gpuName: "a100" });
    expect(store.transitions(j.id)).toMatchObject([{ attempt: 1, fromState: null, toState: "queued" }]);
  });

  it("keeps an array command as an array and a string as a string", () => {
    expect(submit({ command: ["echo", "a b"] }).command).toEqual(["echo", "a b"]);
    expect(submit({ command: "echo 'a b'" }).command).toBe("echo 'a b'");
  });

  it("assigns only a queued job, and hands a host its assignments oldest first, once each", () => {
    const a = submit();
    const b = submit();
    expect(store.assign(a.id, "h1", [1])).toMatchObject({ state: "assigned", hostId: "h1", gpuIndices: [1] });
    expect(store.assign(a.id, "h2", [0])).toBeUndefined();
    store.assign(b.id, "h1", [0]);
    expect(store.takeNextAssignment("h1")?.id).toBe(a.id);
    expect(store.takeNextAssignment("h1")?.id).toBe(b.id);
    expect(store.takeNextAssignment("h1")).toBeUndefined();
    expect(store.getJob(a.id)?.deliveredAt).not.toBeNull();
  });

  it("moves a job through running to succeeded with its exit code and times", () => {
    const j = runningOn("h1");
    expect(j.state).toBe("running");
    expect(j.startedAt).not.toBeNull();
    const done = store.applyAgentReport(j.id, "h1", { attempt: 1, state: "succeeded", exitCode: 0 });
    expect(done).toMatchObject({ state: "succeeded", exitCode: 0 });
    expect(done.endedAt).not.toBeNull();
    expect(store.transitions(j.id).map((t) => t.toState)).toEqual(["queued", "assigned", "running", "succeeded"]);
  });

  it("names a failure's exit code as its reason", () => {
    const j = runningOn("h1");
    expect(store.applyAgentReport(j.id, "h1", { attempt: 1, state: "failed", exitCode: 3 })).toMatchObject({ state: "failed", exitCode: 3, reason: "exit code 3" });
  });

  it("refuses a report for another attempt, another host or an ended job as stale", () => {
    const j = runningOn("h1");
    const stale = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(StoreConflict);
        expect((e as StoreConflict).code).toBe("stale_attempt");
        return;
      }
      throw new Error("expected a stale_attempt conflict");
    };
    stale(() => store.applyAgentReport(j.id, "h1", { attempt: 2, state: "succeeded" }));
    stale(() => store.applyAgentReport(j.id, "h2", { attempt: 1, state: "succeeded" }));
    store.applyAgentReport(j.id, "h1", { attempt: 1, state: "succeeded", exitCode: 0 });
    stale(() => store.applyAgentReport(j.id, "h1", { attempt: 1, state: "failed" }));
    expect(store.getJob(j.id)?.state).toBe("succeeded");
  });

  it("cancels a queued job at once, and asks the agent to stop a running one", () => {
    const q = submit();
    expect(store.cancel(q.id)).toMatchObject({ state: "cancelled", cancelRequested: false });
    const r = runningOn("h1");
    expect(store.cancel(r.id)).toMatchObject({ state: "running", cancelRequested: true });
    expect(store.applyAgentReport(r.id, "h1", { attempt: 1, state: "cancelled" }).state).toBe("cancelled");
    expect(() => store.cancel(r.id)).toThrow(StoreConflict);
  });

  it("cancels an assignment its agent has not taken yet at once", () => {
    const j = submit();
    store.assign(j.id, "h1", [0]);
    expect(store.cancel(j.id).state).toBe("cancelled");
    expect(store.takeNextAssignment("h1")).toBeUndefined();
  });

  it("retries only an ended job, as a new attempt on no host", () => {
    const j = runningOn("h1");
    expect(() => store.retry(j.id)).toThrow(/only an ended job/);
    store.applyAgentReport(j.id, "h1", { attempt: 1, state: "failed", exitCode: 1 });
    expect(store.retry(j.id)).toMatchObject({ state: "queued", attempt: 2, hostId: null, gpuIndices: [], exitCode: null, startedAt: null });
  });

  it("fails a lost job with reason lost when it has no retries left", () => {
    const j = runningOn("h1", { maxRetries: 0 });
    expect(store.loseJob(j.id, "host h1 went silent", true)).toMatchObject({ state: "failed", reason: "lost", attempt: 1 });
  });

  it("requeues a lost job with its attempt raised while retries remain, then fails it", () => {
    const j = runningOn("h1", { maxRetries: 1 });
    expect(store.loseJob(j.id, "host h1 went silent", true)).toMatchObject({ state: "queued", attempt: 2, hostId: null, lostCount: 1 });
    store.assign(j.id, "h2", [0]);
    store.takeNextAssignment("h2");
    store.applyAgentReport(j.id, "h2", { attempt: 2, state: "running" });
    expect(store.loseJob(j.id, "host h2 went silent", true)).toMatchObject({ state: "failed", reason: "lost", attempt: 2 });
  });

  it("requeues an unstarted lease without using up a retry", () => {
    const j = submit({ maxRetries: 0 });
    store.assign(j.id, "h1", [0]);
    store.takeNextAssignment("h1");
    expect(store.loseJob(j.id, "not started in time", false)).toMatchObject({ state: "queued", attempt: 2, lostCount: 0 });
  });

  it("ends a lost job whose cancellation was asked for as cancelled", () => {
    const j = runningOn("h1", { maxRetries: 3 });
    store.cancel(j.id);
    expect(store.loseJob(j.id, "host h1 went silent", true)?.state).toBe("cancelled");
  });

  it("changes the priority of a queued job only", () => {
    const j = submit();
    expect(store.setPriority(j.id, "low").priority).toBe("low");
    const r = runningOn("h1");
    expect(() => store.setPriority(r.id, "high")).toThrow(/only a queued job/);
  });

  it("lists jobs newest first, filtered by state and project, up to a limit", () => {
    const a = submit({ project: "p1" });
    const b = submit({ project: "p2" });
    const c = submit({ project: "p1" });
    store.cancel(c.id);
    expect(store.listJobs().map((j) => j.id)).toEqual([c.id, b.id, a.id]);
    expect(store.listJobs({ project: "p1" }).map((j) => j.id)).toEqual([c.id, a.id]);
    expect(store.listJobs({ states: ["queued"] }).map((j) => j.id)).toEqual([b.id, a.id]);
    expect(store.listJobs({ states: ["queued", "cancelled"], project: "p1" }).map((j) => j.id)).toEqual([c.id, a.id]);
    expect(store.listJobs({ limit: 1 }).map((j) => j.id)).toEqual([c.id]);
    expect(store.countByState()).toMatchObject({ queued: 2, cancelled: 1, running: 0 });
  });

  it("keeps every committed change across closing and reopening the file", () => {
    const j = runningOn("h1");
    const q = submit({ name: "waiting" });
    db.close();
    db = openDatabase(join(dir, "labrig.db"));
    store = new Store(db);
    expect(store.getJob(j.id)).toMatchObject({ state: "running", hostId: "h1", attempt: 1 });
    expect(store.getJob(q.id)).toMatchObject({ state: "queued", name: "waiting" });
  });
});

describe("agents", () => {
  it("replaces a host's token and GPUs when it registers again, keeping its drain flag", () => {
    const gpu = { index: 0, uuid: "GPU-0", name: "A100", memoryTotalMiB: 80000 };
    store.upsertAgent({ hostId: "h1", tokenHash: hashToken("one"), gpus: [gpu], labels: {} });
    store.setDraining("h1", true);
    const again = store.upsertAgent({ hostId: "h1", tokenHash: hashToken("two"), gpus: [gpu, { ...gpu, index: 1, uuid: "GPU-1" }], labels: { room: "b" } });
    expect(again.token_hash).toBe(hashToken("two"));
    expect(JSON.parse(again.gpus)).toHaveLength(2);
    expect(again.draining).toBe(1);
    expect(store.allAgents()).toHaveLength(1);
  });

  it("persists last-seen times and stats for many hosts at once", () => {
    for (const h of ["h1", "h2"]) store.upsertAgent({ hostId: h, tokenHash: hashToken(h), gpus: [], labels: {} });
    store.saveSeen([
      { hostId: "h1", lastSeenAt: "2026-01-01T00:00:00.000Z", stats: { gpus: [{ index: 0, utilizationPct: 90 }] } },
      { hostId: "h2", lastSeenAt: "2026-01-01T00:00:01.000Z", stats: { gpus: [] } },
    ]);
    expect(store.getAgent("h1")).toMatchObject({ last_seen_at: "2026-01-01T00:00:00.000Z" });
    expect(JSON.parse(store.getAgent("h1")!.last_stats!).gpus[0].utilizationPct).toBe(90);
  });
});

describe("job index", () => {
  it("follows the store: queue in age order (requeued jobs back in their place), active jobs by host", () => {
    const index = new JobIndex();
    const [a, b, c] = [submit({}, new Date(1000)), submit({}, new Date(2000)), submit({}, new Date(3000))];
    for (const j of [a, b, c]) index.track(j);
    index.track(store.assign(a.id, "h1", [0, 1])!);
    expect(index.queued().map((j) => j.id)).toEqual([b.id, c.id]);
    expect([...index.busyGpus("h1")].sort()).toEqual([0, 1]);
    index.track(store.takeNextAssignment("h1")!);
    index.track(store.applyAgentReport(a.id, "h1", { attempt: 1, state: "running" }));
    expect(index.activeOnHost("h1")).toMatchObject([{ id: a.id, state: "running", attempt: 1 }]);
    index.track(store.loseJob(a.id, "silent", false)!);
    expect(index.queued().map((j) => j.id)).toEqual([a.id, b.id, c.id]);
    expect(index.activeOnHost("h1")).toEqual([]);
    expect(index.busyGpus("h1").size).toBe(0);
    index.track(store.cancel(b.id));
    expect(index.queued().map((j) => j.id)).toEqual([a.id, c.id]);
    expect(index.queuedCount).toBe(2);
  });
});

describe("sync store", async () => {
  let sync: SyncStore;
  let job: StoredJob;
  beforeEach(() => {
    sync = new SyncStore(db, join(dir, "runs"));
    job = submit({ project: "vision" });
  });
  const sha = (s: string) => createHash("sha256").update(s).digest("hex");

  it("appends at offsets, treats repeats as no-ops and refuses gaps with the size held", async () => {
    expect(await sync.append("vision", job.id, 1, "logs/train.csv", 0, [Buffer.from("a,b\n")])).toEqual({ size: 4, written: 4 });
    expect(await sync.append("vision", job.id, 1, "logs/train.csv", 0, [Buffer.from("a,b\n")])).toEqual({ size: 4, written: 0 });
    expect(await sync.append("vision", job.id, 1, "logs/train.csv", 2, [Buffer.from("b\n"), Buffer.from("1,2\n")])).toEqual({ size: 8, written: 4 });
    await expect(sync.append("vision", job.id, 1, "logs/train.csv", 9, [Buffer.from("x")])).rejects.toThrow(SyncGapError);
    await expect(sync.append("vision", job.id, 1, "logs/train.csv", 20, [Buffer.from("x")])).rejects.toMatchObject({ size: 8 });
    const onDisk = join(dir, "runs", "vision", job.id, "attempt-1", "logs", "train.csv");
    expect(readFileSync(onDisk, "utf8")).toBe("a,b\n1,2\n");
    expect(sync.list("vision", job.id, 1)["logs/train.csv"]).toMatchObject({ size: 8, sha256: sha("a,b\n1,2\n") });
    await sync.append("vision", job.id, 1, "logs/train.csv", 8, [Buffer.from("3,4\n")]);
    expect(sync.list("vision", job.id, 1)["logs/train.csv"].sha256).toBe(sha("a,b\n1,2\n3,4\n"));
  });

  it("serves only the bytes the database vouches for after a crash left extra bytes on disk", async () => {
    await sync.append("vision", job.id, 1, "out.log", 0, [Buffer.from("held\n")]);
    const onDisk = join(dir, "runs", "vision", job.id, "attempt-1", "out.log");
    // A write that reached the disk but whose commit did not.
    const fd = openSync(onDisk, "r+");
    writeSync(fd, Buffer.from("torn write"), 0, 10, 5);
    closeSync(fd);
    expect(sync.read("vision", job.id, 1, "out.log")?.toString()).toBe("held\n");
    const opened = sync.openRead("vision", job.id, 1, "out.log")!;
    const chunks: Buffer[] = [];
    for await (const c of opened.stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("held\n");
    expect(sync.list("vision", job.id, 1)["out.log"].sha256).toBe(sha("held\n"));
    // The next append overwrites the torn bytes.
    await sync.append("vision", job.id, 1, "out.log", 5, [Buffer.from("next\n")]);
    expect(sync.read("vision", job.id, 1, "out.log")?.toString()).toBe("held\nnext\n");
  });

  it("replaces a file whole only when its sha256 matches", async () => {
    expect(await sync.put("vision", job.id, 1, "cfg.yaml", [Buffer.from("lr: 1\n")], sha("lr: 1\n"))).toEqual({ size: 6 });
    await expect(sync.put("vision", job.id, 1, "cfg.yaml", [Buffer.from("lr: 2\n")], sha("other"))).rejects.toThrow(SyncHashError);
    expect(sync.read("vision", job.id, 1, "cfg.yaml")?.toString()).toBe("lr: 1\n");
    expect(sync.list("vision", job.id, 1)).toEqual({ "cfg.yaml": { size: 6, sha256: sha("lr: 1\n"), updatedAt: expect.any(String) } });
    expect(readdirSync(join(dir, "runs", "vision", job.id, "attempt-1"))).toEqual(["cfg.yaml"]);
  });

  it("keeps attempts apart", async () => {
    await sync.append("vision", job.id, 1, "a.log", 0, [Buffer.from("one")]);
    await sync.append("vision", job.id, 2, "a.log", 0, [Buffer.from("two!")]);
    expect(sync.read("vision", job.id, 1, "a.log")?.toString()).toBe("one");
    expect(sync.list("vision", job.id, 2)["a.log"].size).toBe(4);
    expect(sync.list("vision", job.id, 3)).toEqual({});
  });

  it.each(["../x", "a/../../x", "/etc/passwd", "a\\..\\x", "", "a//b", "./a", "a/./b", "a\0b", "..", "a/.."])("refuses the path %j", async (p) => {
    expect(() => checkSyncPath(p)).toThrow(SyncPathError);
    await expect(sync.append("vision", job.id, 1, p, 0, [Buffer.from("x")])).rejects.toThrow(SyncPathError);
  });

  it("keeps appending through the new file after a whole-file replace, not the old one's handle", async () => {
    await sync.append("vision", job.id, 1, "m.log", 0, [Buffer.from("old\n")]);
    await sync.put("vision", job.id, 1, "m.log", [Buffer.from("new\n")], sha("new\n"));
    await sync.append("vision", job.id, 1, "m.log", 4, [Buffer.from("more\n")]);
    expect(readFileSync(join(dir, "runs", "vision", job.id, "attempt-1", "m.log"), "utf8")).toBe("new\nmore\n");
    expect(sync.list("vision", job.id, 1)["m.log"]!.sha256).toBe(sha("new\nmore\n"));
  });

  it("writes two appends of one file one after the other, even when the first body is still arriving", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow() {
      yield Buffer.from("aaaa");
      await gate;
      yield Buffer.from("bbbb");
    }
    const first = sync.append("vision", job.id, 1, "s.log", 0, slow());
    const second = sync.append("vision", job.id, 1, "s.log", 8, [Buffer.from("cccc")]);
    await new Promise((r) => setTimeout(r, 20));
    release();
    expect(await first).toEqual({ size: 8, written: 8 });
    expect(await second).toEqual({ size: 12, written: 4 });
    expect(sync.read("vision", job.id, 1, "s.log")?.toString()).toBe("aaaabbbbcccc");
  });

  it("commits nothing of a body cut off mid-way, and the next append overwrites its bytes", async () => {
    await sync.append("vision", job.id, 1, "c.log", 0, [Buffer.from("kept\n")]);
    async function* cut() {
      yield Buffer.from("half a li");
      throw new Error("the agent went away");
    }
    await expect(sync.append("vision", job.id, 1, "c.log", 5, cut())).rejects.toThrow(/went away/);
    expect(sync.info(job.id, 1, "c.log")?.size).toBe(5);
    await sync.append("vision", job.id, 1, "c.log", 5, [Buffer.from("next\n")]);
    expect(sync.read("vision", job.id, 1, "c.log")?.toString()).toBe("kept\nnext\n");
    expect(sync.list("vision", job.id, 1)["c.log"]!.sha256).toBe(sha("kept\nnext\n"));
  });

  it("replaces nothing when a whole-file body is cut off, and leaves no temporary file", async () => {
    await sync.put("vision", job.id, 1, "w.yaml", [Buffer.from("a: 1\n")], sha("a: 1\n"));
    async function* cut() {
      yield Buffer.from("a: ");
      throw new Error("the agent went away");
    }
    await expect(sync.put("vision", job.id, 1, "w.yaml", cut(), sha("a: 2\n"))).rejects.toThrow(/went away/);
    expect(sync.read("vision", job.id, 1, "w.yaml")?.toString()).toBe("a: 1\n");
    expect(readdirSync(join(dir, "runs", "vision", job.id, "attempt-1"))).toEqual(["w.yaml"]);
  });

  it("accepts ordinary nested paths, dots inside names included", () => {
    expect(checkSyncPath("ckpt/epoch..3/model.pt")).toBe("ckpt/epoch..3/model.pt");
    expect(checkSyncPath(".hidden/a")).toBe(".hidden/a");
  });
});

describe("tokens", () => {
  it("generates a token once into a 0600 file and reads it back after", () => {
    const first = loadOrCreateToken(dir, "admin-token", undefined);
    expect(first.generated).toBe(true);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    const again = loadOrCreateToken(dir, "admin-token", undefined);
    expect(again).toMatchObject({ token: first.token, generated: false });
  });

  it("takes the token from the environment and writes it for local tools", () => {
    const t = loadOrCreateToken(dir, "join-token", "from-env");
    expect(t).toMatchObject({ token: "from-env", fromEnv: true, generated: false });
    expect(readFileSync(t.file, "utf8").trim()).toBe("from-env");
    expect(statSync(t.file).mode & 0o777).toBe(0o600);
  });

  it("compares tokens of any length", () => {
    expect(tokensEqual("abc", "abc")).toBe(true);
    expect(tokensEqual("abc", "abd")).toBe(false);
    expect(tokensEqual("abc", "abcd")).toBe(false);
  });
});

describe("configuration", () => {
  it("reads thresholds from the environment with the documented defaults", () => {
    expect(configFromEnv({})).toMatchObject({ staleAfterMs: 10_000, disconnectAfterMs: 30_000, lostAfterMs: 600_000, missingGraceMs: 30_000, timeoutGraceMs: 120_000, heartbeatIntervalS: 3, assignTimeoutMs: 60_000, queueCommand: "uv run main.py --config {config_path} --fast" });
    expect(configFromEnv({ LABRIG_STALE_AFTER_S: "1", LABRIG_DISCONNECT_AFTER_S: "2", LABRIG_QUEUE_COMMAND: "x {config_path}" }, undefined)).toMatchObject({ staleAfterMs: 1000, disconnectAfterMs: 2000, queueCommand: "x {config_path}" });
    expect(configFromEnv({ LABRIG_QUEUE_COMMAND: "x" }, "flag {config_path}").queueCommand).toBe("flag {config_path}");
  });

  it("refuses nonsense thresholds naming the variable", () => {
    expect(() => configFromEnv({ LABRIG_STALE_AFTER_S: "soon" })).toThrow(/LABRIG_STALE_AFTER_S/);
    expect(() => configFromEnv({ LABRIG_STALE_AFTER_S: "20", LABRIG_DISCONNECT_AFTER_S: "10" })).toThrow(/LABRIG_DISCONNECT_AFTER_S/);
    expect(() => configFromEnv({ LABRIG_DISCONNECT_AFTER_S: "60", LABRIG_LOST_AFTER_S: "30" })).toThrow(/LABRIG_LOST_AFTER_S/);
    expect(() => configFromEnv({ LABRIG_HEARTBEAT_S: "5", LABRIG_MISSING_GRACE_S: "5" })).toThrow(/LABRIG_MISSING_GRACE_S/);
  });

  it("advertises 127.0.0.1 for a wildcard or loopback bind", () => {
    expect(advertisedUrl("0.0.0.0", 8000)).toBe("http://127.0.0.1:8000");
    expect(advertisedUrl("127.0.0.1", 8000)).toBe("http://127.0.0.1:8000");
    expect(advertisedUrl("::", 8000)).toBe("http://127.0.0.1:8000");
    expect(advertisedUrl("10.0.0.5", 9000)).toBe("http://10.0.0.5:9000");
  });
});
