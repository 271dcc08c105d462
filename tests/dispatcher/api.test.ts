// The dispatcher's HTTP contract over real HTTP on loopback with a real SQLite file. The dispatcher
// runs in this process (openDispatcher, as the command puts it together) where nothing crashes;
// the kill -9 and restart test runs its own real process.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { Job } from "../../core/api.js";
import { ApiError } from "../../core/errors.js";
import { DispatcherClient } from "../../core/client.js";
import { rawRequest } from "../helpers/http.js";
import { startDispatcher } from "../helpers/dispatcher-process.js";
import { startInProcessDispatcher, type InProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";
import { waitFor } from "../helpers/wait.js";

const SHORT_SILENCE = { LABRIG_STALE_AFTER_S: "1", LABRIG_DISCONNECT_AFTER_S: "2", LABRIG_LOST_AFTER_S: "3", LABRIG_HEARTBEAT_S: "1" };
let d: InProcessDispatcher;
let admin: DispatcherClient;

beforeAll(async () => {
  d = await startInProcessDispatcher({ env: SHORT_SILENCE });
  admin = d.admin();
});
afterAll(async () => {
  await d?.stop();
  d?.cleanup();
});

const raw = (method: string, path: string, opts: Parameters<typeof rawRequest>[3] = {}) => rawRequest(d.url, method, path, opts);

/** A request whose path goes on the wire exactly as given. */
function rawPath(method: string, path: string, token: string, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: d.port, method, path, headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/octet-stream" } : {}) } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

let hostCounter = 0;
async function newAgent(gpus = 1, labels: Record<string, string> = {}) {
  const a = new SimAgent(d.url, `host-${++hostCounter}`, fakeGpus(gpus), labels);
  return a.register(d.joinToken);
}

/** Submits a job pinned to `hostId` so tests running side by side do not take each other's jobs. */
function submitTo(hostId: string, extra: Record<string, unknown> = {}): Promise<Job> {
  return admin.submit({ command: ["true"], constraints: { hostId }, ...extra });
}

describe("health and auth", () => {
  it("answers /api/health without a token", async () => {
    const r = await raw("GET", "/api/health");
    expect(r.status).toBe(200);
    expect(r.json.status).toBe("ok");
  });

  it("refuses a missing or wrong token with 401", async () => {
    expect((await raw("GET", "/api/jobs")).status).toBe(401);
    const wrong = await raw("GET", "/api/jobs", { token: "nope" });
    expect(wrong).toMatchObject({ status: 401, json: { error: "unauthorized" } });
    expect((await raw("GET", "/api/devices", { token: d.joinToken })).status).toBe(401);
    expect((await raw("GET", "/api/events", { token: "nope" })).status).toBe(401);
  });

  it("tells an agent whose token it does not know to register again", async () => {
    const r = await raw("POST", "/api/agents/ghost/heartbeat", { token: "lrt_forgotten", body: { gpus: [] } });
    expect(r).toMatchObject({ status: 401, json: { error: "unknown_agent" } });
    const l = await raw("GET", "/api/agents/ghost/lease?wait=0", { token: "lrt_forgotten" });
    expect(l).toMatchObject({ status: 401, json: { error: "unknown_agent" } });
  });

  it("gives an agent its own token and the heartbeat interval at registration", async () => {
    const r = await raw("POST", "/api/agents/register", { token: d.joinToken, body: { hostId: "reg-check", gpus: fakeGpus(1) } });
    expect(r.status).toBe(200);
    expect(r.json.heartbeatIntervalS).toBe(1);
    expect(r.json.agentToken).not.toBe(d.joinToken);
    expect((await raw("POST", "/api/agents/reg-check/heartbeat", { token: r.json.agentToken, body: { gpus: [] } })).json).toEqual({ cancel: [] });
  });

  it.each([
    ["POST", "/api/agents/register", "join", { hostId: "bad host!", gpus: [] }, "hostId"],
    ["POST", "/api/agents/register", "join", { hostId: "ok", gpus: [{ index: -1, uuid: "u", name: "n", memoryTotalMiB: 1 }] }, "gpus.0.index"],
    ["POST", "/api/agents/register", "join", { hostId: "ok" }, "gpus"],
    ["POST", "/api/jobs", "admin", { command: "true", gpu: 2 }, "gpu"],
    ["POST", "/api/jobs", "admin", { command: "true", constraints: { hostid: "gpu-a" } }, "constraints.hostid"],
    ["POST", "/api/groups", "admin", { name: "g", jobs: [{ command: "true" }, { command: "true", constraints: { label: { a: "b" } } }] }, "jobs.1.constraints.label"],
    ["POST", "/api/queue/add", "admin", { priority: 1 }, "config"],
    ["POST", "/api/queue/add", "admin", { config_path: "a.yaml", priority: "soon" }, "priority"],
  ])("refuses %s %s with a malformed body, naming the field", async (method, path, who, body, field) => {
    const r = await raw(method, path, { token: who === "join" ? d.joinToken : d.adminToken, body });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: "invalid_body", field });
    expect(r.json.message).toMatch(new RegExp(`^${field.replace(/\./g, "\\.")}: `));
  });

  it("refuses malformed heartbeats, job events and lease waits, naming the field", async () => {
    const a = await newAgent();
    const hb = await raw("POST", `/api/agents/${a.hostId}/heartbeat`, { token: a.client.token, body: { gpus: [{ index: 0, utilizationPct: "busy" }] } });
    expect(hb).toMatchObject({ status: 400, json: { field: "gpus.0.utilizationPct" } });
    const j = await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    const ev = await raw("POST", `/api/jobs/${j.id}/events`, { token: a.client.token, body: { attempt: l.attempt, state: "exploded" } });
    expect(ev).toMatchObject({ status: 400, json: { field: "state" } });
    const ev2 = await raw("POST", `/api/jobs/${j.id}/events`, { token: a.client.token, body: { state: "running" } });
    expect(ev2).toMatchObject({ status: 400, json: { field: "attempt" } });
    const w = await raw("GET", `/api/agents/${a.hostId}/lease?wait=soon`, { token: a.client.token });
    expect(w).toMatchObject({ status: 400, json: { field: "wait" } });
    const p = await raw("POST", `/api/jobs/${j.id}/priority`, { token: d.adminToken, body: { priority: "asap" } });
    expect(p).toMatchObject({ status: 400, json: { field: "priority" } });
  });

  it.each([
    ["/api/jobs?state=running,exploded", "state", /^state: 'exploded' is not one of queued, /],
    ["/api/jobs?limit=0", "limit", /^limit: a whole number from 1 to 10000$/],
    ["/api/jobs?limit=10001", "limit", /^limit: /],
    ["/api/jobs?limit=1e3", "limit", /^limit: /],
    ["/api/jobs?limit=1&limit=2", "limit", /^limit: /],
    ["/api/jobs?cursor=-1", "cursor", /^cursor: pass the nextCursor/],
    ["/api/jobs?project=a&project=b", "project", /^project: one project/],
    ["/api/queue/list?status=done", "status", /^status: one of pending, queued, assigned, running, completed, failed, cancelled$/],
    ["/api/queue/list?limit=1001", "limit", /^limit: a whole number from 1 to 1000$/],
    ["/api/queue/list?limit=ten", "limit", /^limit: /],
    ["/api/queue/list?offset=-1", "offset", /^offset: a whole number >= 0$/],
    ["/api/queue/list?status=queued&status=running", "status", /^status: /],
  ])("refuses GET %s naming the parameter", async (path, field, message) => {
    const r = await raw("GET", path, { token: d.adminToken });
    expect(r).toMatchObject({ status: 400, json: { error: "invalid_query", field } });
    expect(r.json.message).toMatch(message);
  });

  it("refuses bad lease waits and sync offsets, attempts and hashes, naming the parameter; good ones pass", async () => {
    const a = await newAgent();
    const token = a.client.token;
    for (const wait of ["-1", "1e9", "0x10", ""]) {
      expect(await raw("GET", `/api/agents/${a.hostId}/lease?wait=${wait}`, { token })).toMatchObject({ status: 400, json: { error: "invalid_query", field: "wait" } });
    }
    expect((await raw("GET", `/api/agents/${a.hostId}/lease?wait=0.2`, { token })).status).toBe(204);
    const j = await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    const file = `/api/sync/${j.id}/files/job.log`;
    const bytes = Buffer.from("hello\n");
    for (const [query, field] of [["?offset=-1", "offset"], ["", "offset"], ["?offset=0&attempt=0", "attempt"], ["?offset=1.5", "offset"]] as const) {
      expect(await raw("POST", `${file}${query}`, { token, raw: bytes })).toMatchObject({ status: 400, json: { error: "invalid_query", field } });
    }
    expect(await raw("PUT", `${file}?sha256=zz`, { token, raw: bytes })).toMatchObject({ status: 400, json: { error: "invalid_query", field: "sha256" } });
    expect(await raw("POST", `${file}?offset=0&attempt=${l.attempt}`, { token, raw: bytes })).toMatchObject({ status: 200, json: { size: bytes.length } });
  });

  it("refuses registration without the join token", async () => {
    const r = await raw("POST", "/api/agents/register", { token: "wrong", body: { hostId: "x", gpus: [] } });
    expect(r.status).toBe(401);
  });

  it("refuses an agent acting for another host with 403", async () => {
    const a = await newAgent();
    const b = await newAgent();
    const r = await raw("POST", `/api/agents/${b.hostId}/heartbeat`, { token: a.client.token, body: { gpus: [] } });
    expect(r.status).toBe(403);
    const l = await raw("GET", `/api/agents/${b.hostId}/lease?wait=0`, { token: a.client.token });
    expect(l.status).toBe(403);
  });

  it("refuses admin calls made with an agent token with 403", async () => {
    const a = await newAgent();
    expect((await raw("POST", "/api/jobs", { token: a.client.token, body: { command: "true" } })).status).toBe(403);
  });

  it("re-registering a host with its agent token replaces that token", async () => {
    const a = await newAgent();
    const old = a.client.token!;
    await a.register(old);
    expect(a.client.token).not.toBe(old);
    const r = await raw("POST", `/api/agents/${a.hostId}/heartbeat`, { token: old, body: { gpus: [] } });
    expect(r.status).toBe(401);
    expect(r.json.error).toBe("unknown_agent");
  });
});

