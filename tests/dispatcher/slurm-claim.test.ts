// The dispatcher in slurm mode, in-process: its settings, its own scheduler assigning nothing, the
// driver's sbatch and scancel (against a recording stand-in for the controller's shell: no Slurm
// here), the claim route's 401/400/409 answers with Fastify's inject, and the batch script itself
// run by bash against the dispatcher on a loopback port, claiming for a registered agent and
// exiting with the job's end.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../core/errors.js";
import { configFromEnv, openDispatcher, slurmSettingsFromEnv, type OpenDispatcher } from "../../dispatcher/main.js";
import { batchScript } from "../../dispatcher/slurm-script.js";
import { SlurmDriver } from "../../dispatcher/slurm-driver.js";
import { SlurmViewReader } from "../../dispatcher/slurm-view.js";
import { SMALL_JOB_DEFAULTS } from "../helpers/dispatcher-process.js";
import { fakeGpus } from "../helpers/sim-agent.js";

/** Stands in for the controller's shell: records each command and its stdin, answers sbatch with job ids from 100. */
class RecordingController {
  readonly host = "fake-controller";
  commands: { command: string; input?: string }[] = [];
  failSbatch = false;
  failView = false;
  /** What `scontrol show config` prints of accounting. */
  config = "AccountingStorageType   = accounting_storage/none\n";
  /** What squeue prints. */
  queue = "100|RUNNING|gpu-a|None|1:02|5:05|gres/gpu:1|(null)|labrig-j1-train\n101|PENDING||Resources|0:00|5:05|gres/gpu:2|(null)|labrig-j2\n";
  private nextId = 100;
  async run(command: string, opts: { input?: string | Buffer } = {}): Promise<string> {
    this.commands.push({ command, ...(opts.input !== undefined ? { input: opts.input.toString() } : {}) });
    if (command.startsWith("sinfo")) {
      if (this.failView) throw new Error("sinfo: error: Unable to contact slurm controller (connect failure)");
      return "gpu-a|gpu*|mixed|1/1/0/2|3936|gpu:fake:2|none\ngpu-b|gpu*|idle|0/2/0/2|3936|gpu:fake:1|none\n";
    }
    if (command.startsWith("squeue")) return this.failView ? "" : this.queue;
    if (command === "scontrol show config") return this.config;
    if (command.startsWith("sbatch")) {
      if (this.failSbatch) throw new Error("sbatch: error: Batch job submission failed: Unable to contact slurm controller");
      return `${this.nextId++}\n`;
    }
    return "";
  }
  async close(): Promise<void> {}
}

let dir: string;
let d: OpenDispatcher;
let controller: RecordingController;
let env: Record<string, string>;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "labrig-slurm-claim-"));
  writeFileSync(join(dir, "id_ed25519"), "not used: the controller is a stand-in\n", { mode: 0o600 });
  writeFileSync(join(dir, "known_hosts"), "");
  env = {
    ...SMALL_JOB_DEFAULTS,
    LABRIG_HEARTBEAT_S: "1",
    LABRIG_SCHEDULER: "slurm",
    LABRIG_SLURM_SSH: "slurm@controller:2222",
    LABRIG_SLURM_IDENTITY: join(dir, "id_ed25519"),
    LABRIG_SLURM_KNOWN_HOSTS: join(dir, "known_hosts"),
    LABRIG_SLURM_DISPATCHER_URL: "http://dispatcher.lab:8000",
  };
  controller = new RecordingController();
  d = openDispatcher(join(dir, "state"), env, undefined, controller);
  await d.app.ready();
});
afterEach(async () => {
  await d?.close();
  rmSync(dir, { recursive: true, force: true });
});

const admin = () => ({ authorization: `Bearer ${d.admin.token}` });

async function register(hostId: string, gpus = 2): Promise<string> {
  const r = await d.app.inject({ method: "POST", url: "/api/agents/register", headers: { authorization: `Bearer ${d.join.token}` }, payload: { hostId, gpus: fakeGpus(gpus) } });
  expect(r.statusCode, r.body).toBe(200);
  return r.json().agentToken as string;
}

