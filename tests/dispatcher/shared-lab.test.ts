// A shared lab's scheduler through a real dispatcher process: jobs hold cores and memory on their
// hosts, GPU-less jobs spread by free cores, fair share between people, each person's limits, and
// jobs no host could ever run refused at submit. Hosts are simulated agents that report the cores
// and memory given them (the real agent's report is tested in tests/agent).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, Lease } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";
import { startInProcessDispatcher, type InProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { rawRequest } from "../helpers/http.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";
import { waitFor } from "../helpers/wait.js";

let d: InProcessDispatcher;
let admin: DispatcherClient;
const agents: SimAgent[] = [];

beforeAll(async () => {
  // The lab's own defaults (4 cores and 16 GiB a GPU, 1 core and 2 GiB without one), not the tests' small ones.
  d = await startInProcessDispatcher({ env: { LABRIG_CPUS_PER_GPU: "4", LABRIG_MEMORY_GIB_PER_GPU: "16", LABRIG_GPULESS_CPUS: "1", LABRIG_GPULESS_MEMORY_GIB: "2", LABRIG_HEARTBEAT_S: "1", LABRIG_STALE_AFTER_S: "20", LABRIG_DISCONNECT_AFTER_S: "40", LABRIG_ASSIGN_TIMEOUT_S: "600" } });
  admin = d.admin();
});
afterAll(async () => {
  for (const a of agents) a.stop();
  await d?.stop();
  d?.cleanup();
});

async function person(name: string): Promise<DispatcherClient> {
  const r = await rawRequest(d.url, "POST", "/api/users", { token: d.adminToken, body: { name, role: "member" } });
  expect(r.status, r.text).toBe(201);
  return new DispatcherClient({ url: d.url, token: r.json.token });
}

async function host(id: string, gpus: number, cpuCount: number, memoryGiB: number, labels: Record<string, string> = {}): Promise<SimAgent> {
  const a = await new SimAgent(d.url, id, fakeGpus(gpus), labels, { cpuCount, memoryTotalMiB: memoryGiB * 1024 }).register(d.joinToken);
  await a.heartbeat();
  a.startHeartbeats(500);
  agents.push(a);
  return a;
}

/** Takes every lease waiting for the agent, reports each running, and returns them. */
async function takeAll(a: SimAgent): Promise<Lease[]> {
  const got: Lease[] = [];
  for (;;) {
    const l = await a.lease(0);
    if (!l) return got;
    await a.report(l, "running");
    got.push(l);
  }
}

describe("cores and memory", () => {
  it("spreads GPU-less jobs over two hosts by free cores and never puts more on a host than its cores", async () => {
    const [c1, c2] = [await host("cpu-1", 0, 4, 32, { pool: "cpu" }), await host("cpu-2", 0, 4, 32, { pool: "cpu" })];
    const jobs = await Promise.all(Array.from({ length: 8 }, (_, i) => admin.submit({ name: `prep-${i}`, command: "true", gpus: 0, cpus: 1, constraints: { labels: { pool: "cpu" } } })));
    expect(jobs.every((j) => j.cpus === 1 && j.memoryMiB === 2048)).toBe(true);
    await waitFor("all eight placed", () => Promise.all(jobs.map((j) => admin.job(j.id))), (js) => js.every((j) => j.state === "assigned"), 10_000);
    const placed = await Promise.all(jobs.map((j) => admin.job(j.id)));
    const on = (h: string) => placed.filter((j) => j.hostId === h).length;
    expect([on("cpu-1"), on("cpu-2")]).toEqual([4, 4]);
    for (const a of [c1, c2]) for (const l of await takeAll(a)) await a.report(l, "succeeded", 0);

    // A fifth 1-core job per host waits while four hold all the cores, and says why.
    const hold = await Promise.all(Array.from({ length: 8 }, () => admin.submit({ command: "true", gpus: 0, cpus: 1, constraints: { labels: { pool: "cpu" } } })));
    await waitFor("the eight placed", () => Promise.all(hold.map((j) => admin.job(j.id))), (js) => js.every((j) => j.state === "assigned"), 10_000);
    const extra = await admin.submit({ command: "true", gpus: 0, cpus: 1, constraints: { labels: { pool: "cpu" } } });
    const waiting = await waitFor("a reason", () => admin.job(extra.id), (j) => !!j.waiting, 10_000);
    expect(waiting.state).toBe("queued");
    expect(waiting.waiting).toMatch(/needs 1 CPU cores; no host that fits has them free now/);
    for (const a of [c1, c2]) for (const l of await takeAll(a)) await a.report(l, "succeeded", 0);
    await waitFor("the fifth placed once cores are free", () => admin.job(extra.id), (j) => j.state === "assigned", 10_000);
    for (const a of [c1, c2]) for (const l of await takeAll(a)) await a.report(l, "succeeded", 0);
  });

  it("keeps a memory-hungry job waiting for a host with room", async () => {
    const small = await host("mem-small", 0, 16, 8, { pool: "mem" });
    const big = await host("mem-big", 0, 16, 64, { pool: "mem" });
    const job = await admin.submit({ command: "true", gpus: 0, memoryGiB: 48, constraints: { labels: { pool: "mem" } } });
    const placed = await waitFor("placed", () => admin.job(job.id), (j) => j.state === "assigned", 10_000);
    expect(placed.hostId).toBe("mem-big");
    // A second one waits: the big host's memory is held, the small one never has room.
    const second = await admin.submit({ command: "true", gpus: 0, memoryGiB: 48, constraints: { labels: { pool: "mem" } } });
    const waiting = await waitFor("a reason", () => admin.job(second.id), (j) => !!j.waiting, 10_000);
    expect(waiting.waiting).toMatch(/needs 48 GiB memory/);
    for (const l of await takeAll(big)) await big.report(l, "succeeded", 0);
    expect((await waitFor("placed on the big host", () => admin.job(second.id), (j) => j.state === "assigned", 10_000)).hostId).toBe("mem-big");
    for (const l of await takeAll(big)) await big.report(l, "succeeded", 0);
    expect(await takeAll(small)).toEqual([]);
  });
});

describe("fair share", () => {
  it("starts the second person's jobs within the first two ends, though the first queued 20 before them", async () => {
    const gpuHost = await host("fair-gpus", 2, 32, 256, { pool: "fair" });
    const [ana, bo] = [await person("ana"), await person("bo")];
    const anas: Job[] = [];
    for (let i = 0; i < 20; i++) anas.push(await ana.submit({ name: `ana-${i}`, command: "true", gpus: 1, constraints: { labels: { pool: "fair" } } }));
    const first = await takeAll(gpuHost);
    expect(first.map((l) => l.job.owner)).toEqual(["ana", "ana"]);
    const bos = [await bo.submit({ name: "bo-0", command: "true", gpus: 1, constraints: { labels: { pool: "fair" } } }), await bo.submit({ name: "bo-1", command: "true", gpus: 1, constraints: { labels: { pool: "fair" } } })];
    const waiting = await waitFor("ana's next waits behind fair share", () => ana.job(anas[2]!.id), (j) => !!j.waiting, 10_000);
    expect(waiting.waiting).toMatch(/GPUs|fair share/);
    // The first GPU to free goes to bo; the second too.
    await gpuHost.report(first[0]!, "succeeded", 0);
    const next = await waitFor("a lease", () => takeAll(gpuHost), (ls) => ls.length > 0, 10_000);
    expect(next.map((l) => l.job.owner)).toEqual(["bo"]);
    await gpuHost.report(first[1]!, "succeeded", 0);
    const then = await waitFor("a lease", () => takeAll(gpuHost), (ls) => ls.length > 0, 10_000);
    expect(then.map((l) => l.job.owner)).toEqual(["bo"]);
    expect(new Set([...next, ...then].map((l) => l.job.id))).toEqual(new Set(bos.map((j) => j.id)));
    for (const l of [...next, ...then]) await gpuHost.report(l, "succeeded", 0);
    for (const j of anas) await admin.cancel(j.id).catch(() => undefined);

    const usage = await rawRequest(d.url, "GET", "/api/usage", { token: d.adminToken });
    expect(usage.status).toBe(200);
    const names = usage.json.people.map((p: { owner: string | null }) => p.owner);
    expect(names).toEqual(expect.arrayContaining(["ana", "bo"]));
    expect(usage.json.halfLifeDays).toBe(7);
  });
});

describe("limits", () => {
  it("holds a person to their GPUs at once, with the reason shown, and refuses queued jobs past their limit under 50 concurrent submits", async () => {
    const gpuHost = await host("limit-gpus", 4, 64, 512, { pool: "limit" });
    const cy = await person("cy");
    expect((await rawRequest(d.url, "PUT", "/api/users/cy/limits", { token: d.adminToken, body: { maxGpus: 1, maxQueued: 10 } })).status).toBe(200);
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => cy.submit({ name: `cy-${i}`, command: "true", gpus: 1, constraints: { labels: { pool: "limit" } } })));
    const accepted = results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<Job>).value);
    const refused = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as { status: number; message: string });
    // At most 10 queued at any time: one of the accepted may already have left the queue for the GPU.
    expect(accepted.length).toBeGreaterThanOrEqual(10);
    expect(accepted.length).toBeLessThanOrEqual(11);
    expect(refused.every((e) => e.status === 429 && /at most 10 queued jobs/.test(e.message))).toBe(true);
    const leases = await waitFor("one lease", () => takeAll(gpuHost), (ls) => ls.length > 0, 10_000);
    expect(leases).toHaveLength(1);
    const held = accepted.find((j) => j.id !== leases[0]!.job.id)!;
    const why = await waitFor("a reason", () => cy.job(held.id), (j) => !!j.waiting, 10_000);
    expect(why.waiting).toMatch(/cy holds 1 of at most 1 GPU at once/);
    expect(await takeAll(gpuHost)).toEqual([]);
    for (const l of leases) await gpuHost.report(l, "succeeded", 0);
    for (const j of accepted) await admin.cancel(j.id).catch(() => undefined);
  });

  it("refuses at submit a job no host could ever run, saying why, and takes one pinned to a host that may join later", async () => {
    const r = await rawRequest(d.url, "POST", "/api/jobs", { token: d.adminToken, body: { command: "true", gpus: 64 } });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/no host in this lab could ever run it/);
    const label = await rawRequest(d.url, "POST", "/api/jobs", { token: d.adminToken, body: { command: "true", gpus: 1, constraints: { labels: { site: "nowhere" } } } });
    expect(label.status).toBe(400);
    const later = await rawRequest(d.url, "POST", "/api/jobs", { token: d.adminToken, body: { command: "true", gpus: 1, constraints: { hostId: "not-yet" } } });
    expect(later.status, later.text).toBe(201);
    await admin.cancel(later.json.id);
  });
});
