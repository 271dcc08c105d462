// Code snapshots over the dispatcher's HTTP API, against a real dispatcher process and a real
// SQLite file: offer a manifest, upload only the blobs it lacks, submit a job with it, read it
// back as the job's agent; and every way in that a person without rights, another host's agent or
// a hostile manifest tries, refused with the reason.
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { codeSnapshotId, type CodeManifest } from "../../core/code.js";
import type { DispatcherClient } from "../../core/client.js";
import { startInProcessDispatcher, type InProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { rawRequest } from "../helpers/http.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";

let d: InProcessDispatcher;
let admin: DispatcherClient;
let member: { token: string };
const raw = (method: string, path: string, opts: Parameters<typeof rawRequest>[3] = {}) => rawRequest(d.url, method, path, opts);
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

const train = Buffer.from("print('train')\n");
const util = Buffer.from("def f(): return 1\n");
const manifest: CodeManifest = {
  version: 1,
  entries: [
    { path: "train.py", size: train.length, sha256: sha(train), mode: 0o600 },
    { path: "lib/util.py", size: util.length, sha256: sha(util), mode: 0o700 },
    { path: "util.py", link: "lib/util.py" },
  ],
  git: null,
};

beforeAll(async () => {
  d = await startInProcessDispatcher({ env: { LABRIG_HEARTBEAT_S: "1", LABRIG_CODE_LIMIT_MB: "1" } });
  admin = d.admin();
  const r = await raw("POST", "/api/users", { token: d.adminToken, body: { name: "mia", role: "member" } });
  expect(r.status, r.text).toBe(201);
  member = { token: r.json.token };
});
afterAll(async () => {
  await d?.stop();
  d?.cleanup();
});

describe("offering a snapshot", () => {
  it("answers the blobs it lacks, stores the snapshot once they are uploaded, and then lacks nothing", async () => {
    const first = await raw("POST", "/api/code/snapshots", { token: member.token, body: manifest });
    expect(first.status, first.text).toBe(200);
    expect(first.json.id).toBe(codeSnapshotId({ ...manifest, entries: [...manifest.entries].sort((a, b) => (a.path < b.path ? -1 : 1)) }));
    expect(new Set(first.json.missing)).toEqual(new Set([sha(train), sha(util)]));
    // Not stored until its blobs are here.
    expect((await raw("GET", `/api/code/snapshots/${first.json.id}`, { token: member.token })).status).toBe(404);

    for (const b of [train, util]) {
      const put = await raw("PUT", `/api/code/blobs/${sha(b)}`, { token: member.token, raw: b });
      expect(put.status, put.text).toBe(200);
      expect(put.json).toEqual({ sha256: sha(b), size: b.length });
    }
    const again = await raw("POST", "/api/code/snapshots", { token: member.token, body: manifest });
    expect(again.json).toEqual({ id: first.json.id, missing: [], files: 2, bytes: train.length + util.length });
    const info = await raw("GET", `/api/code/snapshots/${first.json.id}`, { token: member.token });
    expect(info.status).toBe(200);
    expect(info.json).toMatchObject({ snapshot: first.json.id, files: 2, bytes: train.length + util.length, createdBy: "mia" });
    expect(info.json.manifest.entries.map((e: { path: string }) => e.path)).toEqual(["lib/util.py", "train.py", "util.py"]);
    const blob = await raw("GET", `/api/code/snapshots/${first.json.id}/blobs/${sha(util)}`, { token: member.token });
    expect(blob.text).toBe(util.toString());
    // Blobs are files under the state folder, named by hash.
    expect(existsSync(join(d.stateDir, "code", "blobs", sha(util).slice(0, 2), sha(util)))).toBe(true);
  });

  it("a second offer of a tree whose files it has needs no upload", async () => {
    const moved: CodeManifest = { ...manifest, entries: [{ path: "renamed.py", size: train.length, sha256: sha(train), mode: 0o600 }] };
    const r = await raw("POST", "/api/code/snapshots", { token: d.adminToken, body: moved });
    expect(r.json.missing).toEqual([]);
  });

  it("refuses a blob whose bytes do not hash to its name, and keeps nothing of it", async () => {
    const claimed = sha("something else");
    const r = await raw("PUT", `/api/code/blobs/${claimed}`, { token: member.token, raw: Buffer.from("not that") });
    expect(r.status).toBe(400);
    expect(r.json.error).toBe("sha256_mismatch");
    expect(r.json.message).toContain(sha("not that"));
    const dir = join(d.stateDir, "code", "blobs", claimed.slice(0, 2));
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });

  it("refuses a blob larger than the snapshot limit before reading it", async () => {
    const big = Buffer.alloc(1024 * 1024 + 1);
    const r = await raw("PUT", `/api/code/blobs/${sha(big)}`, { token: member.token, raw: big });
    expect(r.status).toBe(413);
  });

  const hostile: [string, CodeManifest["entries"][number], RegExp][] = [
    ["an entry that climbs out", { path: "../../etc/cron.d/x", size: 1, sha256: sha("x"), mode: 0o600 }, /leaves the snapshot/],
    ["an absolute path", { path: "/etc/passwd", size: 1, sha256: sha("x"), mode: 0o600 }, /absolute/],
    ["a link to /", { path: "root", link: "/" }, /absolute path/],
    ["a link that climbs out", { path: "a/up", link: "../../x" }, /outside the tree/],
    ["a setuid mode", { path: "run.sh", size: 1, sha256: sha("x"), mode: 0o4755 }, /owner's read, write and execute bits/],
    ["a 10 GB claimed size", { path: "data.bin", size: 10 * 1024 ** 3, sha256: sha("x"), mode: 0o600 }, /over the snapshot limit/],
    ["a name with an escape sequence", { path: "a\u001b[2Jb", size: 1, sha256: sha("x"), mode: 0o600 }, /control characters/],
  ];
  it.each(hostile)("refuses a manifest with %s, naming the entry", async (_what, entry, reason) => {
    const r = await raw("POST", "/api/code/snapshots", { token: member.token, body: { version: 1, entries: [entry], git: null } });
    expect(r.status, r.text).toBe(400);
    expect(r.json.error).toBe("invalid_manifest");
    expect(r.json.message).toMatch(reason);
  });

  it("refuses a file under a link, and a name listed twice", async () => {
    const under = await raw("POST", "/api/code/snapshots", {
      token: member.token,
      body: { version: 1, entries: [{ path: "lib", link: "other" }, { path: "lib/x.py", size: 1, sha256: sha("x"), mode: 0o600 }], git: null },
    });
    expect(under.json.message).toMatch(/lies under 'lib', which is a symbolic link/);
    const twice = await raw("POST", "/api/code/snapshots", {
      token: member.token,
      body: { version: 1, entries: [manifest.entries[0], manifest.entries[0]], git: null },
    });
    expect(twice.json.message).toMatch(/listed twice/);
  });
});

describe("who may", () => {
  it("answers 401 without a token and with a wrong one, on every code route", async () => {
    const id = sha("any");
    for (const token of [undefined, "wrong"]) {
      for (const [method, path] of [
        ["POST", "/api/code/snapshots"],
        ["PUT", `/api/code/blobs/${id}`],
        ["GET", `/api/code/snapshots/${id}`],
        ["GET", `/api/code/snapshots/${id}/blobs/${id}`],
        ["GET", "/api/code/usage"],
      ] as const) {
        const r = await raw(method, path, { token, body: method === "GET" ? undefined : manifest });
        expect(r.status, `${method} ${path} ${token}`).toBe(401);
      }
    }
  });

  it("lets no agent create snapshots, and an agent read one only while a job of its host uses it", async () => {
    const offer = await admin.codeOffer(manifest);
    const mine = await new SimAgent(d.url, "code-host-a", fakeGpus(1)).register(d.joinToken);
    const other = await new SimAgent(d.url, "code-host-b", fakeGpus(1)).register(d.joinToken);
    const agentToken = mine.client.token!;
    expect((await raw("POST", "/api/code/snapshots", { token: agentToken, body: manifest })).status).toBe(403);
    expect((await raw("PUT", `/api/code/blobs/${sha(train)}`, { token: agentToken, raw: train })).status).toBe(403);
    // No job on this host uses it yet.
    expect((await raw("GET", `/api/code/snapshots/${offer.id}`, { token: agentToken })).status).toBe(403);

    const job = await admin.submit({ command: ["python3", "train.py"], gpus: 1, code: offer.id, constraints: { hostId: "code-host-a" } });
    expect(job.code).toMatchObject({ snapshot: offer.id, files: 2, git: null });
    await mine.heartbeat();
    const lease = await mine.lease(5);
    expect(lease?.job.id).toBe(job.id);
    expect(lease?.job.code?.snapshot).toBe(offer.id);
    const got = await raw("GET", `/api/code/snapshots/${offer.id}`, { token: agentToken });
    expect(got.status).toBe(200);
    const blob = await raw("GET", `/api/code/snapshots/${offer.id}/blobs/${sha(train)}`, { token: agentToken });
    expect(blob.text).toBe(train.toString());
    // A blob the snapshot does not name is not handed out through it.
    expect((await raw("GET", `/api/code/snapshots/${offer.id}/blobs/${sha("x")}`, { token: agentToken })).status).toBe(404);
    // Another host's agent learns nothing of it.
    const theirs = await raw("GET", `/api/code/snapshots/${offer.id}`, { token: other.client.token! });
    expect(theirs.status).toBe(403);
    expect(theirs.text).not.toContain("train.py");
    expect((await raw("GET", `/api/code/snapshots/${offer.id}/blobs/${sha(train)}`, { token: other.client.token! })).status).toBe(403);

    await mine.report(lease!, "running");
    await mine.report(lease!, "succeeded", 0);
    expect((await raw("GET", `/api/code/snapshots/${offer.id}`, { token: agentToken })).status).toBe(403);
  });

  it("refuses a job naming a snapshot it does not have, and a workdir that leaves the snapshot", async () => {
    const unknown = await raw("POST", "/api/jobs", { token: member.token, body: { command: "true", gpus: 0, code: sha("nothing") } });
    expect(unknown.status).toBe(400);
    expect(unknown.json.message).toMatch(/not on this dispatcher; offer it first/);
    const offer = await admin.codeOffer(manifest);
    for (const workdir of ["../up", "/srv/elsewhere"]) {
      const r = await raw("POST", "/api/jobs", { token: member.token, body: { command: "true", gpus: 0, code: offer.id, workdir } });
      expect(r.status, workdir).toBe(400);
      expect(r.json.field).toBe("workdir");
    }
    const inside = await raw("POST", "/api/jobs", { token: member.token, body: { command: "true", gpus: 0, code: offer.id, workdir: "lib" } });
    expect(inside.status, inside.text).toBe(201);
    const sweep = await raw("POST", "/api/groups", { token: member.token, body: { jobs: [{ command: "true", gpus: 0, code: sha("nothing") }] } });
    expect(sweep.status).toBe(400);
    expect(sweep.json.field).toBe("jobs.0.code");
  });

  it("counts what it keeps", async () => {
    const u = await raw("GET", "/api/code/usage", { token: member.token });
    expect(u.status).toBe(200);
    expect(u.json.snapshots).toBeGreaterThanOrEqual(2);
    expect(u.json.blobs).toBe(2);
    expect(u.json.bytes).toBe(train.length + util.length);
  });
});