describe("jobs", () => {
  it("queues a job with defaults and shows it", async () => {
    const job = await admin.submit({ command: ["python", "train.py"], constraints: { hostId: "nowhere" } });
    expect(job).toMatchObject({ state: "queued", gpus: 1, priority: "normal", attempt: 1, project: "default", maxRetries: 0 });
    const got = await admin.job(job.id);
    expect(got.id).toBe(job.id);
    expect((await admin.jobs({ state: "queued" })).map((j) => j.id)).toContain(job.id);
  });

  it.each([
    [{ command: [] }, "command"],
    [{}, "command"],
    [{ command: "x", gpus: -1 }, "gpus"],
    [{ command: "x", gpus: 1.5 }, "gpus"],
    [{ command: "x", priority: "asap" }, "priority"],
    [{ command: "x", env: { "bad-name": "1" } }, "env.bad-name"],
    [{ command: "x", constraints: { minMemoryMiB: "lots" } }, "constraints.minMemoryMiB"],
    [{ command: "x", timeoutS: 0 }, "timeoutS"],
  ])("refuses a malformed job %j with 400 naming %s", async (body, field) => {
    const r = await raw("POST", "/api/jobs", { token: d.adminToken, body });
    expect(r.status).toBe(400);
    expect(r.json.field).toBe(field);
    expect(r.json.message).toContain(field);
  });

  it("refuses a 31-day timeout with 400 naming the 30-day bound, and takes a 25-day one", async () => {
    const r = await raw("POST", "/api/jobs", { token: d.adminToken, body: { command: "x", timeoutS: 31 * 24 * 3600, constraints: { hostId: "nowhere" } } });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ field: "timeoutS", message: "timeoutS: at most 2592000 s (30 days), the longest timeout labrig enforces" });
    const ok = await admin.submit({ command: "x", timeoutS: 25 * 24 * 3600, constraints: { hostId: "nowhere" } });
    expect(ok.timeoutS).toBe(2_160_000);
  });

  it("refuses a body that is not JSON with 400", async () => {
    const res = await fetch(`${d.url}/api/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${d.adminToken}`, "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "invalid_body", field: "(body)" });
    const text = await fetch(`${d.url}/api/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${d.adminToken}`, "content-type": "text/plain" },
      body: JSON.stringify({ command: "true" }),
    });
    expect(text.status).toBe(415);
    expect(await text.json()).toMatchObject({ error: "invalid_body", field: "(body)" });
  });

  it("lists jobs newest first, filtered by state and project, up to a limit", async () => {
    const first = await admin.submit({ command: "true", project: "filter-me", constraints: { hostId: "nowhere" } });
    const second = await admin.submit({ command: "true", project: "filter-me", constraints: { hostId: "nowhere" } });
    const third = await admin.submit({ command: "true", project: "filter-me", constraints: { hostId: "nowhere" } });
    await admin.cancel(second.id);
    expect((await admin.jobs({ project: "filter-me" })).map((x) => x.id)).toEqual([third.id, second.id, first.id]);
    expect((await admin.jobs({ project: "filter-me", state: "queued" })).map((x) => x.id)).toEqual([third.id, first.id]);
    expect((await admin.jobs({ project: "filter-me", state: ["cancelled", "running"] })).map((x) => x.id)).toEqual([second.id]);
    expect((await admin.jobs({ project: "filter-me", limit: 1 })).map((x) => x.id)).toEqual([third.id]);
    expect(first.id).toMatch(/^[0-9a-z]{10}$/);
    const bad = await raw("GET", "/api/jobs?state=bogus", { token: d.adminToken });
    expect(bad).toMatchObject({ status: 400, json: { field: "state" } });
  });

  it("cancels a queued job at once", async () => {
    const j = await admin.submit({ command: "true", constraints: { hostId: "nowhere" } });
    expect((await admin.cancel(j.id)).state).toBe("cancelled");
    await expect(admin.cancel(j.id)).rejects.toMatchObject({ status: 409 });
  });

  it("retries an ended job as a new attempt", async () => {
    const j = await admin.submit({ command: "true", constraints: { hostId: "nowhere" } });
    await admin.cancel(j.id);
    const r = await admin.retry(j.id);
    expect(r).toMatchObject({ state: "queued", attempt: 2 });
    await expect(admin.retry(j.id)).rejects.toMatchObject({ status: 409 });
  });

  it("changes a queued job's priority", async () => {
    const j = await admin.submit({ command: "true", constraints: { hostId: "nowhere" } });
    expect((await admin.setPriority(j.id, "high")).priority).toBe("high");
  });

  it("answers 404 for an unknown job", async () => {
    expect((await raw("GET", "/api/jobs/nosuchjob", { token: d.adminToken })).status).toBe(404);
  });
  // CVLab-Kit's POST /api/queue/add: tests/dispatcher/cvlab-queue.test.ts.
});

