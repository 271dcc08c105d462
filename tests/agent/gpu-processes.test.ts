// Who is on each GPU: nvidia-smi's compute processes parsed from recorded-format outputs (no GPU
// here), joined with the real /proc, and end to end through a real agent (nvidia-smi faked by a
// script) and dispatcher: a process outside labrig keeps its GPU from the scheduler until it ends,
// and a labrig job's own process is reported as that job's.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProcReader, describeGpuProcesses, linuxProcReader, parseComputeApps, parsePasswd, parseStatPgid } from "../../agent/gpu-processes.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { smallJobsEnv } from "./agent-helpers.js";

const fixtures = resolve(import.meta.dirname, "../fixtures/nvidia-smi");
const fixture = (name: string) => readFileSync(join(fixtures, name), "utf8");
const A100_GPU1 = "GPU-a7c0d2e9-5f13-4b8e-8d26-0e9b4c3a7f12";
const A100_GPU3 = "GPU-e5d4c3b2-a1f0-4e9d-8c7b-6a5f4e3d2c19";

describe("parseComputeApps (recorded-format fixtures stand in for real GPUs)", () => {
  it("reads each process's GPU, pid and memory", () => {
    expect(parseComputeApps(fixture("compute-apps-a100-x4.txt"))).toEqual([
      { gpuUuid: A100_GPU1, pid: 48213, usedMemoryMiB: 70912 },
      { gpuUuid: A100_GPU1, pid: 48377, usedMemoryMiB: 312 },
      { gpuUuid: A100_GPU3, pid: 51904, usedMemoryMiB: 38080 },
    ]);
  });

  it("keeps a process whose memory MIG hides, and reads no processes from empty output or an error", () => {
    expect(parseComputeApps(fixture("compute-apps-mig-na.txt"))).toEqual([{ gpuUuid: "GPU-6c2f9b1a-7e3d-4f58-a0c4-9b8e7d6c5a42", pid: 3112, usedMemoryMiB: null }]);
    expect(parseComputeApps(fixture("compute-apps-none.txt"))).toEqual([]);
    expect(parseComputeApps(fixture("no-driver.txt"))).toEqual([]);
  });
});