async function submit(body: Record<string, unknown> = {}): Promise<{ id: string; attempt: number }> {
  const r = await d.app.inject({ method: "POST", url: "/api/jobs", headers: admin(), payload: { command: ["python", "train.py"], gpus: 1, ...body } });
  expect(r.statusCode, r.body).toBe(201);
  return r.json();
}

const claim = (token: string | undefined, payload: unknown) =>
  d.app.inject({ method: "POST", url: "/api/slurm/claim", headers: token ? { authorization: `Bearer ${token}` } : {}, payload: payload as object });

describe("slurm settings", () => {
  it("names the variable that is wrong or missing", () => {
    const without = (name: string) => {
      const e: Record<string, string> = { ...env };
      delete e[name];
      return e;
    };
    const fails = (e: Record<string, string>, name: string, what: RegExp) => {
      let err: unknown;
      try {
        slurmSettingsFromEnv(e);
      } catch (x) {
        err = x;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).where).toBe(name);
      expect((err as Error).message).toMatch(what);
    };
    fails({ ...env, LABRIG_SCHEDULER: "pbs" }, "LABRIG_SCHEDULER", /expected labrig or slurm, got 'pbs'/);
    fails(without("LABRIG_SLURM_SSH"), "LABRIG_SLURM_SSH", /required with LABRIG_SCHEDULER=slurm/);
    fails({ ...env, LABRIG_SLURM_SSH: "controller" }, "LABRIG_SLURM_SSH", /one host, with its user/);
    fails({ ...env, LABRIG_SLURM_SSH: "a@b:99999" }, "LABRIG_SLURM_SSH", /not user@host\[:port\]/);
    fails({ ...env, LABRIG_SLURM_SSH: "a@b,c@d" }, "LABRIG_SLURM_SSH", /one host/);
    fails({ ...env, LABRIG_SLURM_IDENTITY: join(dir, "nope") }, "LABRIG_SLURM_IDENTITY", /cannot read .*nope \(ENOENT\)/);
    fails(without("LABRIG_SLURM_KNOWN_HOSTS"), "LABRIG_SLURM_KNOWN_HOSTS", /required/);
    fails(without("LABRIG_SLURM_DISPATCHER_URL"), "LABRIG_SLURM_DISPATCHER_URL", /required/);
    fails({ ...env, LABRIG_SLURM_DISPATCHER_URL: "ftp://x" }, "LABRIG_SLURM_DISPATCHER_URL", /not an http\(s\) URL/);
    expect(() => configFromEnv({ LABRIG_SCHEDULER: "nope" })).toThrow(/LABRIG_SCHEDULER/);
  });

  it("reads the controller's address, user, port and key", () => {
    expect(slurmSettingsFromEnv(env)).toEqual({
      target: { host: "slurm controller controller", address: "controller", port: 2222, user: "slurm", identityFile: env.LABRIG_SLURM_IDENTITY },
      knownHostsFile: env.LABRIG_SLURM_KNOWN_HOSTS,
      claimUrl: "http://dispatcher.lab:8000",
    });
    expect(slurmSettingsFromEnv({})).toBeUndefined();
    expect(slurmSettingsFromEnv({ LABRIG_SCHEDULER: "labrig" })).toBeUndefined();
  });
});

