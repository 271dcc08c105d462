// The findings of issue 10 ("Trust"), each tried as an attacker on loopback would, over real HTTP
// against a dispatcher with a real SQLite file, run in this process (openDispatcher); the memory
// test and the state-folder test start real dispatcher processes of their own. A fake agent
// listens on the agentUrl it registers.
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { Job } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";
import { DataClient } from "../../tui/client.js";
import { initialState, startLog } from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";
import { rawRequest } from "../helpers/http.js";
import { startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { startInProcessDispatcher, type InProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";

const SETTINGS = { LABRIG_STALE_AFTER_S: "5", LABRIG_DISCONNECT_AFTER_S: "10", LABRIG_HEARTBEAT_S: "1", LABRIG_SYNC_BODY_LIMIT_MB: "8" };
let d: InProcessDispatcher;
let admin: DispatcherClient;

beforeAll(async () => {
  d = await startInProcessDispatcher({ env: SETTINGS });
  admin = d.admin();
});
afterAll(async () => {
  await d?.stop();
  d?.cleanup();
});

const raw = (method: string, path: string, opts: Parameters<typeof rawRequest>[3] = {}) => rawRequest(d.url, method, path, opts);

let hostCounter = 0;
async function newAgent(gpus = 1) {
  return new SimAgent(d.url, `sec-host-${++hostCounter}`, fakeGpus(gpus)).register(d.joinToken);
}

async function addUser(name: string, role: "admin" | "member" = "member"): Promise<DispatcherClient> {
  const r = await raw("POST", "/api/users", { token: d.adminToken, body: { name, role } });
  expect(r.status, r.text).toBe(201);
  expect(r.json.token).toMatch(/^lru_/);
  return new DispatcherClient({ url: d.url, token: r.json.token });
}

/** Peak and current resident memory of a process, in MiB, from /proc/<pid>/status. */
function memoryOf(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)![1]) / 1024;
  return { rssMiB: kb("VmRSS"), hwmMiB: kb("VmHWM") };
}

/** Sends `totalBytes` of zeros in 1 MiB chunks (chunked, no length) to the dispatcher on `port` and resolves with the status, or "reset" when the server cut the connection first. */
function pushBody(path: string, totalBytes: number, token?: string, declaredLength?: number, port = d.port): Promise<number | "reset"> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { "content-type": "application/octet-stream" };
    if (token) headers.authorization = `Bearer ${token}`;
    if (declaredLength !== undefined) headers["content-length"] = declaredLength;
    const req = httpRequest({ host: "127.0.0.1", port, method: "POST", path, headers });
    let settled = false;
    const done = (v: number | "reset") => {
      if (!settled) (settled = true), resolve(v);
    };
    req.on("response", (res) => {
      res.resume();
      done(res.statusCode!);
      req.destroy();
    });
    req.on("error", () => done("reset"));
    req.flushHeaders();
    const chunk = Buffer.alloc(1024 * 1024);
    let sent = 0;
    const write = () => {
      while (sent < totalBytes && !settled) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", write);
      }
      if (!settled && declaredLength === undefined) req.end();
    };
    write();
  });
}

