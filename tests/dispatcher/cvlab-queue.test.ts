// CVLab-Kit's clients against a real dispatcher process: the requests in exactly the shapes its web
// UI and scripts send to POST /api/queue/add (each cites the CVLab-Kit file and line it comes
// from, repository deveronica/cvlab-kit), and the replies read the way its UI reads them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherClient } from "../../core/client.js";
import { assertPriorityAllowed, RequestProblem } from "../../dispatcher/cvlab.js";
import { rawRequest } from "../helpers/http.js";
import { startInProcessDispatcher, type InProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";

let d: InProcessDispatcher;
let admin: DispatcherClient;

beforeAll(async () => {
  d = await startInProcessDispatcher({ env: { LABRIG_CVLAB_DIR: "/srv/cvlab-kit" } });
  admin = d.admin();
});
afterAll(async () => {
  await d?.stop();
  d?.cleanup();
});

/** A POST as CVLab-Kit's UI makes it (fetch, JSON body), with labrig's token header added. */
async function post(path: string, body: unknown) {
  const response = await fetch(d.url + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", authorization: `Bearer ${d.adminToken}` },
    body: JSON.stringify(body),
  });
  return { response, result: (await response.json()) as any };
}

// A config in CVLab-Kit's style (components as `name(args)`, a tuple, nested keys, a list value).
const experiment = [
  "# CIFAR-10, ResNet18",
  "project: cifar_baselines",
  "agent: classification",
  "model: resnet18(num_classes=10)",
  "dataset:",
  "  train: cifar10(split=train)",
  "  val: cifar10(split=val)",
  "optimizer: adam(lr=0.001)",
  "betas: !!python/tuple [0.9, 0.999]",
  "lr: [0.001, 0.01]",
  "device: 3",
  "",
].join("\n");