describe("leases", () => {
  it("the long poll returns the moment a fitting job is queued", async () => {
    const a = await newAgent(2);
    const t0 = Date.now();
    const pending = a.lease(10);
    await sleep(300);
    const job = await submitTo(a.hostId);
    const lease = await pending;
    const waited = Date.now() - t0;
    expect(lease?.job.id).toBe(job.id);
    expect(lease?.gpuIndices).toEqual([0]);
    expect(lease?.attempt).toBe(1);
    expect(waited).toBeLessThan(2000);
  });

  it("answers 204 when the wait runs out with nothing to do", async () => {
    const a = await newAgent();
    const t0 = Date.now();
    expect(await a.lease(1)).toBeNull();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it("runs two 1-GPU jobs side by side on a 2-GPU host and a third waits", async () => {
    const a = await newAgent(2);
    const jobs = [await submitTo(a.hostId), await submitTo(a.hostId), await submitTo(a.hostId)];
    const l1 = await a.lease(2);
    const l2 = await a.lease(2);
    expect(new Set([l1!.gpuIndices[0], l2!.gpuIndices[0]])).toEqual(new Set([0, 1]));
    expect(await a.lease(0)).toBeNull();
    await a.report(l1!, "running");
    await a.report(l1!, "succeeded", 0);
    const l3 = await a.lease(3);
    expect(l3?.job.id).toBe(jobs[2].id);
    expect(l3?.gpuIndices).toEqual(l1!.gpuIndices);
  });

  it("moves a job through running to succeeded and records exit codes", async () => {
    const a = await newAgent();
    const j = await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    expect((await a.report(l, "running")).state).toBe("running");
    const done = await a.report(l, "failed", 3);
    expect(done).toMatchObject({ state: "failed", exitCode: 3 });
    const shown = await admin.job(j.id);
    expect(shown.startedAt).not.toBeNull();
    expect(shown.endedAt).not.toBeNull();
  });

  it("refuses an event for a stale attempt with 409", async () => {
    const a = await newAgent();
    const j = await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    const r = await raw("POST", `/api/jobs/${j.id}/events`, { token: a.client.token, body: { attempt: 2, state: "succeeded", exitCode: 0 } });
    expect(r.status).toBe(409);
    expect(r.json.error).toBe("stale_attempt");
    await a.report(l, "succeeded", 0);
    const again = await raw("POST", `/api/jobs/${j.id}/events`, { token: a.client.token, body: { attempt: 1, state: "running" } });
    expect(again.status).toBe(409);
  });

  it("tells the agent to stop a cancelled job in its heartbeat", async () => {
    const a = await newAgent();
    const j = await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    const c = await admin.cancel(j.id);
    expect(c.state).toBe("running");
    expect((await a.heartbeat()).cancel).toEqual([j.id]);
    await a.report(l, "cancelled");
    expect((await admin.job(j.id)).state).toBe("cancelled");
    expect((await a.heartbeat()).cancel).toEqual([]);
  });

  it("gives nothing to a drained host until it is undrained", async () => {
    const a = await newAgent();
    a.startHeartbeats(300);
    onTestFinished(() => a.stop());
    await admin.drain(a.hostId);
    expect((await admin.devices()).find((x) => x.hostId === a.hostId)?.status).toBe("draining");
    const j = await submitTo(a.hostId);
    expect(await a.lease(1)).toBeNull();
    await admin.undrain(a.hostId);
    expect((await a.lease(3))?.job.id).toBe(j.id);
    expect((await raw("POST", "/api/devices/nobody/drain", { token: d.adminToken })).status).toBe(404);
  });

  it("runs a gpus: 0 job on a host without GPUs", async () => {
    const a = await newAgent(0);
    const j = await submitTo(a.hostId, { gpus: 0 });
    const l = await a.lease(3);
    expect(l?.job.id).toBe(j.id);
    expect(l?.gpuIndices).toEqual([]);
  });

  it("lists devices with their GPUs, free count and running jobs", async () => {
    const a = await newAgent(2, { room: "b" });
    await a.heartbeat();
    await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    const dev = (await admin.devices()).find((x) => x.hostId === a.hostId)!;
    expect(dev).toMatchObject({ status: "healthy", freeGpus: 1, runningJobs: [l.job.id], labels: { room: "b" } });
    expect(dev.gpus[0]).toMatchObject({ utilizationPct: 50, temperatureC: 60, memoryTotalMiB: 81920 });
  });
});

describe("silent agents", () => {
  it("requeues a silent agent's job with attempt 2 and it runs elsewhere", async () => {
    const a = await newAgent(1, { pool: "requeue" });
    const b = await newAgent(1, { pool: "requeue" });
    const j = await admin.submit({ command: "true", maxRetries: 1, constraints: { labels: { pool: "requeue" } } });
    // Only a polls at first: it takes the job, then goes silent while b keeps heartbeating.
    const holder = a;
    const other = b;
    const firstLease = (await a.lease(3))!;
    expect(firstLease.job.id).toBe(j.id);
    await holder.report(firstLease, "running");
    other.startHeartbeats(300);
    try {
      const second = await other.lease(8);
      expect(second?.job.id).toBe(j.id);
      expect(second?.attempt).toBe(2);
      const shown = await admin.job(j.id);
      expect(shown).toMatchObject({ attempt: 2, hostId: other.hostId });
      // The silent agent's late report for attempt 1 is stale.
      const late = await raw("POST", `/api/jobs/${j.id}/events`, { token: holder.client.token, body: { attempt: 1, state: "succeeded", exitCode: 0 } });
      expect(late.status).toBe(409);
    } finally {
      other.stop();
    }
  });

  it("shows a silent host as stale, then disconnected, and healthy again when it is back", async () => {
    const a = await newAgent();
    const status = async () => (await admin.devices()).find((x) => x.hostId === a.hostId)?.status;
    expect(await status()).toBe("healthy");
    await waitFor("the host to turn stale", status, (s) => s === "stale", 3000, 50);
    await waitFor("the host to disconnect", status, (s) => s === "disconnected", 3000, 50);
    await a.heartbeat();
    expect(await status()).toBe("healthy");
  });

  it("dates a heartbeat by its receipt, whatever clock the agent has", async () => {
    const a = await newAgent();
    const before = Date.now();
    // An agent whose clock is a year behind says so in fields the API does not have: they change nothing.
    const r = await raw("POST", `/api/agents/${a.hostId}/heartbeat`, { token: a.client.token, body: { ...a.heartbeatBody(), sentAt: "2025-01-01T00:00:00Z", at: 0 } });
    expect(r.status).toBe(200);
    const dev = (await admin.devices()).find((x) => x.hostId === a.hostId)!;
    expect(dev.status).toBe("healthy");
    expect(Date.parse(dev.lastSeenAt!)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(dev.lastSeenAt!)).toBeLessThanOrEqual(Date.now());
  });

  it("fails a silent agent's job with reason lost when it has no retries", async () => {
    const a = await newAgent();
    const j = await submitTo(a.hostId);
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    const job = await waitFor("the job to end", () => admin.job(j.id), (x) => x.state !== "running", 8000);
    expect(job).toMatchObject({ state: "failed", reason: "lost", attempt: 1 });
    expect((await admin.devices()).find((x) => x.hostId === a.hostId)?.status).toBe("disconnected");
  });

  it("tells a returning agent to stop a job that was given to another host", async () => {
    const a = await newAgent(1, { pool: "return" });
    const b = await newAgent(1, { pool: "return" });
    const j = await admin.submit({ command: "true", maxRetries: 1, constraints: { hostId: a.hostId } });
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    // a goes silent: the job goes back to the queue, pinned to a, so it waits there.
    const requeued = await waitFor("the job to be requeued", () => admin.job(j.id), (x) => x.state === "queued", 8000);
    expect(requeued.attempt).toBe(2);
    b.stop();
    const hb = await a.heartbeat();
    expect(hb.cancel).toEqual([j.id]);
  });
});

describe("sync", () => {
  async function runningJob(extra: Record<string, unknown> = {}) {
    const a = await newAgent();
    const j = await submitTo(a.hostId, extra);
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    return { a, j, l };
  }

  it("appends at offsets, treats a repeat as a no-op and refuses a gap with the size", async () => {
    const { a, j } = await runningJob();
    const c = a.client;
    expect((await c.syncAppend(j.id, "job.log", 0, Buffer.from("hello "))).size).toBe(6);
    expect((await c.syncAppend(j.id, "job.log", 6, Buffer.from("world\n"))).size).toBe(12);
    expect((await c.syncAppend(j.id, "job.log", 0, Buffer.from("hello "))).size).toBe(12);
    expect((await c.syncAppend(j.id, "job.log", 9, Buffer.from("ld\nmore"))).size).toBe(16);
    const gap = await raw("POST", `/api/sync/${j.id}/files/job.log?offset=100`, { token: c.token, raw: Buffer.from("x") });
    expect(gap.status).toBe(409);
    expect(gap.json.size).toBe(16);
    const bytes = await admin.syncGet(j.id, "job.log");
    expect(bytes.toString()).toBe("hello world\nmore");
    const status = await admin.syncStatus(j.id);
    expect(status.attempt).toBe(1);
    expect(status.files["job.log"]).toMatchObject({ size: 16, sha256: createHash("sha256").update("hello world\nmore").digest("hex") });
    const onDisk = join(d.stateDir, "runs", "default", j.id, "attempt-1", "job.log");
    expect(readFileSync(onDisk, "utf8")).toBe("hello world\nmore");
  });

  it("replaces a file whole after checking its sha256", async () => {
    const { a, j } = await runningJob();
    const body = Buffer.from("epoch: 3\n");
    const sha = createHash("sha256").update(body).digest("hex");
    expect((await a.client.syncPut(j.id, "ckpt/meta.yaml", body, sha)).size).toBe(body.length);
    const bad = await raw("PUT", `/api/sync/${j.id}/files/ckpt/meta.yaml?sha256=${"0".repeat(64)}`, { token: a.client.token, raw: Buffer.from("x") });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe("sha256_mismatch");
    expect((await admin.syncGet(j.id, "ckpt/meta.yaml")).toString()).toBe("epoch: 3\n");
  });

  // Sent with node:http, which sends the path as written (fetch would resolve '..' and '%2e%2e' first).
  it.each([
    ["POST", "../escape.txt"],
    ["POST", "a/../../escape.txt"],
    ["POST", "%2e%2e/escape.txt"],
    ["POST", "a/%2e%2e/%2e%2e/escape.txt"],
    ["POST", "..%2f..%2fescape.txt"],
    ["POST", "%2Fetc%2Fescape.txt"],
    ["POST", "/tmp/escape.txt"],
    ["POST", "a%2F..%2F..%2Fescape.txt"],
    ["POST", "a%5C..%5C..%5Cescape.txt"],
    ["PUT", "%2e%2e/%2e%2e/escape.txt"],
    ["GET", "%2e%2e/%2e%2e/%2e%2e/labrig.db"],
  ])("refuses the traversal %s %s with 400", async (method, path) => {
    const { a, j } = await runningJob();
    const q = method === "POST" ? "?offset=0" : method === "PUT" ? `?sha256=${createHash("sha256").update("x").digest("hex")}` : "";
    const r = await rawPath(method, `/api/sync/${j.id}/files/${path}${q}`, a.client.token!, method === "GET" ? undefined : Buffer.from("x"));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ error: "bad_path", field: "path" });
    for (const p of [join("runs", "default", j.id, "escape.txt"), join("runs", "default", "escape.txt"), join("runs", "escape.txt"), "escape.txt"]) {
      expect(existsSync(join(d.stateDir, p))).toBe(false);
    }
    expect(existsSync("/tmp/escape.txt")).toBe(false);
  });

  it("takes a name that only looks like '..' once decoded twice as an ordinary file", async () => {
    const { a, j } = await runningJob();
    const r = await rawPath("POST", `/api/sync/${j.id}/files/%252e%252e?offset=0`, a.client.token!, Buffer.from("x"));
    expect(r.status).toBe(200);
    expect(existsSync(join(d.stateDir, "runs", "default", j.id, "attempt-1", "%2e%2e"))).toBe(true);
  });

  it("refuses a whole-file upload without a sha256, or for a stale attempt", async () => {
    const { a, j } = await runningJob();
    const missing = await raw("PUT", `/api/sync/${j.id}/files/model.pt`, { token: a.client.token, raw: Buffer.from("x") });
    expect(missing.status).toBe(400);
    expect(missing.json.field).toBe("sha256");
    const sha = createHash("sha256").update("x").digest("hex");
    const stale = await raw("PUT", `/api/sync/${j.id}/files/model.pt?sha256=${sha}&attempt=2`, { token: a.client.token, raw: Buffer.from("x") });
    expect(stale.status).toBe(409);
    expect(stale.json.error).toBe("stale_attempt");
    expect((await admin.syncStatus(j.id)).files).toEqual({});
  });

  it("answers 404 for a file that was never synced", async () => {
    const { j } = await runningJob();
    expect((await raw("GET", `/api/sync/${j.id}/files/nothing.log`, { token: d.adminToken })).status).toBe(404);
  });

  it("refuses uploads for a stale attempt with 409", async () => {
    const { a, j } = await runningJob();
    const r = await raw("POST", `/api/sync/${j.id}/files/job.log?offset=0&attempt=2`, { token: a.client.token, raw: Buffer.from("x") });
    expect(r.status).toBe(409);
    expect(r.json.error).toBe("stale_attempt");
    const other = await newAgent();
    const r2 = await raw("POST", `/api/sync/${j.id}/files/job.log?offset=0`, { token: other.client.token, raw: Buffer.from("x") });
    expect(r2.status).toBe(409);
  });

  it("keeps each attempt's files apart and serves an older attempt on request", async () => {
    const { a, j, l } = await runningJob({ maxRetries: 0 });
    await a.client.syncAppend(j.id, "job.log", 0, Buffer.from("first\n"), 1);
    await a.report(l, "failed", 1);
    await admin.retry(j.id);
    const l2 = (await a.lease(3))!;
    expect(l2.attempt).toBe(2);
    await a.report(l2, "running");
    await a.client.syncAppend(j.id, "job.log", 0, Buffer.from("second\n"), 2);
    expect((await admin.syncGet(j.id, "job.log")).toString()).toBe("second\n");
    expect((await admin.syncGet(j.id, "job.log", 1)).toString()).toBe("first\n");
  });
});