describe("auth before body (finding: memory exhaustion with no token)", () => {
  // Its own process, so that the memory measured is the dispatcher's alone.
  let p: DispatcherProcess;
  beforeAll(async () => {
    p = await startDispatcher({ env: SETTINGS });
  });
  afterAll(async () => {
    await p?.stop();
    p?.cleanup();
  });

  it("refuses three 300 MB posts without a token with 401 and the dispatcher's memory stays flat", async () => {
    const before = memoryOf(p.child.pid!);
    for (const path of ["/api/jobs", "/api/sync/anything/files/big.bin?offset=0", "/api/queue/add"]) {
      const status = await pushBody(path, 300 * 1024 * 1024, undefined, undefined, p.port);
      expect([401, "reset"]).toContain(status);
    }
    const after = memoryOf(p.child.pid!);
    console.log(`dispatcher memory under 3 x 300 MB unauthenticated posts: VmRSS ${before.rssMiB.toFixed(0)} -> ${after.rssMiB.toFixed(0)} MiB, VmHWM ${before.hwmMiB.toFixed(0)} -> ${after.hwmMiB.toFixed(0)} MiB`);
    expect(after.hwmMiB - before.hwmMiB).toBeLessThan(64);
  }, 120_000);

  it("refuses a declared Content-Length over the limit with 413 at once, before a byte of body", async () => {
    const t0 = Date.now();
    const status = await pushBody("/api/jobs", 0, d.adminToken, 2_000_000_000);
    expect(status).toBe(413);
    expect(Date.now() - t0).toBeLessThan(3000);
    const a = await newAgent();
    const j = await admin.submit({ command: "true", constraints: { hostId: a.hostId } });
    await a.lease(3);
    expect(await pushBody(`/api/sync/${j.id}/files/big.bin?offset=0`, 0, a.client.token, 2_000_000_000)).toBe(413);
  });

  it("stops reading a chunked upload past the sync limit with 413", async () => {
    const a = await newAgent();
    const j = await admin.submit({ command: "true", constraints: { hostId: a.hostId } });
    await a.lease(3);
    const status = await pushBody(`/api/sync/${j.id}/files/big.bin?offset=0`, 64 * 1024 * 1024, a.client.token);
    expect([413, "reset"]).toContain(status);
    const st = await admin.syncStatus(j.id);
    expect(st.files["big.bin"]).toBeUndefined();
  });

  it("answers 401, not 404, for any path without a valid token", async () => {
    for (const path of ["/api/jobs/doesnotexist", "/api/sync/doesnotexist/status", "/api/no-such-route", "/api/jobs/doesnotexist/log"]) {
      expect((await raw("GET", path)).status, path).toBe(401);
      expect((await raw("GET", path, { token: "wrong" })).status, path).toBe(401);
    }
    expect((await raw("POST", "/api/jobs/doesnotexist/cancel")).status).toBe(401);
  });
});

describe("host identity (finding: host takeover)", () => {
  it("does not let the join token take over a registered host id", async () => {
    const a = await newAgent();
    const r = await raw("POST", "/api/agents/register", { token: d.joinToken, body: { hostId: a.hostId, gpus: [] } });
    expect(r.status).toBe(409);
    expect(r.json.error).toBe("host_exists");
    expect(r.json.message).toContain(`labrig hosts reset ${a.hostId}`);
    expect(r.json.agentToken).toBeUndefined();
    // The real agent keeps its token.
    expect((await a.heartbeat()).cancel).toEqual([]);
  });

  it("re-registers a host with its own agent token, which is then replaced", async () => {
    const a = await newAgent();
    const old = a.client.token!;
    await a.register(old);
    expect(a.client.token).not.toBe(old);
    expect((await raw("POST", `/api/agents/${a.hostId}/heartbeat`, { token: old, body: { gpus: [] } })).status).toBe(401);
    const b = await newAgent();
    const other = await raw("POST", "/api/agents/register", { token: b.client.token, body: { hostId: a.hostId, gpus: [] } });
    expect(other.status).toBe(403);
  });

  it("lets the join token register a host again after an admin reset it", async () => {
    const a = await newAgent();
    const old = a.client.token!;
    const reset = await raw("POST", `/api/hosts/${a.hostId}/reset`, { token: d.adminToken });
    expect(reset.status).toBe(200);
    expect((await raw("POST", `/api/agents/${a.hostId}/heartbeat`, { token: old, body: { gpus: [] } })).status).toBe(401);
    const again = await raw("POST", "/api/agents/register", { token: d.joinToken, body: { hostId: a.hostId, gpus: [] } });
    expect(again.status).toBe(200);
    const twice = await raw("POST", "/api/agents/register", { token: d.joinToken, body: { hostId: a.hostId, gpus: [] } });
    expect(twice.status).toBe(409);
  });

  it("makes join tokens with a use count and an expiry, and revokes them", async () => {
    const made = await raw("POST", "/api/join-tokens", { token: d.adminToken, body: { uses: 1, ttlS: 3600, note: "gpu-new" } });
    expect(made.status).toBe(201);
    const jt = made.json.token as string;
    expect((await raw("POST", "/api/agents/register", { token: jt, body: { hostId: "jt-host-1", gpus: [] } })).status).toBe(200);
    expect((await raw("POST", "/api/agents/register", { token: jt, body: { hostId: "jt-host-2", gpus: [] } })).status).toBe(401);
    const list = await raw("GET", "/api/join-tokens", { token: d.adminToken });
    const row = list.json.joinTokens.find((t: { id: string }) => t.id === made.json.id);
    expect(row).toMatchObject({ usesLeft: 0, note: "gpu-new" });
    expect(JSON.stringify(list.json)).not.toContain(jt);

    const short = await raw("POST", "/api/join-tokens", { token: d.adminToken, body: { ttlS: 1 } });
    await sleep(1500);
    expect((await raw("POST", "/api/agents/register", { token: short.json.token, body: { hostId: "jt-host-3", gpus: [] } })).status).toBe(401);

    const revoked = await raw("POST", "/api/join-tokens", { token: d.adminToken, body: {} });
    expect((await raw("POST", `/api/join-tokens/${revoked.json.id}/revoke`, { token: d.adminToken })).status).toBe(200);
    expect((await raw("POST", "/api/agents/register", { token: revoked.json.token, body: { hostId: "jt-host-4", gpus: [] } })).status).toBe(401);
  });
});

