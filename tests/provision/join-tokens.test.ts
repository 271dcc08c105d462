// Which join token `labrig provision` gives a GPU host: the decision as data (no dispatcher), the
// admin token it asks with, and the tokens it makes at a real dispatcher process — one use each,
// so the second registration with one is refused, and none made for a host already registered.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JoinToken } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";
import { ApiError } from "../../core/errors.js";
import { parseInventory, type Inventory } from "../../provision/inventory.js";
import { adminTokenFor, decideJoinToken, dispatcherJoinTokens, hostJoinTokenTtlS, joinTokenInEnv, wouldMintToken } from "../../provision/join-tokens.js";
import { renderAgentEnv } from "../../provision/steps/agent.js";
import { startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";

const dir = mkdtempSync(join(tmpdir(), "labrig-join-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const healthy = (hostId: string) => ({ hostId, status: "healthy" as const });

describe("deciding a host's join token", () => {
  it("makes one for a host the dispatcher does not list", () => {
    expect(decideJoinToken({ host: "gpu-new", devices: [healthy("gpu-a")], hasCurrent: false })).toEqual({ use: "mint", why: "a single-use join token made for it: not registered yet" });
    // An env file left by an earlier run that never registered is replaced, not kept.
    expect(decideJoinToken({ host: "gpu-new", devices: [], hasCurrent: true }).use).toBe("mint");
  });

  it("keeps the env file's join token on a registered host, so a re-run changes nothing", () => {
    for (const status of ["healthy", "stale", "draining"] as const) {
      expect(decideJoinToken({ host: "gpu-a", devices: [{ hostId: "gpu-a", status }], hasCurrent: true }).use, status).toBe("current");
    }
  });

  it("makes one for a registered host without a join token in its env file, or one gone disconnected (its agent may need to register again)", () => {
    expect(decideJoinToken({ host: "gpu-a", devices: [healthy("gpu-a")], hasCurrent: false }).why).toMatch(/registered, but its env file holds no join token/);
    expect(decideJoinToken({ host: "gpu-a", devices: [{ hostId: "gpu-a", status: "disconnected" }], hasCurrent: true }).why).toMatch(/disconnected.*labrig hosts reset/);
  });

  it("falls back to the lab's shared token without an admin token, or when the dispatcher cannot be asked, saying why", () => {
    expect(decideJoinToken({ host: "gpu-a", noAdmin: "no admin token for lab x's dispatcher", hasCurrent: false })).toEqual({ use: "shared", why: "the lab's shared join token: no admin token for lab x's dispatcher" });
    expect(decideJoinToken({ host: "gpu-a", devices: { error: "connect ECONNREFUSED" }, hasCurrent: true })).toEqual({ use: "shared", why: "the lab's shared join token: the dispatcher could not be asked (connect ECONNREFUSED)" });
  });
});

describe("the admin token provisioning asks with", () => {
  const inv = parseInventory("lab: {name: tok}\nhosts: {g: {address: h, roles: [gpu]}}\n", "i.yaml", {});
  const home = join(dir, "home");
  const saved = join(home, "labs", "tok");
  mkdirSync(saved, { recursive: true });

  it("is LABRIG_ADMIN_TOKEN, else the one read back from the dispatcher host, else LABRIG_TOKEN", () => {
    expect(adminTokenFor(inv, { LABRIG_HOME: home, LABRIG_TOKEN: "lru_member" })).toEqual({ token: "lru_member", from: "LABRIG_TOKEN" });
    writeFileSync(join(saved, "admin-token"), "lra_saved\n");
    writeFileSync(join(saved, "dispatcher.json"), JSON.stringify({ host: "nas", url: "http://nas:8000", adminTokenFile: join(saved, "admin-token"), joinTokenFile: join(saved, "join-token") }));
    expect(adminTokenFor(inv, { LABRIG_HOME: home, LABRIG_TOKEN: "lru_member" })).toEqual({ token: "lra_saved", from: join(saved, "admin-token") });
    expect(adminTokenFor(inv, { LABRIG_HOME: home, LABRIG_ADMIN_TOKEN: " lra_env\n" })).toEqual({ token: "lra_env", from: "LABRIG_ADMIN_TOKEN" });
  });

  it("is none, said in words, when nothing is known", () => {
    expect(adminTokenFor(inv, { LABRIG_HOME: join(dir, "empty") })).toEqual({ none: "no admin token for lab tok's dispatcher (none read back from its host, LABRIG_ADMIN_TOKEN and LABRIG_TOKEN unset)" });
  });
});

it("reads the join token back out of an agent env file as the agent step writes it", () => {
  const inv = parseInventory('lab: {name: x, dispatcher: {url: "http://nas:8000"}}\nhosts: {g: {address: h, roles: [gpu]}}\n', "i.yaml", {});
  expect(joinTokenInEnv(renderAgentEnv({ host: inv.hosts[0]!, inventory: inv }, "lrj_abc"))).toBe("lrj_abc");
  expect(joinTokenInEnv("LABRIG_URL=http://x\n")).toBeUndefined();
  expect(joinTokenInEnv("LABRIG_JOIN_TOKEN=\n")).toBeUndefined();
});

describe("join tokens made at a real dispatcher", () => {
  let d: DispatcherProcess;
  let inv: Inventory;
  let admin: DispatcherClient;
  const env = () => ({ LABRIG_HOME: join(dir, "nothing-saved"), LABRIG_ADMIN_TOKEN: d.adminToken });
  const register = (token: string, hostId: string) => new DispatcherClient({ url: d.url }).register(token, { hostId, gpus: [] });
  const tokensFor = async (host: string) => (await admin.request<{ joinTokens: JoinToken[] }>("GET", "/api/join-tokens")).body.joinTokens.filter((t) => t.note === `labrig provision: ${host}`);

  beforeAll(async () => {
    d = await startDispatcher();
    admin = d.admin();
    writeFileSync(join(dir, "shared-join-token"), `${d.joinToken}\n`);
    inv = parseInventory(`lab: {name: real, dispatcher: {url: "${d.url}", joinTokenFile: ${join(dir, "shared-join-token")}}}\nhosts: {gpu-new: {address: h, roles: [gpu]}}\n`, "i.yaml", {});
  });
  afterAll(async () => {
    await d?.stop();
    d?.cleanup();
  });

  it("makes a single-use, hour-long token naming the host, which registers that host once and is then used up", async () => {
    const tokens = dispatcherJoinTokens({ inventory: inv, dryRun: false, env: env() });
    const started = Date.now();
    const grant = await tokens.forHost("gpu-new", {});
    expect(grant.kind).toBe("minted");
    expect(grant.token).toMatch(/^lrj_/);
    expect(grant.token).not.toBe(d.joinToken);
    expect(grant.why).toMatch(/^a single-use join token made for it: not registered yet \(id [0-9a-f]{8}, until \d{4}-/);
    // The check after apply gets the same token, not a second one.
    expect(await tokens.forHost("gpu-new", { current: grant.token })).toEqual(grant);
    const [info, ...more] = await tokensFor("gpu-new");
    expect(more).toEqual([]);
    expect(info).toMatchObject({ usesLeft: 1, uses: 0, usable: true, createdBy: "admin" });
    expect(Math.abs(Date.parse(info!.expiresAt!) - (started + hostJoinTokenTtlS * 1000))).toBeLessThan(30_000);

    expect((await register(grant.token, "gpu-new")).agentToken).toMatch(/^lrt_/);
    const again = await register(grant.token, "gpu-other").catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ApiError);
    expect((again as ApiError).status).toBe(401);
    expect((await admin.devices()).map((x) => x.hostId)).toEqual(["gpu-new"]);
    expect((await tokensFor("gpu-new"))[0]).toMatchObject({ usesLeft: 0, uses: 1, usable: false });
  });

  it("makes none on the next run for the registered host, which keeps its env file's token", async () => {
    const tokens = dispatcherJoinTokens({ inventory: inv, dryRun: false, env: env() });
    const grant = await tokens.forHost("gpu-new", { current: "lrj_what_the_env_file_holds" });
    expect(grant).toMatchObject({ kind: "current", token: "lrj_what_the_env_file_holds" });
    expect(await tokensFor("gpu-new")).toHaveLength(1);
  });

  it("makes none in a dry run", async () => {
    const grant = await dispatcherJoinTokens({ inventory: inv, dryRun: true, env: env() }).forHost("gpu-dry", {});
    expect(grant).toMatchObject({ kind: "would-mint", token: wouldMintToken });
    expect(await tokensFor("gpu-dry")).toEqual([]);
  });

  it("falls back to the shared token when the token it has may not make join tokens, or none is known, or the dispatcher does not answer", async () => {
    const member = (await admin.request<{ token: string }>("POST", "/api/users", { body: { name: "mia", role: "member" } })).body.token;
    const asMember = await dispatcherJoinTokens({ inventory: inv, dryRun: false, env: { LABRIG_HOME: join(dir, "nothing-saved"), LABRIG_TOKEN: member } }).forHost("gpu-m", {});
    expect(asMember.kind).toBe("shared");
    expect(asMember.token).toBe(d.joinToken);
    expect(asMember.why).toMatch(new RegExp(`^the lab's shared join token: the dispatcher at ${d.url} made none \\(.*admin`));
    expect(await tokensFor("gpu-m")).toEqual([]);

    const none = await dispatcherJoinTokens({ inventory: inv, dryRun: false, env: { LABRIG_HOME: join(dir, "nothing-saved") } }).forHost("gpu-n", {});
    expect(none).toMatchObject({ kind: "shared", token: d.joinToken, why: expect.stringContaining("no admin token for lab real's dispatcher") });

    const gone = parseInventory(`lab: {name: real, dispatcher: {url: "http://127.0.0.1:1", joinTokenFile: ${join(dir, "shared-join-token")}}}\nhosts: {g: {address: h, roles: [gpu]}}\n`, "i.yaml", {});
    const unreachable = await dispatcherJoinTokens({ inventory: gone, dryRun: false, env: env() }).forHost("g", {});
    expect(unreachable).toMatchObject({ kind: "shared", token: d.joinToken });
    expect(unreachable.why).toMatch(/^the lab's shared join token: the dispatcher could not be asked \(GET http:\/\/127\.0\.0\.1:1\/api\/devices with the token from LABRIG_ADMIN_TOKEN: cannot reach/);
  });
});