describe("the dispatcher in slurm mode", () => {
  it("assigns nothing itself: a queued job waits for Slurm even with a free GPU", async () => {
    await register("gpu-a");
    const job = await submit();
    expect(d.service.scheduleNow()).toBe(0);
    expect(d.service.store.getJob(job.id)?.state).toBe("queued");
  });

  it("sbatches each queued attempt once, with its script on stdin, and records the Slurm job id", async () => {
    await register("gpu-a");
    const job = await submit({ name: "resnet", timeoutS: 600 });
    await d.slurm!.pass();
    await d.slurm!.pass();
    const sbatches = controller.commands.filter((c) => c.command.startsWith("sbatch"));
    expect(sbatches).toHaveLength(1);
    expect(sbatches[0]!.command).toBe("sbatch --parsable");
    expect(sbatches[0]!.input).toContain(`#SBATCH --job-name=labrig-${job.id}-resnet`);
    expect(sbatches[0]!.input).toContain("#SBATCH --gres=gpu:1");
    expect(sbatches[0]!.input).toContain("#SBATCH --time=15");
    // gpu-b is in sinfo but has no labrig agent to run the job.
    expect(sbatches[0]!.input).toContain("#SBATCH --exclude=gpu-b\n");
    expect(sbatches[0]!.input).toContain("url=http://dispatcher.lab:8000/api/slurm/claim");
    expect(d.service.slurmJobs.get(job.id, 1)?.slurmJobId).toBe("100");
  });

  it("keeps a job no Slurm node's agent can run in labrig's queue, and sbatches it once one can", async () => {
    const job = await submit({ gpus: 2 });
    await d.slurm!.pass();
    expect(controller.commands.filter((c) => c.command.startsWith("sbatch"))).toHaveLength(0);
    expect(d.service.store.getJob(job.id)?.state).toBe("queued");
    await register("gpu-b", 2);
    await d.slurm!.pass();
    const sbatches = controller.commands.filter((c) => c.command.startsWith("sbatch"));
    expect(sbatches).toHaveLength(1);
    expect(sbatches[0]!.input).toContain("#SBATCH --exclude=gpu-a\n");
  });

  it("with Slurm's accounting on, runs each person's jobs under their own account, made once", async () => {
    controller.config = "AccountingStorageHost   = 10.0.0.5\nAccountingStorageType   = accounting_storage/slurmdbd\n";
    await register("gpu-a");
    const person = await d.app.inject({ method: "POST", url: "/api/users", headers: admin(), payload: { name: "ana.lee", role: "member" } });
    expect(person.statusCode, person.body).toBe(201);
    const asAna = { authorization: `Bearer ${person.json().token}` };
    for (let i = 0; i < 2; i++) {
      const r = await d.app.inject({ method: "POST", url: "/api/jobs", headers: asAna, payload: { command: ["python", "train.py"], gpus: 1 } });
      expect(r.statusCode, r.body).toBe(201);
    }
    await submit();
    await d.slurm!.pass();
    const sbatches = controller.commands.filter((c) => c.command.startsWith("sbatch"));
    expect(sbatches.map((c) => /#SBATCH --account=(\S+)/.exec(c.input!)?.[1])).toEqual(["ana_lee", "ana_lee", "admin"]);
    const made = controller.commands.filter((c) => c.command.startsWith("sacctmgr")).map((c) => c.command);
    expect(made).toHaveLength(2);
    expect(made[0]).toContain("sacctmgr -i add account ana_lee ");
    expect(made[1]).toContain("sacctmgr -i add account admin ");
    expect(controller.commands.filter((c) => c.command === "scontrol show config")).toHaveLength(1);
  });

  it("with accounting off, names no account", async () => {
    await register("gpu-a");
    await submit();
    await d.slurm!.pass();
    expect(controller.commands.find((c) => c.command.startsWith("sbatch"))!.input).not.toContain("--account");
    expect(controller.commands.some((c) => c.command.startsWith("sacctmgr"))).toBe(false);
  });

  it("tries a failed sbatch again on the next pass", async () => {
    await register("gpu-a");
    controller.failSbatch = true;
    const job = await submit();
    await d.slurm!.pass();
    expect(d.service.slurmJobs.get(job.id, 1)).toBeUndefined();
    controller.failSbatch = false;
    await d.slurm!.pass();
    expect(d.service.slurmJobs.get(job.id, 1)?.slurmJobId).toBe("100");
  });

  it("scancels the Slurm job of a cancelled job, once", async () => {
    await register("gpu-a");
    const job = await submit();
    await d.slurm!.pass();
    const r = await d.app.inject({ method: "POST", url: `/api/jobs/${job.id}/cancel`, headers: admin(), payload: {} });
    expect(r.statusCode, r.body).toBe(200);
    await d.slurm!.pass();
    await d.slurm!.pass();
    expect(controller.commands.filter((c) => c.command.startsWith("scancel")).map((c) => c.command)).toEqual(["scancel 100"]);
    expect(d.service.slurmJobs.get(job.id, 1)?.cancelledAt).not.toBeNull();
  });

  it("scancels a running job's Slurm job when its cancel is asked for, before its agent has stopped it", async () => {
    const agentToken = await register("gpu-a");
    const job = await submit();
    const token = d.service.slurmJobs.reserve(job.id, 1);
    d.service.slurmJobs.setSlurmJobId(job.id, 1, "555");
    expect((await claim(token, { jobId: job.id, attempt: 1, hostId: "gpu-a", gpuIndices: [1] })).statusCode).toBe(200);
    const lease = await d.app.inject({ method: "GET", url: "/api/agents/gpu-a/lease?wait=0", headers: { authorization: `Bearer ${agentToken}` } });
    expect(lease.statusCode).toBe(200);
    await d.app.inject({ method: "POST", url: `/api/jobs/${job.id}/events`, headers: { authorization: `Bearer ${agentToken}` }, payload: { attempt: 1, state: "running" } });
    await d.app.inject({ method: "POST", url: `/api/jobs/${job.id}/cancel`, headers: admin(), payload: {} });
    await d.slurm!.pass();
    expect(controller.commands.map((c) => c.command)).toContain("scancel 555");
  });
});

describe("a Slurm job that leaves Slurm's queue without claiming its attempt", () => {
  /** A driver whose view of Slurm is read afresh each pass (the dispatcher's keeps one for 5 s). */
  const freshDriver = () => {
    const reader = new SlurmViewReader(controller, 0);
    return new SlurmDriver(d.service, { remote: controller, claimUrl: "http://dispatcher.lab:8000", slurmView: () => reader.snapshot(), log: () => {} });
  };
  const tick = () => new Promise((r) => setTimeout(r, 5));

  it("gets a new attempt, sbatched again, while retries remain, then fails naming the Slurm job", async () => {
    await register("gpu-a");
    const driver = freshDriver();
    const job = await submit({ maxRetries: 1 });
    controller.queue = "";
    await driver.pass();
    expect(d.service.slurmJobs.get(job.id, 1)?.slurmJobId).toBe("100");
    await tick();
    await driver.pass();
    expect(d.service.store.getJob(job.id)).toMatchObject({ state: "queued", attempt: 2 });
    expect(d.service.slurmJobs.get(job.id, 2)?.slurmJobId).toBe("101");
    await tick();
    await driver.pass();
    const failed = d.service.store.getJob(job.id)!;
    expect(failed.state).toBe("failed");
    expect(failed.reason).toMatch(/^Slurm job 101 ended without claiming attempt 2 \(its batch script's output: \/tmp\/labrig-slurm-101.out/);
    expect(controller.commands.filter((c) => c.command.startsWith("sbatch"))).toHaveLength(2);
  });

  it("leaves an attempt alone while Slurm still lists its job, and once it is claimed", async () => {
    await register("gpu-a");
    const driver = freshDriver();
    const job = await submit();
    controller.queue = "100|PENDING||Resources|0:00|5:05|gres/gpu:1|(null)|x\n";
    await driver.pass();
    await tick();
    await driver.pass();
    expect(d.service.store.getJob(job.id)).toMatchObject({ state: "queued", attempt: 1 });
    // Claimed, then gone from squeue: a claimed job is its agent's, and labrig's own reaper's, not this check's.
    expect(d.service.claimForSlurm(job.id, 1, "gpu-a", [0]).state).toBe("assigned");
    controller.queue = "";
    await tick();
    await driver.pass();
    expect(d.service.store.getJob(job.id)).toMatchObject({ state: "assigned", attempt: 1 });
  });
});

describe("POST /api/slurm/claim", () => {
  let job: { id: string; attempt: number };
  let token: string;
  let agentToken: string;
  const body = () => ({ jobId: job.id, attempt: 1, hostId: "gpu-a", gpuIndices: [1] });

  beforeEach(async () => {
    agentToken = await register("gpu-a");
    job = await submit();
    token = d.service.slurmJobs.reserve(job.id, 1);
  });

  it("answers 401 to no token, a wrong one, and tokens that are not claim tokens (admin, agent, join)", async () => {
    for (const t of [undefined, "lrs_wrong", d.admin.token, agentToken, d.join.token]) {
      const r = await claim(t, body());
      expect(r.statusCode, `${t}: ${r.body}`).toBe(401);
    }
    expect(d.service.store.getJob(job.id)?.state).toBe("queued");
  });

  it("answers 401 to another job's claim token, and to this job's token for another attempt", async () => {
    const other = await submit();
    const otherToken = d.service.slurmJobs.reserve(other.id, 1);
    expect((await claim(otherToken, body())).statusCode).toBe(401);
    expect((await claim(token, { ...body(), attempt: 2 })).statusCode).toBe(401);
    expect(d.service.store.getJob(job.id)?.state).toBe("queued");
  });

  it("answers 400 naming the field to a malformed body", async () => {
    const cases: [unknown, string][] = [
      [{ attempt: 1, hostId: "gpu-a", gpuIndices: [1] }, "jobId"],
      [{ ...body(), attempt: "1" }, "attempt"],
      [{ ...body(), hostId: "bad host!" }, "hostId"],
      [{ ...body(), gpuIndices: [-1] }, "gpuIndices.0"],
      [{ ...body(), gpuIndices: "1" }, "gpuIndices"],
      [{ ...body(), extra: true }, "extra"],
    ];
    for (const [payload, field] of cases) {
      const r = await claim(token, payload);
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().field).toBe(field);
    }
    const notJson = await d.app.inject({ method: "POST", url: "/api/slurm/claim", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, payload: "{" });
    expect(notJson.statusCode).toBe(400);
  });

  it("assigns the job to the claiming host on Slurm's GPUs, and that host's agent leases it", async () => {
    const r = await claim(token, body());
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({ jobId: job.id, attempt: 1, hostId: "gpu-a", gpuIndices: [1], state: "assigned" });
    const lease = await d.app.inject({ method: "GET", url: "/api/agents/gpu-a/lease?wait=0", headers: { authorization: `Bearer ${agentToken}` } });
    expect(lease.statusCode).toBe(200);
    expect(lease.json()).toMatchObject({ job: { id: job.id }, attempt: 1, gpuIndices: [1] });
    // The same claim again (a retried request) is no conflict.
    expect((await claim(token, body())).statusCode).toBe(200);
  });

  it("answers 409 to a claim the job cannot take: another host after it was claimed, a host with no agent, GPUs that do not fit", async () => {
    await register("gpu-b");
    expect((await claim(token, { ...body(), hostId: "gpu-x" })).json()).toMatchObject({ error: "unknown_host" });
    expect((await claim(token, { ...body(), gpuIndices: [0, 1] })).json()).toMatchObject({ error: "gpu_mismatch" });
    expect((await claim(token, { ...body(), gpuIndices: [7] })).json()).toMatchObject({ error: "gpu_mismatch" });
    expect((await claim(token, body())).statusCode).toBe(200);
    const again = await claim(token, { ...body(), hostId: "gpu-b" });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: "not_queued" });
    expect(again.json().job).toBeUndefined();
  });

  it("answers 409 once the attempt is over, and GET tells the script it is done", async () => {
    await d.app.inject({ method: "POST", url: `/api/jobs/${job.id}/cancel`, headers: admin(), payload: {} });
    expect((await claim(token, body())).statusCode).toBe(409);
    const status = await d.app.inject({ method: "GET", url: "/api/slurm/claim", headers: { authorization: `Bearer ${token}` } });
    expect(status.json()).toEqual({ jobId: job.id, attempt: 1, state: "cancelled", currentAttempt: 1, done: true, succeeded: false });
    expect((await d.app.inject({ method: "GET", url: "/api/slurm/claim" })).statusCode).toBe(401);
  });
});

describe("the batch script, run by bash against the dispatcher", () => {
  const run = promisify(execFile);

  it("claims for its node, waits while the agent runs the job, and exits 0 when it succeeded, 1 when it failed", async () => {
    await d.app.listen({ port: 0, host: "127.0.0.1" });
    const addr = d.app.server.address();
    const url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
    const agentToken = await register("node-1");
    const agent = { authorization: `Bearer ${agentToken}` };

    for (const [end, exit] of [["succeeded", 0], ["failed", 1]] as const) {
      const job = await submit();
      const token = d.service.slurmJobs.reserve(job.id, 1);
      const script = batchScript({ ...d.service.store.getJob(job.id)!, timeoutS: null }, 1, url, token);
      writeFileSync(join(dir, "batch.sh"), script, { mode: 0o700 });
      const ran = run("bash", [join(dir, "batch.sh")], { env: { SLURMD_NODENAME: "node-1", SLURM_JOB_GPUS: "1", PATH: process.env.PATH }, timeout: 60_000 }).then(
        () => 0,
        (e: { code?: number }) => e.code ?? -1,
      );
      let lease;
      for (let i = 0; i < 100 && !lease; i++) {
        const r = await d.app.inject({ method: "GET", url: "/api/agents/node-1/lease?wait=1", headers: agent });
        if (r.statusCode === 200) lease = r.json();
      }
      expect(lease).toMatchObject({ job: { id: job.id }, attempt: 1, gpuIndices: [1] });
      await d.app.inject({ method: "POST", url: `/api/jobs/${job.id}/events`, headers: agent, payload: { attempt: 1, state: "running" } });
      await d.app.inject({ method: "POST", url: `/api/jobs/${job.id}/events`, headers: agent, payload: { attempt: 1, state: end, exitCode: exit } });
      expect(await ran).toBe(exit);
    }
  }, 60_000);
});

describe("Slurm's view through the dispatcher (GET /api/slurm/status)", () => {
  const status = (headers: Record<string, string> = admin()) => d.app.inject({ method: "GET", url: "/api/slurm/status", headers });

  it("serves sinfo's nodes and squeue's jobs as read on the controller, to every person and no one else", async () => {
    const r = await status();
    expect(r.statusCode, r.body).toBe(200);
    const view = r.json();
    expect(view.nodes.map((n: { name: string; state: string }) => `${n.name} ${n.state}`)).toEqual(["gpu-a mixed", "gpu-b idle"]);
    expect(view.queue).toMatchObject([
      { id: "100", state: "RUNNING", nodes: "gpu-a", name: "labrig-j1-train" },
      { id: "101", state: "PENDING", nodes: "", reason: "Resources" },
    ]);
    expect(Date.now() - Date.parse(view.readAt)).toBeLessThan(60_000);
    expect((await status({})).statusCode).toBe(401);
    const agent = await register("gpu-a");
    expect((await status({ authorization: `Bearer ${agent}` })).statusCode).toBe(403);
    const claimToken = d.service.slurmJobs.reserve((await submit()).id, 1);
    expect((await status({ authorization: `Bearer ${claimToken}` })).statusCode).toBe(401);
  });

  it("reads Slurm once for many callers within a few seconds", async () => {
    await Promise.all([status(), status(), status()]);
    await status();
    expect(controller.commands.filter((c) => c.command.startsWith("sinfo"))).toHaveLength(1);
    expect(controller.commands.filter((c) => c.command.startsWith("squeue"))).toHaveLength(1);
  });

  it("says why a read failed, beside no view when there was none before", async () => {
    controller.failView = true;
    const view = (await status()).json();
    expect(view).toMatchObject({ readAt: null, nodes: [], queue: [] });
    expect(view.error).toMatch(/sinfo: error: Unable to contact slurm controller/);
  });
});

describe("a dispatcher that schedules jobs itself", () => {
  it("has no Slurm view: 404 not_slurm, which the CLI reads as none", async () => {
    const own = openDispatcher(join(dir, "own"), { LABRIG_HEARTBEAT_S: "1" });
    try {
      const r = await own.app.inject({ method: "GET", url: "/api/slurm/status", headers: { authorization: `Bearer ${own.admin.token}` } });
      expect(r.statusCode).toBe(404);
      expect(r.json()).toMatchObject({ error: "not_slurm", message: expect.stringMatching(/LABRIG_SCHEDULER=labrig/) });
    } finally {
      await own.close();
    }
  });
});