describe("agents see only their own jobs (finding: a stale_attempt reply carries the job)", () => {
  it("answers another host's agent with no job body, no env", async () => {
    const a = await newAgent();
    const b = await newAgent();
    const j = await admin.submit({ command: "true", env: { DB_PASSWORD: "hunter2-very-secret" }, constraints: { hostId: a.hostId } });
    await a.lease(3);
    for (const attempt of [1, 2]) {
      const r = await raw("POST", `/api/jobs/${j.id}/events`, { token: b.client.token, body: { attempt, state: "running" } });
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.json.job).toBeUndefined();
      expect(r.text).not.toContain("hunter2");
    }
    const own = await raw("POST", `/api/jobs/${j.id}/events`, { token: a.client.token, body: { attempt: 7, state: "running" } });
    expect(own.status).toBe(409);
    expect(own.json.job).toBeUndefined();
  });
});

describe("people and roles (finding: everyone holds the admin token)", () => {
  it("a member submits and owns the job, cannot drain, cannot cancel another's job, can cancel their own", async () => {
    const alice = await addUser("alice");
    const bob = await addUser("bob");
    const mine = await alice.submit({ command: "true", constraints: { hostId: "nowhere" } });
    expect(mine.owner).toBe("alice");
    const bobs = await bob.submit({ command: "true", constraints: { hostId: "nowhere" } });
    const a = await newAgent();
    await expect(alice.drain(a.hostId)).rejects.toMatchObject({ status: 403 });
    await expect(alice.cancel(bobs.id)).rejects.toMatchObject({ status: 403 });
    await expect(alice.setPriority(bobs.id, "high")).rejects.toMatchObject({ status: 403 });
    expect((await alice.cancel(mine.id)).state).toBe("cancelled");
    expect((await alice.retry(mine.id)).state).toBe("queued");
    // Every member reads every job and device.
    expect((await alice.job(bobs.id)).id).toBe(bobs.id);
    expect((await alice.devices()).length).toBeGreaterThan(0);
    const listed = await raw("GET", "/api/jobs?owner=alice", { token: alice.token });
    expect(listed.json.jobs.map((j: Job) => j.id)).toEqual([mine.id]);
    await expect(alice.request("POST", "/api/users", { body: { name: "mallory", role: "admin" } })).rejects.toMatchObject({ status: 403 });
  });

  it("shows a job's env values only to its owner and admins", async () => {
    const carol = await addUser("carol");
    const dave = await addUser("dave");
    const j = await carol.submit({ command: "true", env: { WANDB_KEY: "k-123", PLAIN: "visible-to-owner" }, constraints: { hostId: "nowhere" } });
    expect((await carol.job(j.id)).env).toEqual({ WANDB_KEY: "k-123", PLAIN: "visible-to-owner" });
    expect((await admin.job(j.id)).env.PLAIN).toBe("visible-to-owner");
    const seen = await raw("GET", `/api/jobs/${j.id}`, { token: dave.token });
    expect(seen.text).not.toContain("k-123");
    expect(seen.text).not.toContain("visible-to-owner");
    expect(Object.keys(seen.json.env)).toEqual(["WANDB_KEY", "PLAIN"]);
  });

  it("answers 401 at once for a revoked token", async () => {
    const erin = await addUser("erin");
    expect((await erin.jobs()).length).toBeGreaterThanOrEqual(0);
    expect((await raw("POST", "/api/users/erin/revoke", { token: d.adminToken })).status).toBe(200);
    await expect(erin.jobs()).rejects.toMatchObject({ status: 401 });
    const users = await raw("GET", "/api/users", { token: d.adminToken });
    expect(users.json.users.find((u: { name: string }) => u.name === "erin")).toMatchObject({ role: "member", revokedAt: expect.any(String) });
    expect(users.text).not.toMatch(/lru_/);
  });

  it("keeps the admin token working as the first admin, and refuses a second user of the same name", async () => {
    const who = await raw("GET", "/api/whoami", { token: d.adminToken });
    expect(who.json).toMatchObject({ kind: "person", name: "admin", role: "admin" });
    await addUser("frank");
    expect((await raw("POST", "/api/users", { token: d.adminToken, body: { name: "frank" } })).status).toBe(409);
    expect((await raw("POST", "/api/users", { token: d.adminToken, body: { name: "../x" } })).status).toBe(400);
  });
});