describe("describeGpuProcesses", () => {
  // A stub /proc (named so): the pids in the recorded outputs do not exist on this machine.
  const stubProc: ProcReader = {
    facts: (pid) =>
      ({
        48213: { uid: 1001, pgid: 48200, command: "python train.py --epochs 90", cgroup: "0::/user.slice" },
        48377: { uid: 1002, pgid: 48377, command: "/opt/conda/bin/python -m ipykernel_launcher -f /run/user/1002/kernel.json", cgroup: "0::/user.slice" },
        51904: { uid: 0, pgid: 51904, command: "python3 main.py", cgroup: "0::/system.slice/docker-4f2a9c81d3e0.scope" },
      })[pid] ?? { uid: null, pgid: null, command: null, cgroup: null },
    userName: (uid) => ({ 1001: "ana", 0: "root" })[uid] ?? null,
  };

  it("marks a process job's group and a container job's cgroup as theirs, and everything else as foreign", () => {
    const apps = parseComputeApps(fixture("compute-apps-a100-x4.txt"));
    const byGpu = describeGpuProcesses(apps, [{ jobId: "01jobproc0", pgid: 48200 }, { jobId: "01jobcont0", containerId: "4f2a9c81d3e0" }], stubProc);
    expect(byGpu.get(A100_GPU1)).toEqual([
      { pid: 48213, usedMemoryMiB: 70912, user: "ana", command: "python train.py --epochs 90", jobId: "01jobproc0" },
      { pid: 48377, usedMemoryMiB: 312, user: "1002", command: "/opt/conda/bin/python -m ipykernel_launcher -f /run/user/1002/kernel.json", jobId: null },
    ]);
    expect(byGpu.get(A100_GPU3)).toEqual([{ pid: 51904, usedMemoryMiB: 38080, user: "root", command: "python3 main.py", jobId: "01jobcont0" }]);
  });

  it("reports a process that ended between nvidia-smi and /proc with what nvidia-smi said", () => {
    const byGpu = describeGpuProcesses([{ gpuUuid: A100_GPU1, pid: 999999, usedMemoryMiB: 10 }], [], stubProc);
    expect(byGpu.get(A100_GPU1)).toEqual([{ pid: 999999, usedMemoryMiB: 10, user: null, command: null, jobId: null }]);
  });

  it("reads /proc/PID/stat's group past a command name with spaces and parentheses, and /etc/passwd's names", () => {
    expect(parseStatPgid("4242 (my (odd) name) S 1 4240 4240 0 -1 4194560")).toBe(4240);
    expect(parsePasswd("root:x:0:0:root:/root:/bin/bash\nana:x:1001:1001::/home/ana:/bin/sh\n").get(1001)).toBe("ana");
  });

  it("reads a real process's owner, group and command line from /proc", async () => {
    const child = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    try {
      await new Promise((r) => child.once("spawn", r));
      const f = linuxProcReader().facts(child.pid!);
      expect(f).toMatchObject({ uid: userInfo().uid, pgid: child.pid, command: "sleep 30" });
      expect(linuxProcReader().userName(userInfo().uid)).toBe(userInfo().username);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("GPU processes through a real agent and dispatcher (nvidia-smi faked by a script)", () => {
  const H100 = "GPU-d1e2f3a4-b5c6-7d8e-9f0a-1b2c3d4e5f6a";
  let d: DispatcherProcess;
  let agent: AgentProcess;
  let dir: string;
  let apps: string;
  let notebook: ChildProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "labrig-gpu-apps-"));
    apps = join(dir, "compute-apps.txt");
    writeFileSync(apps, "");
    d = await startDispatcher({ env: { ...smallJobsEnv, LABRIG_HEARTBEAT_S: "1" } });
    agent = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-shared", gpus: "h100-80gb-x1.txt", computeApps: apps });
  });
  afterAll(async () => {
    notebook?.kill("SIGKILL");
    await agent?.stop();
    agent?.cleanup();
    await d?.stop();
    d?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps a GPU someone else's process uses from the queue until it ends, then reports the job's own process as the job's", { timeout: 90_000 }, async () => {
    const admin = d.admin();
    // Someone's process on GPU 0, outside labrig.
    notebook = spawn("sleep", ["120"], { stdio: "ignore" });
    await new Promise((r) => notebook.once("spawn", r));
    writeFileSync(apps, `${H100}, ${notebook.pid}, 20480\n`);
    const device = await waitFor("the foreign process on GPU 0", async () => (await admin.devices()).find((x) => x.hostId === "gpu-shared"), (x) => (x?.gpus[0]?.processes?.length ?? 0) > 0, 20_000);
    expect(device!.gpus[0]!.processes).toEqual([{ pid: notebook.pid, usedMemoryMiB: 20480, user: userInfo().username, command: "sleep 120", jobId: null }]);
    expect(device!.freeGpus).toBe(0);
    expect(device!.gpus[0]!.busy).toBe(false);

    // The job's shell puts itself on the GPU (the fake nvidia-smi's list) once it runs.
    const job = await admin.submit({ name: "gpu-probe", project: "tests", command: ["sh", "-c", `echo "${H100}, $$, 1024" > '${apps}'; sleep 4`], gpus: 1 });
    await new Promise((r) => setTimeout(r, 3500));
    expect((await admin.job(job.id)).state).toBe("queued");

    notebook.kill("SIGKILL");
    writeFileSync(apps, "");
    await waitFor("the job to run", () => admin.job(job.id), (j) => j.state === "running", 20_000);
    const mine = await waitFor("the job's own process", async () => (await admin.devices()).find((x) => x.hostId === "gpu-shared")!.gpus[0]!.processes ?? [], (ps) => ps.length === 1, 20_000);
    expect(mine[0]).toMatchObject({ jobId: job.id, user: userInfo().username, usedMemoryMiB: 1024 });
    expect(mine[0]!.command).toContain("sh -c echo");
  });
});
