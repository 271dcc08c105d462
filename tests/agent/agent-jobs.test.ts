// A real dispatcher and two real agents (processes, loopback HTTP, fake nvidia-smi since there is
// no GPU here): registration and heartbeats, jobs spread over both, outputs synced byte-exact,
// exit codes, timeouts and cancels with no process left behind, and the agents' local servers.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { readScopeFacts, scopeManagersToTry } from "../../agent/job-limits.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { agentStatus, steadyDispatcherEnv, groupGone, jobGroup, waitForJob, waitForState } from "./agent-helpers.js";

let d: DispatcherProcess;
let a: AgentProcess;
let b: AgentProcess;
const agents = () => [a, b];
const byHost = (hostId: string) => agents().find((x) => x.hostId === hostId)!;

beforeAll(async () => {
  d = await startDispatcher({ env: steadyDispatcherEnv });
  [a, b] = await Promise.all([
    startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-a", gpus: "h100-80gb-x1.txt", args: ["--labels", "room=b12"] }),
    startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-b", gpus: "rtx-4090-x2.txt" }),
  ]);
});

afterEach((ctx) => {
  if (ctx.task.result?.state === "fail") for (const x of [a, b]) if (x) console.error(`--- agent ${x.hostId} ---\n${x.output().slice(-4000)}`);
});

afterAll(async () => {
  for (const x of [a, b]) {
    if (!x) continue;
    await x.stop();
    x.cleanup();
  }
  if (d) {
    await d.stop();
    d.cleanup();
  }
});