describe("events and metrics", () => {
  it("streams a job event to an SSE subscriber", async () => {
    const ac = new AbortController();
    const res = await fetch(`${d.url}/api/events`, { headers: { authorization: `Bearer ${d.adminToken}` }, signal: ac.signal });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const job = await admin.submit({ command: "true", name: "sse-probe", constraints: { hostId: "nowhere" } });
    let text = "";
    const deadline = Date.now() + 5000;
    while (!text.includes(job.id) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    expect(text).toMatch(new RegExp(`event: job\\ndata: \\{.*"id":"${job.id}"`));
    const frame = text.slice(text.indexOf("event: job"));
    const data = JSON.parse(frame.split("\n")[1]!.slice("data: ".length));
    expect(data).toMatchObject({ type: "job", job: { id: job.id, state: "queued" } });
  });

  it("streams events to a browser that passes the admin token in the query", async () => {
    const ac = new AbortController();
    const res = await fetch(`${d.url}/api/events?token=${encodeURIComponent(d.adminToken)}`, { signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const a = await newAgent();
    let text = "";
    const deadline = Date.now() + 5000;
    while (!text.includes(`"hostId":"${a.hostId}"`) && Date.now() < deadline) {
      await a.heartbeat();
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    expect(text).toContain("event: device");
    expect(text).toContain(`"hostId":"${a.hostId}"`);
  });

  it("puts an admin's notice on the event stream and refuses an empty one", async () => {
    const ac = new AbortController();
    const res = await fetch(`${d.url}/api/events`, { headers: { authorization: `Bearer ${d.adminToken}` }, signal: ac.signal });
    const reader = res.body!.getReader();
    const posted = await raw("POST", "/api/notices", { token: d.adminToken, body: { level: "error", message: "nightly backup failed: restic exit 1" } });
    expect(posted.status).toBe(202);
    expect((await raw("POST", "/api/notices", { token: d.adminToken, body: { level: "error", message: "" } })).json.field).toBe("message");
    let text = "";
    const deadline = Date.now() + 5000;
    while (!text.includes("nightly backup failed") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    expect(text).toMatch(/event: notice\ndata: \{.*"level":"error".*nightly backup failed/);
  });

  it("exposes Prometheus metrics", async () => {
    const res = await fetch(`${d.url}/metrics`);
    const text = await res.text();
    for (const series of [
      'labrig_jobs{state="queued"}',
      "labrig_devices{status=",
      "labrig_gpu_utilization_percent{",
      "labrig_gpu_temperature_celsius{",
      "labrig_dispatch_latency_seconds_bucket",
      "labrig_http_request_duration_seconds_bucket",
    ]) {
      expect(text).toContain(series);
    }
  });
});

describe("crash safety", () => {
  it("loses nothing across kill -9 and a restart on the same state", async () => {
    const d1 = await startDispatcher({ env: SHORT_SILENCE });
    const state = d1.stateDir;
    let d2: Awaited<ReturnType<typeof startDispatcher>> | undefined;
    onTestFinished(async () => {
      await d1.stop();
      await d2?.stop();
      d1.cleanup();
    });
    let admin = d1.admin();
    const a = await new SimAgent(d1.url, "survivor-host", fakeGpus(1)).register(d1.joinToken);
    const j = await admin.submit({ command: ["true"], name: "survivor", constraints: { hostId: a.hostId } });
    const l = (await a.lease(3))!;
    await a.report(l, "running");
    await a.client.syncAppend(j.id, "job.log", 0, Buffer.from("line 1\n"));
    const queued = await admin.submit({ command: "true", name: "waiting", constraints: { hostId: "nowhere" } });
    const before = await admin.jobs({ limit: 10000 });
    expect(before.map((x) => x.id).sort()).toEqual([j.id, queued.id].sort());
    const tokensBefore = [d1.adminToken, d1.joinToken];

    await d1.kill();
    d2 = await startDispatcher({ stateDir: state, port: d1.port, env: SHORT_SILENCE });
    admin = d2.admin();
    expect([d2.adminToken, d2.joinToken]).toEqual(tokensBefore);
    const after = await admin.jobs({ limit: 10000 });
    expect(after.map((x) => [x.id, x.state, x.attempt, x.hostId])).toEqual(before.map((x) => [x.id, x.state, x.attempt, x.hostId]));
    expect((await admin.devices()).map((x) => x.hostId)).toContain(a.hostId);
    expect((await admin.syncStatus(j.id)).files["job.log"]).toMatchObject({ size: 7, sha256: createHash("sha256").update("line 1\n").digest("hex") });
    // A new agent can still join with the same join token.
    await new SimAgent(d2.url, "after-restart", fakeGpus(1)).register(tokensBefore[1]!);
    expect((await admin.job(queued.id)).state).toBe("queued");
    // The agent's token still works and its running job goes on.
    expect((await a.heartbeat()).cancel).toEqual([]);
    await a.client.syncAppend(j.id, "job.log", 7, Buffer.from("line 2\n"));
    await a.report(l, "succeeded", 0);
    expect((await admin.syncGet(j.id, "job.log")).toString()).toBe("line 1\nline 2\n");
    expect((await admin.job(j.id)).state).toBe("succeeded");
    expect(statSync(join(state, "labrig.db")).size).toBeGreaterThan(0);
  });
});

it("the client reports API errors with status and code", async () => {
  const e = await admin.job("missing").catch((x) => x);
  expect(e).toBeInstanceOf(ApiError);
  expect(e.status).toBe(404);
});