describe("no person's token goes toward an agent's URL (finding: the join token becomes the admin token)", () => {
  let listener: Server;
  let seen: IncomingHttpHeaders[] = [];
  let agentUrl = "";

  beforeAll(async () => {
    listener = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("line one from the agent\n");
      setTimeout(() => res.end("line two\n"), 200);
    });
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    agentUrl = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
  });
  afterAll(() => listener?.close());

  it("relays a running job's live log from the agent with the dispatcher's own credential", async () => {
    seen = [];
    const a = new SimAgent(d.url, "evil-agent", fakeGpus(1));
    const r = await a.client.register(d.joinToken, { hostId: "evil-agent", gpus: fakeGpus(1), agentUrl });
    a.client.token = r.agentToken;
    a.startHeartbeats(500);
    onTestFinished(() => a.stop());
    const j = await admin.submit({ command: "true", constraints: { hostId: "evil-agent" } });
    const lease = (await a.lease(3))!;
    await a.report(lease, "running");
    const res = await fetch(`${d.url}/api/jobs/${j.id}/log?follow=1`, { headers: { authorization: `Bearer ${d.adminToken}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("line one from the agent\nline two\n");
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) {
      expect(h.authorization).not.toContain(d.adminToken);
      expect(h.authorization).toMatch(/^Bearer lrl_/);
    }
  });

  it("the dashboard follows a running job's log through the dispatcher, never sending its token to the agent's URL", async () => {
    seen = [];
    const reg = await raw("POST", "/api/agents/register", { token: d.joinToken, body: { hostId: "dash-evil", gpus: fakeGpus(1), agentUrl } });
    const b = new SimAgent(d.url, "dash-evil", fakeGpus(1));
    b.client.token = reg.json.agentToken;
    b.startHeartbeats(500);
    onTestFinished(() => b.stop());
    const job = await admin.submit({ command: "true", constraints: { hostId: "dash-evil" } });
    await b.report((await b.lease(3))!, "running");
    const store = new TuiStore(startLog(initialState(d.url), job.id));
    const client = new DataClient({ url: d.url, token: d.adminToken, store });
    await client.openJob(job.id, true);
    client.stop();
    expect(store.get().log?.lines.join("\n")).toContain("line one from the agent");
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) expect(h.authorization).not.toContain(d.adminToken);
  });

  it("serves an ended job's log from the synced copy", async () => {
    const a = await newAgent();
    const j = await admin.submit({ command: "true", constraints: { hostId: a.hostId } });
    const lease = (await a.lease(3))!;
    await a.report(lease, "running");
    await a.client.syncAppend(j.id, "job.log", 0, Buffer.from("one\ntwo\nthree\n"));
    await a.report(lease, "succeeded", 0);
    const res = await fetch(`${d.url}/api/jobs/${j.id}/log?follow=1&tail=2`, { headers: { authorization: `Bearer ${d.adminToken}` } });
    expect(await res.text()).toBe("two\nthree\n");
  });
});

describe("input (findings: '..' projects, odd sync names, symlinks)", () => {
  it.each([["..", "."], ["a\u001b[31m", "x".repeat(101)]].flat())("refuses the project name %j with 400", async (project) => {
    const r = await raw("POST", "/api/jobs", { token: d.adminToken, body: { command: "true", project } });
    expect(r.status).toBe(400);
    expect(r.json.field).toBe("project");
  });

  it("refuses a job name with control characters", async () => {
    const r = await raw("POST", "/api/jobs", { token: d.adminToken, body: { command: "true", name: "ok\u001b]0;pwned\u0007" } });
    expect(r).toMatchObject({ status: 400, json: { field: "name" } });
  });

  it("answers odd sync names with 400 and a reason, never a server path", async () => {
    const a = await newAgent();
    const j = await admin.submit({ command: "true", constraints: { hostId: a.hostId } });
    await a.lease(3);
    const put = (p: string) => raw("POST", `/api/sync/${j.id}/files/${p}?offset=0`, { token: a.client.token, raw: Buffer.from("x") });
    expect((await put("...")).status).toBe(200);
    expect((await put("dir/file")).status).toBe(200);
    for (const p of ["x".repeat(300), "dir", "dir/file/below", `${"d/".repeat(200)}f`]) {
      const r = await put(p);
      expect(r.status, p.slice(0, 20)).toBe(400);
      expect(r.json.error).toBe("bad_path");
      expect(r.text).not.toContain(d.stateDir);
      expect(r.text).not.toMatch(/ENAMETOOLONG|EEXIST|EISDIR|ENOTDIR/);
    }
  });

  it("follows no symlink inside an attempt folder", async () => {
    const a = await newAgent();
    const j = await admin.submit({ command: "true", project: "symlinks", constraints: { hostId: a.hostId } });
    await a.lease(3);
    await a.client.syncAppend(j.id, "real.txt", 0, Buffer.from("real"));
    const attemptDir = join(d.stateDir, "runs", "symlinks", j.id, "attempt-1");
    const outside = join(d.stateDir, "outside-secret");
    writeFileSync(outside, "SECRET-OUTSIDE");
    symlinkSync(outside, join(attemptDir, "link.txt"));
    // A link where a file of ours should be: writing through it must not reach the target.
    const w = await raw("POST", `/api/sync/${j.id}/files/link.txt?offset=0`, { token: a.client.token, raw: Buffer.from("overwrite") });
    expect(w.status).toBe(400);
    expect(readFileSync(outside, "utf8")).toBe("SECRET-OUTSIDE");
    symlinkSync(outside, join(attemptDir, "real2.txt"));
    const r = await raw("GET", `/api/sync/${j.id}/files/link.txt`, { token: d.adminToken });
    expect(r.text).not.toContain("SECRET-OUTSIDE");
  });
});

describe("secrets at rest (finding: 0644 files in a folder that existed)", () => {
  it("makes the state folder 0700 and labrig.db and its WAL 0600 even when the folder existed as 0755", async () => {
    const state = mkdtempSync(join(tmpdir(), "labrig-modes-"));
    onTestFinished(() => rmSync(state, { recursive: true, force: true }));
    chmodSync(state, 0o755);
    mkdirSync(join(state, "runs"), { mode: 0o755 });
    chmodSync(join(state, "runs"), 0o755);
    writeFileSync(join(state, "labrig.db"), "", { mode: 0o644 });
    const p = await startDispatcher({ stateDir: state });
    onTestFinished(() => p.stop());
    await p.admin().submit({ command: "true", env: { X: "y" }, constraints: { hostId: "nowhere" } });
    const mode = (f: string) => (statSync(join(state, f)).mode & 0o777).toString(8);
    expect(mode(".")).toBe("700");
    expect(mode("runs")).toBe("700");
    expect(mode("labrig.db")).toBe("600");
    expect(mode("labrig.db-wal")).toBe("600");
    expect(mode("dispatcher.json")).toBe("600");
  });
});

describe("paging (finding: GET /api/jobs silently stops at 1000)", () => {
  it("pages with limit and cursor and says how many there are", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await admin.submit({ command: "true", project: "paging", constraints: { hostId: "nowhere" } })).id);
    const first = await raw("GET", "/api/jobs?project=paging&limit=2", { token: d.adminToken });
    expect(first.json.total).toBe(5);
    expect(first.json.jobs.map((j: Job) => j.id)).toEqual([ids[4], ids[3]]);
    const second = await raw("GET", `/api/jobs?project=paging&limit=2&cursor=${first.json.nextCursor}`, { token: d.adminToken });
    expect(second.json.jobs.map((j: Job) => j.id)).toEqual([ids[2], ids[1]]);
    const third = await raw("GET", `/api/jobs?project=paging&limit=2&cursor=${second.json.nextCursor}`, { token: d.adminToken });
    expect(third.json.jobs.map((j: Job) => j.id)).toEqual([ids[0]]);
    expect(third.json.nextCursor).toBeNull();
    expect((await raw("GET", "/api/jobs?cursor=zz!", { token: d.adminToken })).status).toBe(400);
  });
});