describe("POST /api/queue/add in CVLab-Kit's shapes", () => {
  it("queues the web UI's Execute request and answers what ExecuteView and RerunModal read", async () => {
    // web_helper/frontend/src/features/execute/view/ExecuteView.tsx:132-135
    const { response, result } = await post("/api/queue/add", { config: experiment, device: "any", priority: "normal" });
    // ExecuteView.tsx:137-139: `if (!response.ok) throw ...`, then `result.experiment_uid`.
    expect(response.ok).toBe(true);
    expect(response.status).toBe(200); // queue.py:313 declares no status code: FastAPI answers 200
    expect(result.experiment_uid).toMatch(/^[0-9a-z]{10}$/);
    // widgets/RerunModal.tsx:38-40: `result.data || result`; the job is queue.py:392's JobResponse(job=job).
    const job = (result.data || result).job;
    expect(job).toMatchObject({
      experiment_uid: result.experiment_uid,
      project: "cifar_baselines", // queue.py:337-339: the YAML's project key when none is sent
      status: "queued",
      priority: "normal",
      config_path: `/api/jobs/${result.experiment_uid}/config`,
      working_directory: "/srv/cvlab-kit",
      metadata: { device_preference: "any" },
    });
    expect(job.name).toMatch(/^job_\d{8}_\d{6}$/);
    // labrig's own fields sit beside it.
    expect(result).toMatchObject({ id: result.experiment_uid, state: "queued", gpus: 1, command: "uv run main.py --config {config_path} --fast" });

    // The YAML is kept byte for byte, and CVLab-Kit's own GET /api/queue/config/{uid} (queue.py:116) serves it.
    expect(await admin.jobConfig(result.id)).toBe(experiment);
    const viaCvlab = await fetch(`${d.url}/api/queue/config/${result.id}`, { headers: { authorization: `Bearer ${d.adminToken}` } });
    expect(await viaCvlab.text()).toBe(experiment);
    expect((await admin.job(result.id)) as any).toMatchObject({ hasConfig: true, workdir: "/srv/cvlab-kit" });
    await admin.cancel(result.id);
  });

  it("queues the distributed-setup guide's script request, name and project given", async () => {
    // docs/tutorials/distributed_setup.md:205-217 (requests.post(url, json=data)), with name and
    // project as DirectJobSubmission (queue.py:299-310) allows.
    const data = {
      config: "\nproject: urgent_experiment\nmodel: resnet18(num_classes=10)\noptimizer: adam(lr=0.001)\nloss: cross_entropy\n    ",
      priority: "high",
      device: "any",
    };
    const plain = await post("/api/queue/add", data);
    expect(plain.result.job).toMatchObject({ project: "urgent_experiment", priority: "high", status: "queued" });
    const named = await post("/api/queue/add", { ...data, name: "resnet-sweep", project: "vision" });
    expect(named.result.job).toMatchObject({ name: "resnet-sweep", project: "vision" });
    await admin.cancel(plain.result.id);
    await admin.cancel(named.result.id);
  });

  it("takes urgent, above high, and CVLab-Kit's capitalised priority words", async () => {
    // queue/models/queue.py:24-30 JobPriority; queue.py:363 lower-cases what it is sent.
    const urgent = await post("/api/queue/add", { config: "model: resnet18\n", device: "any", priority: "URGENT" });
    expect(urgent.result.job.priority).toBe("urgent");
    expect((await admin.job(urgent.result.id)).priority).toBe("urgent");
    // labrig's first version of this call took a number (> 0 high, < 0 low); that still works.
    const numeric = await post("/api/queue/add", { config_path: "a.yaml", priority: -5 });
    expect(numeric.result.priority).toBe("low");
    await admin.cancel(numeric.result.id);
    const bad = await post("/api/queue/add", { config: "model: resnet18\n", device: "any", priority: "asap" });
    expect(bad.response.status).toBe(400);
    expect(bad.result).toMatchObject({ error: "invalid_body", field: "priority" });
    await admin.cancel(urgent.result.id);
  });

  it("gives an urgent job's GPU before an older high one's", async () => {
    const agent = await new SimAgent(d.url, "urgent-host", fakeGpus(1)).register(d.joinToken);
    const hold = await admin.submit({ command: "sleep 1", constraints: { hostId: "urgent-host" } });
    const first = await agent.lease(5);
    expect(first?.job.id).toBe(hold.id);
    const high = await post("/api/queue/add", { config: "model: a\n", device: "urgent-host", priority: "high" });
    const urgent = await post("/api/queue/add", { config: "model: b\n", device: "urgent-host", priority: "urgent" });
    await agent.report(first!, "running");
    await agent.report(first!, "succeeded", 0);
    const next = await agent.lease(5);
    expect(next?.job.id).toBe(urgent.result.id);
    await admin.cancel(high.result.id);
    await admin.cancel(urgent.result.id);
  });

  it("answers malformed YAML with 400, its line and column, where ExecuteView shows errors", async () => {
    const { response, result } = await post("/api/queue/add", { config: "model: resnet18\noptimizer: [adam, sgd\nlr: 0.1\n", device: "any", priority: "normal" });
    expect(response.status).toBe(400);
    expect(result).toMatchObject({ error: "invalid_yaml", field: "config", line: 3, column: 1 });
    expect(result.message).toMatch(/^config:3:1: invalid YAML/);
    // ExecuteView.tsx:138: `throw new Error(result.detail?.detail || ...)`.
    expect(result.detail.detail).toMatch(/^Invalid YAML configuration: config:3:1/);
    const tag = await post("/api/queue/add", { config: "model: resnet18\nhead: !!python/object:os.system {}\n", device: "any" });
    expect(tag.result).toMatchObject({ error: "invalid_yaml", line: 2, column: 7 });
    const list = await post("/api/queue/add", { config: "- a\n- b\n", device: "any" });
    expect(list.result).toMatchObject({ error: "invalid_yaml", line: 1, column: 1 });
    const none = await post("/api/queue/add", { device: "any", priority: "normal" });
    expect(none.result).toMatchObject({ error: "invalid_body", field: "config" });
  });

  it("keeps the older {config_path, priority} shape (queue.py:258 /submit's JobSubmission)", async () => {
    const r = await post("/api/queue/add", { config_path: "configs/my exp.yaml", priority: "low" });
    expect(r.response.status).toBe(200);
    expect(r.result).toMatchObject({ name: "my exp", command: "uv run main.py --config 'configs/my exp.yaml' --fast", priority: "low", workdir: "/srv/cvlab-kit" });
    expect(r.result.job).toMatchObject({ config_path: "configs/my exp.yaml", status: "queued" });
    await admin.cancel(r.result.id);
  });

  it("lists the queue as CVLab-Kit's QueueView reads GET /api/queue/list (queue.py:66-84)", async () => {
    const a = await post("/api/queue/add", { config: "project: listed\nmodel: x\n", device: "any" });
    const res = await fetch(`${d.url}/api/queue/list?project=listed&status=queued`, { headers: { authorization: `Bearer ${d.adminToken}` } });
    const body = (await res.json()) as any;
    expect(body.total).toBe(1);
    expect(body.jobs[0]).toMatchObject({ experiment_uid: a.result.id, status: "queued" });
    await admin.cancel(a.result.id);
  });

  it("hands the agent the config with device mapped to its leased GPUs, the stored text unchanged", async () => {
    const agent = await new SimAgent(d.url, "gpu-a", fakeGpus(4)).register(d.joinToken);
    const two = "project: p\nbetas: !!python/tuple [0.9, 0.999]\ndevice: [2, 3]  # two GPUs\n";
    const r = await post("/api/queue/add", { config: two, device: "gpu-a", priority: "normal" });
    expect(r.result.gpus).toBe(2);
    const lease = await agent.lease(5);
    expect(lease?.job, JSON.stringify(await admin.jobs({ state: ["queued", "assigned", "running"] }))).toMatchObject({ id: r.result.id });
    expect(lease?.config).toBe("project: p\nbetas: !!python/tuple [0.9, 0.999]\ndevice: [ 0, 1 ]  # two GPUs\n");
    expect(await admin.jobConfig(r.result.id)).toBe(two);
    await agent.report(lease!, "running");
    await agent.report(lease!, "succeeded", 0);
  });
});