describe("agents against a real dispatcher", () => {
  it("register their GPUs from nvidia-smi and heartbeat host figures", async () => {
    const devices = await waitFor("both devices with heartbeat figures", () => d.admin().devices(), (ds) => ds.length === 2 && ds.every((x) => x.status === "healthy" && x.diskFreeGiB !== null));
    const ga = devices.find((x) => x.hostId === "gpu-a")!;
    const gb = devices.find((x) => x.hostId === "gpu-b")!;
    expect(ga.gpus.map((g) => g.name)).toEqual(["NVIDIA H100 80GB HBM3"]);
    expect(ga.gpus[0]).toMatchObject({ memoryTotalMiB: 81559, temperatureC: 33, powerW: 71.94 });
    expect(ga.labels).toEqual({ room: "b12" });
    expect(ga.agentUrl).toBe(a.url);
    expect(gb.gpus.map((g) => g.index)).toEqual([0, 1]);
    expect(ga.memoryTotalMiB).toBeGreaterThan(0);
    expect(ga.gpuProblem).toBeNull();
    expect(statSync(join(a.workdir, "agent-token.json")).mode & 0o777).toBe(0o600);
  });

  it("registers only the healthy GPUs of a host with a GPU off the bus, or none without a driver, and heartbeats the reason", async () => {
    const [bus, nodriver] = await Promise.all([
      startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-bus", gpus: "fallen-off-bus.txt" }),
      startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-nodriver", gpus: "no-driver.txt" }),
    ]);
    try {
      const ds = await waitFor("both with their GPU problem", () => d.admin().devices(), (x) => ["gpu-bus", "gpu-nodriver"].every((h) => x.find((y) => y.hostId === h)?.gpuProblem));
      const busDev = ds.find((x) => x.hostId === "gpu-bus")!;
      expect(busDev.gpus.map((g) => g.index)).toEqual([0, 2]);
      expect(busDev.gpuProblem).toMatch(/GPU0000:41:00.0: Unknown Error/);
      const nd = ds.find((x) => x.hostId === "gpu-nodriver")!;
      expect(nd.gpus).toEqual([]);
      expect(nd.gpuProblem).toMatch(/no NVIDIA driver/);
    } finally {
      // Drained first, so no later test's job is handed to a host that is going away.
      await Promise.all([d.admin().drain("gpu-bus"), d.admin().drain("gpu-nodriver")]);
      await Promise.all([bus.stop(), nodriver.stop()]);
      bus.cleanup();
      nodriver.cleanup();
    }
  });

  it("spreads jobs over both agents and syncs job.log and appended CSVs byte-exact", async () => {
    const admin = d.admin();
    // Interleaved stdout/stderr, a CSV past the 64 KiB fingerprint windows appended in bursts,
    // and a config file rewritten shorter.
    const script = [
      "echo v1-first-version-of-the-config > config.yaml",
      "for i in $(seq 1 12); do",
      '  echo "step $i"; echo "warn $i" >&2',
      "  seq $((i*1000)) $((i*1000+999)) | sed 's/$/,0.125,train-loss/' >> metrics.csv",
      "  sleep 0.15",
      "done",
      "echo v3 > config.yaml",
    ].join("\n");
    // gpu-a has one GPU and gpu-b two: three 1-GPU jobs fill both hosts.
    const jobs = await Promise.all([1, 2, 3].map((n) => admin.submit({ name: `spread-${n}`, command: script, gpus: 1 })));
    const done = await Promise.all(jobs.map((j) => waitForState(admin, j.id, "succeeded", 30_000)));
    expect(new Set(done.map((j) => j.hostId))).toEqual(new Set(["gpu-a", "gpu-b"]));

    const expectedLog = Array.from({ length: 12 }, (_, k) => `step ${k + 1}\nwarn ${k + 1}\n`).join("");
    let expectedCsv = "";
    for (let i = 1; i <= 12; i++) for (let n = i * 1000; n <= i * 1000 + 999; n++) expectedCsv += `${n},0.125,train-loss\n`;
    for (const j of done) {
      const local = join(byHost(j.hostId!).workdir, "jobs", j.id, "attempt-1");
      const log = await admin.syncGet(j.id, "job.log");
      expect(log.toString()).toBe(expectedLog);
      expect(log.equals(readFileSync(join(local, "job.log")))).toBe(true);
      const csv = await admin.syncGet(j.id, "metrics.csv");
      expect(csv.length).toBeGreaterThan(128 * 1024);
      expect(csv.toString()).toBe(expectedCsv);
      expect((await admin.syncGet(j.id, "config.yaml")).toString()).toBe("v3\n");
    }
  }, 45_000);

  it("points a CVLab-Kit config's relative log_dir into the output folder, so the run's CSV is synced", async () => {
    const admin = d.admin();
    // Stands in for CVLab-Kit's CSV logger: <log_dir>/<run_name>.csv, log_dir read from the config.
    const logger = `dir=$(sed -n 's/^log_dir: //p' {config_path}); mkdir -p "$dir" && printf 'step,loss\\n1,0.9\\n' > "$dir/exp1.csv"`;
    const job = await admin.submit({ command: logger, config: "project: demo\nrun_name: exp1\nlog_dir: ./logs/demo\nlr: 0.1\n", gpus: 0 });
    await waitForState(admin, job.id, "succeeded");
    expect((await admin.syncGet(job.id, "logs/demo/exp1.csv")).toString()).toBe("step,loss\n1,0.9\n");
    // What the trainer read: the stored YAML with only log_dir moved.
    const written = (await admin.syncGet(job.id, "config.yaml")).toString();
    expect(written).toMatch(/^log_dir: \/.*\/jobs\/[0-9a-z]+\/attempt-1\/logs\/demo$/m);
    expect(written).toContain("run_name: exp1\nlog_dir: ");
    expect(await admin.jobConfig(job.id)).toContain("log_dir: ./logs/demo");
  });

  it("gives a job its GPUs, id, attempt and output dir, and archives the run with secrets redacted", async () => {
    const admin = d.admin();
    const job = await admin.submit({
      command: ["sh", "-c", 'echo "gpus=$CUDA_VISIBLE_DEVICES id=$LABRIG_JOB_ID attempt=$LABRIG_ATTEMPT pwd=$(pwd) out=$LABRIG_OUTPUT_DIR join=${LABRIG_JOIN_TOKEN:-none}"'],
      gpus: 2,
      env: { HF_TOKEN: "hf_very_secret", LR: "0.001" },
    });
    const done = await waitForState(admin, job.id, "succeeded");
    expect(done.hostId).toBe("gpu-b");
    const out = join(b.workdir, "jobs", job.id, "attempt-1");
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe(`gpus=0,1 id=${job.id} attempt=1 pwd=${out} out=${out} join=none\n`);
    const run = JSON.parse((await admin.syncGet(job.id, "run.json")).toString());
    expect(run).toMatchObject({ jobId: job.id, attempt: 1, host: { hostId: "gpu-b" }, gpuIndices: [0, 1], state: "succeeded", exitCode: 0 });
    expect(run.gpus.map((g: { name: string }) => g.name)).toEqual(["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"]);
    expect(run.env).toMatchObject({ HF_TOKEN: "<redacted>", LR: "0.001", CUDA_VISIBLE_DEVICES: "0,1" });
    expect(JSON.stringify(run)).not.toContain("hf_very_secret");
    expect(Date.parse(run.endedAt)).toBeGreaterThanOrEqual(Date.parse(run.startedAt));
    // The job's reservation as the lease carried it; with no systemd here nothing holds it (run.json says why).
    expect(run.limits).toMatchObject({ cpus: done.cpus ?? null, memoryMiB: done.memoryMiB ?? null, applied: expect.stringMatching(/^none: /) });
    const here = scopeManagersToTry(readScopeFacts());
    if ("none" in here) expect(run.limits.applied).toBe(`none: ${here.none}`);
  });

  it("reports a non-zero exit as failed with its exit code, and a missing command as exit 127", async () => {
    const admin = d.admin();
    const [three, missing] = await Promise.all([admin.submit({ command: "echo bye; exit 3", gpus: 0 }), admin.submit({ command: ["no-such-program-here"], gpus: 0 })]);
    expect(await waitForState(admin, three.id, "failed")).toMatchObject({ exitCode: 3 });
    expect(await waitForState(admin, missing.id, "failed")).toMatchObject({ exitCode: 127 });
    expect((await admin.syncGet(three.id, "job.log")).toString()).toBe("bye\n");
  });

  it("times a job out: SIGTERM to its whole group, SIGKILL after the grace, state timed_out", async () => {
    const admin = d.admin();
    // The job ignores SIGTERM and leaves a background child: only the group SIGKILL ends both.
    const job = await admin.submit({ command: "trap 'echo got TERM' TERM; sleep 300 & while true; do sleep 0.2; done", gpus: 0, timeoutS: 2 });
    const running = await waitForState(admin, job.id, "running");
    const pgid = await jobGroup(byHost(running.hostId!), job.id);
    const done = await waitForState(admin, job.id, "timed_out", 20_000);
    expect(done.reason).toBe("timed out after 2 s");
    expect(groupGone(pgid)).toBe(true);
    expect((await admin.syncGet(job.id, "job.log")).toString()).toContain("got TERM");
  });

  it("cancels a running job when the heartbeat says so, and leaves no process behind", async () => {
    const admin = d.admin();
    const job = await admin.submit({ command: "sleep 300 & sleep 300 & wait", gpus: 1 });
    const running = await waitForState(admin, job.id, "running");
    const pgid = await jobGroup(byHost(running.hostId!), job.id);
    await admin.cancel(job.id);
    const done = await waitForState(admin, job.id, "cancelled", 15_000);
    expect(done.attempt).toBe(1);
    expect(groupGone(pgid)).toBe(true);
    const st = await agentStatus(byHost(running.hostId!));
    expect(st.runningJobs.map((j) => j.id)).not.toContain(job.id);
  });

  it("serves /status, a job's log (tail and follow) and /metrics to its own or the admin token only", async () => {
    const admin = d.admin();
    expect((await fetch(`${a.url}/status`)).status).toBe(401);
    expect((await fetch(`${a.url}/status`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
    expect((await fetch(`${a.url}/status`, { headers: { authorization: `Bearer ${b.agentToken()}` } })).status).toBe(401);
    const st = await agentStatus(a, d.adminToken);
    expect(st.hostId).toBe("gpu-a");
    expect(st.gpus.map((g) => g.name)).toEqual(["NVIDIA H100 80GB HBM3"]);

    const job = await admin.submit({ command: "for i in $(seq 1 15); do echo line $i; sleep 0.1; done", gpus: 1, constraints: { hostId: "gpu-a" } });
    await waitForState(admin, job.id, "running");
    const res = await fetch(`${a.url}/jobs/${job.id}/log?follow=1`, { headers: { authorization: `Bearer ${d.adminToken}` } });
    expect(res.status).toBe(200);
    // The followed stream ends by itself once the job has ended, holding every line.
    const followed = await res.text();
    expect(followed).toBe(Array.from({ length: 15 }, (_, i) => `line ${i + 1}\n`).join(""));
    await waitForState(admin, job.id, "succeeded");
    const tail = await fetch(`${a.url}/jobs/${job.id}/log?tail=2`, { headers: { authorization: `Bearer ${a.agentToken()}` } });
    expect(await tail.text()).toBe("line 14\nline 15\n");
    expect((await fetch(`${a.url}/jobs/nosuchjob/log`, { headers: { authorization: `Bearer ${a.agentToken()}` } })).status).toBe(404);

    const metrics = await (await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${b.agentToken()}` } })).text();
    expect(metrics).toMatch(/labrig_agent_gpu_utilization_percent\{gpu="0",uuid="GPU-c8a2e6f4-[^"]+",name="NVIDIA GeForce RTX 4090",host="gpu-b"\} 99/);
    expect(metrics).toMatch(/labrig_agent_gpu_temperature_celsius\{gpu="1",[^}]*\} 34/);
    expect(metrics).toMatch(/labrig_agent_disk_free_gib\{host="gpu-b"\} \d/);
    // Cores jobs may use: this machine's CPUs (no cgroup quota here), as the heartbeat's cpuCount.
    expect(metrics).toMatch(/labrig_agent_cpu_count\{host="gpu-b"\} \d/);
  }, 30_000);

  it("answers a job id holding an encoded '..' with 400 and reads nothing outside its workdir (finding: the local server follows ..)", async () => {
    const outside = mkdtempSync(join(tmpdir(), "labrig-outside-"));
    onTestFinished(() => rmSync(outside, { recursive: true, force: true }));
    mkdirSync(join(outside, "attempt-1"));
    writeFileSync(join(outside, "attempt-1", "job.log"), "OUTSIDE THE WORKDIR\n");
    const climb = encodeURIComponent(`${"../".repeat(12)}${outside.slice(1)}`);
    const r = await fetch(`${a.url}/jobs/${climb}/log?attempt=1`, { headers: { authorization: `Bearer ${a.agentToken()}` } });
    expect(r.status).toBe(400);
    expect(await r.text()).not.toContain("OUTSIDE");
  });

  it("keeps its workdir 0700 and job records 0600 even when they existed with looser modes (finding: 0644 state files)", async () => {
    const workdir = mkdtempSync(join(tmpdir(), "labrig-agent-modes-"));
    onTestFinished(() => rmSync(workdir, { recursive: true, force: true }));
    mkdirSync(join(workdir, "state", "jobs"), { recursive: true });
    for (const dir of [workdir, join(workdir, "state"), join(workdir, "state", "jobs")]) chmodSync(dir, 0o755);
    const c = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-modes", workdir });
    onTestFinished(async () => void (await c.stop()));
    const admin = d.admin();
    const job = await admin.submit({ command: "sleep 1", gpus: 0, env: { SOME_SECRET: "s3cr3t" }, constraints: { hostId: "gpu-modes" } });
    await waitForState(admin, job.id, "running");
    const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
    expect(mode(workdir)).toBe("700");
    expect(mode(join(workdir, "state"))).toBe("700");
    expect(mode(join(workdir, "state", "jobs", `${job.id}.json`))).toBe("600");
    await waitForState(admin, job.id, "succeeded");
    expect(mode(join(workdir, "jobs", job.id, "attempt-1", "run.json"))).toBe("600");
  }, 60_000);

  it("syncs the files the dispatcher takes and still ends a job whose other file it refuses", async () => {
    const admin = d.admin();
    const job = await admin.submit({ command: "echo kept > good.txt; echo x > 'back\\slash.txt'; echo done", gpus: 0 });
    await waitForState(admin, job.id, "succeeded");
    expect((await admin.syncGet(job.id, "good.txt")).toString()).toBe("kept\n");
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe("done\n");
  });

  it("refuses to start with a wrong join token: exit 1, naming the join-token file", async () => {
    const bad = startAgent({ url: d.url, joinToken: "not-the-join-token", hostId: "gpu-x" });
    await expect(bad).rejects.toThrow(/exited \(1\) before it was ready:[\s\S]*refused the join token[\s\S]*join-token file/);
  });

  it("keeps heartbeating through a job's life, listing it as running", async () => {
    const admin = d.admin();
    const job = await admin.submit({ command: "sleep 2.5", gpus: 1, constraints: { hostId: "gpu-b" } });
    await waitForState(admin, job.id, "running");
    const dev = await waitFor("gpu-b listing the job", () => admin.devices(), (ds) => ds.find((x) => x.hostId === "gpu-b")!.runningJobs.includes(job.id));
    expect(dev.find((x) => x.hostId === "gpu-b")!.status).toBe("healthy");
    await waitForJob(admin, job.id, (j) => j.state === "succeeded", "to succeed");
  });
});
