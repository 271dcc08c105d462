// Every route the dispatcher serves, found from the server itself (printRoutes), asked in-process
// with Fastify's inject: no token and wrong tokens are 401 on all but the public ones, and an
// agent's token reaches nothing beyond what agents do. A route added later is covered without
// being listed here. (Crash, restart and lifecycle tests keep real processes.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDispatcher, type OpenDispatcher } from "../../dispatcher/main.js";
import { fakeGpus } from "../helpers/sim-agent.js";

let d: OpenDispatcher;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "labrig-inject-"));
  d = openDispatcher(dir, { LABRIG_HEARTBEAT_S: "1" });
  await d.app.ready();
});
afterAll(async () => {
  await d?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The routes from Fastify's printed tree: each line is `/segment (METHODS)` under its parent, four columns a level. */
function routes(): { method: string; url: string }[] {
  const out: { method: string; url: string }[] = [];
  const stack: string[] = [];
  for (const line of d.app.printRoutes({ commonPrefix: false }).split("\n")) {
    const m = /^([│├└─\s]*)(\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const url = stack.join("");
    for (const method of m[3]!.split(", ")) if (method !== "HEAD") out.push({ method, url });
  }
  return out;
}

/** A concrete URL for a route pattern: each `:param` and `*` filled in. */
const concrete = (url: string) => (url === "*" ? "/api/sync/nojob/files/job.log" : url.replace(/:sha256/g, "0".repeat(64)).replace(/:[A-Za-z]+/g, "x1"));
const PUBLIC = new Set(["GET /api/health", "GET /metrics"]);
/** What an agent's token is for: registering again, its own heartbeat and lease, its jobs' events and files, code to run, and who it is. */
const AGENT_ROUTES = new Set([
  "POST /api/agents/register", // re-registering with its own token
  "POST /api/agents/:hostId/heartbeat",
  "GET /api/agents/:hostId/lease",
  "POST /api/jobs/:id/events",
  "GET /api/code/snapshots/:id",
  "GET /api/code/snapshots/:id/blobs/:sha256",
  "GET /api/whoami",
  "POST *",
  "PUT *",
  "GET *",
  "GET /api/sync/:jobId/status",
]);

describe("every route of the dispatcher, in-process", () => {
  it("finds them all from the server", () => {
    const all = routes();
    expect(all.length).toBeGreaterThan(40);
    expect(all).toContainEqual({ method: "POST", url: "/api/jobs/:id/cancel" });
    expect(all).toContainEqual({ method: "PUT", url: "/api/users/:name/limits" });
  });

  it("answers 401 to no token and to wrong tokens on every route but the public ones", async () => {
    for (const { method, url } of routes()) {
      const key = `${method} ${url}`;
      for (const authorization of [undefined, "Bearer wrong", "Bearer lru_0000", "Bearer lrt_0000", "Basic YWRtaW46YWRtaW4=", "Bearer "]) {
        const r = await d.app.inject({ method: method as "GET", url: concrete(url), headers: authorization ? { authorization } : {}, payload: method === "GET" ? undefined : {} });
        if (PUBLIC.has(key)) expect(r.statusCode, `${key} with ${authorization}`).toBe(200);
        else expect(r.statusCode, `${key} with ${authorization ?? "no token"}: ${r.body}`).toBe(401);
      }
    }
  });

  it("gives an agent's token no route beyond what agents do (403 or 401), the join token only registration", async () => {
    const reg = await d.app.inject({ method: "POST", url: "/api/agents/register", headers: { authorization: `Bearer ${d.join.token}` }, payload: { hostId: "inject-a", gpus: fakeGpus(1) } });
    expect(reg.statusCode, reg.body).toBe(200);
    const agentToken = reg.json().agentToken as string;
    for (const { method, url } of routes()) {
      const key = `${method} ${url}`;
      if (PUBLIC.has(key)) continue;
      const asAgent = await d.app.inject({ method: method as "GET", url: concrete(url), headers: { authorization: `Bearer ${agentToken}` }, payload: method === "GET" ? undefined : {} });
      if (!AGENT_ROUTES.has(key)) expect([401, 403], `${key} as an agent: ${asAgent.statusCode} ${asAgent.body}`).toContain(asAgent.statusCode);
      if (key === "POST /api/agents/register") continue;
      const asJoin = await d.app.inject({ method: method as "GET", url: concrete(url), headers: { authorization: `Bearer ${d.join.token}` }, payload: method === "GET" ? undefined : {} });
      expect([401, 403], `${key} with the join token: ${asJoin.statusCode}`).toContain(asJoin.statusCode);
    }
  });
});