describe("groups and imports over HTTP", () => {
  it("submits a group in one call, lists it with ?group=, and answers 404 for an unknown group", async () => {
    const { response, result } = await post("/api/groups", {
      name: "seeds",
      jobs: [1, 2, 3].map((s) => ({ name: `seed ${s}`, command: ["python", "t.py", `--seed=${s}`], constraints: { hostId: "nowhere" } })),
    });
    expect(response.status).toBe(201);
    expect(result.group).toMatchObject({ name: "seeds", jobs: 3, states: { queued: 3 } });
    const listed = await admin.request<{ jobs: { id: string; group: string }[] }>("GET", `/api/jobs?group=${result.group.id}`);
    expect(listed.body.jobs.map((j) => j.group)).toEqual([result.group.id, result.group.id, result.group.id]);
    const cancelled = await admin.cancelGroup(result.group.id);
    expect(cancelled.group.states).toEqual({ cancelled: 3 });
    expect((await admin.cancelGroup(result.group.id)).jobs).toEqual([]);
    const unknown = await post("/api/groups/gnothere/cancel", {});
    expect(unknown.response.status).toBe(404);
    const empty = await post("/api/groups", { jobs: [] });
    expect(empty.result).toMatchObject({ error: "invalid_body", field: "jobs" });
  });

  it("refuses to import a job as running, and takes GPUs from an imported config's device", async () => {
    const base = { name: "x", project: "p", priority: "normal", createdAt: "2025-01-01T00:00:00.000Z" };
    const running = await post("/api/import/jobs", { source: "cvlab-kit", jobs: [{ ...base, externalId: "u1", state: "running" }] });
    expect(running.response.status).toBe(400);
    expect(running.result).toMatchObject({ field: "jobs.0.state" });
    const ok = await post("/api/import/jobs", { source: "test-src", jobs: [{ ...base, externalId: "u2", state: "queued", config: "device: [0, 1]\n" }] });
    const job = await admin.job(ok.result.imported[0].id);
    // A simulated host from an earlier test may take it at once: queued here means runnable.
    expect(job).toMatchObject({ gpus: 2, createdAt: base.createdAt });
    expect(["queued", "assigned"]).toContain(job.state);
    await admin.cancel(job.id);
  });
});

describe("who may ask for urgent", () => {
  it("lets an admin and refuses a member with 403 on every route that takes a priority, and high without a grant", async () => {
    const added = await rawRequest(d.url, "POST", "/api/users", { token: d.adminToken, body: { name: "cvlab-member", role: "member" } });
    expect(added.status, added.text).toBe(201);
    const member = added.json.token as string;
    const tries: [string, unknown][] = [
      ["/api/queue/add", { config: "model: resnet18\n", device: "any", priority: "urgent" }],
      ["/api/jobs", { command: "true", gpus: 0, priority: "urgent" }],
      ["/api/groups", { jobs: [{ command: "true", gpus: 0, priority: "urgent" }] }],
    ];
    for (const [path, body] of tries) {
      const r = await rawRequest(d.url, "POST", path, { token: member, body });
      expect(r.status, `${path}: ${r.text}`).toBe(403);
      expect(r.json.message).toMatch(/urgent is for admins/);
    }
    // high needs an admin's grant (issue 15's limits); once granted it is the member's to ask.
    const high = () => rawRequest(d.url, "POST", "/api/queue/add", { token: member, body: { config: "model: resnet18\n", device: "any", priority: "high" } });
    const refused = await high();
    expect(refused.status).toBe(403);
    expect(refused.json.message).toMatch(/high is for admins and people granted it \(labrig users limits cvlab-member --high\)/);
    expect((await rawRequest(d.url, "PUT", "/api/users/cvlab-member/limits", { token: d.adminToken, body: { high: true } })).status).toBe(200);
    const granted = await high();
    expect(granted.status, granted.text).toBe(200);
    await admin.cancel(granted.json.id);
    const urgent = await rawRequest(d.url, "POST", "/api/jobs", { token: d.adminToken, body: { command: "true", gpus: 0, priority: "urgent", constraints: { hostId: "nowhere" } } });
    expect(urgent.status).toBe(201);
    await admin.cancel(urgent.json.id);
    expect(() => assertPriorityAllowed("high", "member")).not.toThrow();
    expect(() => assertPriorityAllowed("urgent", "member")).toThrow(RequestProblem);
  });
});

