import { describe, expect, it } from "vitest";
import type { Device, Job } from "../../core/api.js";
import { NOW, device as fixtureDevice, iso, job as fixtureJob } from "../helpers/fixtures.js";
import { formatCommand, formatDevicesTable, formatDuration, formatGpuProcessesTable, formatJobDetail, formatJobsTable, formatSlurmView, formatTable } from "../../cli/format.js";

const now = NOW;
const ago = iso;

/** A job and a host as the CLI's tables are tested with: plain names, nothing on the host. */
const job = (over: Partial<Job>): Job => fixtureJob("abcd1234", { name: "train", project: "default", command: ["python", "train.py"], createdAt: ago(30), ...over });
const device = (over: Partial<Device>): Device =>
  fixtureDevice("gpu-a100", { hostname: null, agentVersion: null, gpus: [], freeGpus: 0, lastSeenAt: ago(2), registeredAt: ago(600), ...over });

const gpu = (index: number, name: string) => ({ index, uuid: `GPU-${index}`, name, memoryTotalMiB: 81920, memoryUsedMiB: 0, utilizationPct: 0, temperatureC: 40, powerW: 60, busy: false });

describe("tables", () => {
  it("pads each column to its widest cell and trims line ends", () => {
    expect(formatTable(["A", "LONG HEADER", "C"], [["xxxx", "y", ""], ["z", "", "last"]])).toBe(["A     LONG HEADER  C", "xxxx  y", "z                  last"].join("\n"));
  });

  it("shows durations in at most two units", () => {
    expect([0, 42_000, 185_000, 2 * 3600_000 + 4 * 60_000 + 9000, 74 * 3600_000].map(formatDuration)).toEqual(["0s", "42s", "3m05s", "2h04m", "3d02h"]);
  });

  it("lists jobs with state, GPUs, host, age and runtime", () => {
    const lines = formatJobsTable(
      [
        job({ id: "run1", name: "resnet", project: "vision", owner: "alice", state: "running", gpus: 2, gpuIndices: [0, 3], hostId: "gpu-a100", startedAt: ago(125) , createdAt: ago(130)}),
        job({ id: "q1", state: "queued", createdAt: ago(5) }),
        job({ id: "done1", state: "succeeded", attempt: 2, hostId: "gpu-b", createdAt: ago(7200), startedAt: ago(3700), endedAt: ago(100) }),
      ],
      now,
    ).split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+PROJECT\s+OWNER\s+STATE\s+GPUS\s+HOST\s+AGE\s+RUNTIME$/);
    expect(lines[1].split(/\s{2,}/)).toEqual(["run1", "resnet", "vision", "alice", "running", "2 [0,3]", "gpu-a100", "2m10s", "2m05s"]);
    expect(lines[2].split(/\s{2,}/)).toEqual(["q1", "train", "default", "-", "queued", "1", "-", "5s", "-"]);
    expect(lines[3].split(/\s{2,}/)).toEqual(["done1", "train", "default", "-", "succeeded (attempt 2)", "1", "gpu-b", "2h00m", "1h00m"]);
  });

  it("makes control characters in names from the API visible (finding: ANSI escapes reach the terminal)", () => {
    const table = formatJobsTable([job({ id: "x1", name: "evil\u001b]0;pwned\u0007", project: "p" })], now);
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(table).toContain("evil\\x1b]0;pwned\\x07");
    const devices = formatDevicesTable([device({ hostId: "h", gpus: [gpu(0, "A100\u001b[2J")] })], now);
    expect(devices).toContain("A100\\x1b[2J");
    const detail = formatJobDetail({ ...job({ id: "x2", name: "n\u009bq" }), history: [{ attempt: 1, fromState: null, toState: "queued", hostId: null, message: "m\u001b[1A", at: "t" }] }, now);
    expect(detail).not.toMatch(/[\u001b\u009b]/);
  });

  it("says so when there are no jobs or devices", () => {
    expect(formatJobsTable([], now)).toBe("no jobs");
    expect(formatDevicesTable([], now)).toBe("no devices registered");
  });

  it("lists devices with GPU models counted and the reason a host has none", () => {
    const lines = formatDevicesTable(
      [
        device({ hostId: "gpu-a100", gpus: [gpu(0, "NVIDIA A100-SXM4-80GB"), gpu(1, "NVIDIA A100-SXM4-80GB")], freeGpus: 1, runningJobs: ["j1"] }),
        device({ hostId: "laptop", status: "stale", draining: true, lastSeenAt: ago(15), gpuProblem: "nvidia-smi not found" }),
      ],
      now,
    ).split("\n");
    expect(lines[1].split(/\s{2,}/)).toEqual(["gpu-a100", "healthy", "2", "1", "1", "2× A100-SXM4-80GB", "2s ago"]);
    expect(lines[2].split(/\s{2,}/)).toEqual(["laptop", "stale (draining)", "0", "0", "0", "none: nvidia-smi not found", "15s ago"]);
  });
});

describe("GPU processes", () => {
  it("lists who is on each GPU: a labrig job's process and one outside labrig that keeps the GPU busy", () => {
    const a100 = device({
      hostId: "gpu-a100",
      gpus: [
        { ...gpu(0, "NVIDIA A100-SXM4-80GB"), busy: true, processes: [{ pid: 48213, usedMemoryMiB: 70912, user: "ana", command: "python train.py --epochs 90", jobId: "01jobproc0" }] },
        { ...gpu(1, "NVIDIA A100-SXM4-80GB"), processes: [{ pid: 48377, usedMemoryMiB: null, user: "bo", command: "/opt/conda/bin/python -m ipykernel_launcher -f /run/user/1002/kernel-8f2c.json", jobId: null }] },
        { ...gpu(2, "NVIDIA A100-SXM4-80GB"), processes: [] },
      ],
    });
    const lines = formatGpuProcessesTable([a100, device({ hostId: "laptop" })]).split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^HOST\s+GPU\s+USED BY\s+PID\s+USER\s+MEMORY\s+COMMAND$/);
    expect(lines[1]!.split(/\s{2,}/)).toEqual(["gpu-a100", "0", "job 01jobproc0", "48213", "ana", "69.3 GiB", "python train.py --epochs 90"]);
    expect(lines[2]!.split(/\s{2,}/)).toEqual(["gpu-a100", "1", "not labrig (GPU busy)", "48377", "bo", "-", "/opt/conda/bin/python -m ipykernel_launcher -f /run/user/10…"]);
    expect(formatGpuProcessesTable([device({ hostId: "laptop" })])).toBe("");
  });
});

describe("job detail", () => {
  it("shows the command shell-quoted, the exit code and the history", () => {
    const text = formatJobDetail(
      {
        ...job({ state: "failed", exitCode: 3, command: ["python", "-c", "print('x y')"], hostId: "h1", startedAt: ago(20), endedAt: ago(10), env: { SEED: "1" } }),
        history: [
          { attempt: 1, fromState: null, toState: "queued", hostId: null, message: null, at: ago(30) },
          { attempt: 1, fromState: "running", toState: "failed", hostId: "h1", message: "exit code 3", at: ago(10) },
        ],
      },
      now,
    );
    expect(text).toContain(`command    python -c 'print('\\''x y'\\'')'`);
    expect(text).toContain("exit code  3");
    expect(text).toContain("env        SEED=1");
    expect(text).toContain("runtime    10s");
    expect(text).toContain(`${ago(10)}  #1  running → failed  on h1  exit code 3`);
  });

  it("never says an attempt beyond the automatic retries is 'of at most', and says an exit code once", () => {
    const text = formatJobDetail(job({ state: "failed", attempt: 2, maxRetries: 0, exitCode: 3, reason: "exit code 3", hostId: "vm" }), now);
    expect(text).toMatch(/^attempt\s+2$/m);
    expect(text).toMatch(/^state\s+failed$/m);
    expect(text).not.toContain("at most");
    const withRetries = formatJobDetail(job({ attempt: 3, maxRetries: 1 }), now);
    expect(withRetries).toMatch(/^attempt\s+3 \(retried automatically up to 1 time if its host is lost\)$/m);
  });

  it("leaves plain words unquoted", () => {
    expect(formatCommand(["python", "train.py", "--lr=0.1", "a/b.yaml"])).toBe("python train.py --lr=0.1 a/b.yaml");
    expect(formatCommand("echo hi && ls")).toBe("echo hi && ls");
  });
});

describe("Slurm's view", () => {
  const view = {
    readAt: iso(3),
    nodes: [
      { name: "gpu-a", partitions: ["gpu*"], state: "mixed", cpus: { allocated: 1, idle: 1, other: 0, total: 2 }, memoryMiB: 16384, gres: "gpu:fake:2", reason: "" },
      { name: "gpu-b", partitions: ["gpu*", "long"], state: "drained", cpus: { allocated: 0, idle: 0, other: 2, total: 2 }, memoryMiB: 8192, gres: "", reason: "disk\u001b[2J full" },
    ],
    queue: [
      { id: "100", state: "RUNNING", nodes: "gpu-a", reason: "None", timeUsed: "1:02", timeLimit: "5:05", tresPerNode: "gres/gpu:1", account: "", name: "labrig-j1-train" },
      { id: "101", state: "PENDING", nodes: "", reason: "Resources", timeUsed: "0:00", timeLimit: "5:05", tresPerNode: "", account: "", name: "labrig-j2" },
    ],
  };

  it("heads its nodes and queue as Slurm's, with why a node is out and why a job waits; control characters made visible", () => {
    expect(formatSlurmView(view, NOW)).toBe(
      [
        "Slurm schedules this lab (read from the controller 3s ago)",
        "NODE   SLURM STATE  PARTITIONS  CPUS ALLOC/TOTAL  MEMORY  GRES        REASON",
        "gpu-a  mixed        gpu*        1/2               16 GiB  gpu:fake:2  -",
        "gpu-b  drained      gpu*,long   0/2               8 GiB   -           disk\\x1b[2J full",
        "",
        "SLURM JOB  STATE    NODES / REASON  TIME  LIMIT  TRES/NODE   NAME",
        "100        RUNNING  gpu-a           1:02  5:05   gres/gpu:1  labrig-j1-train",
        "101        PENDING  (Resources)     0:00  5:05   -           labrig-j2",
      ].join("\n"),
    );
  });

  it("says a failed read failed, and shows the view before it as that", () => {
    const text = formatSlurmView({ ...view, queue: [], error: "ssh: Connection refused" }, NOW);
    expect(text.split("\n").slice(0, 2)).toEqual(["Slurm schedules this lab (read from the controller 3s ago)", "  the last read failed; this is the view before it: ssh: Connection refused"]);
    expect(text).toMatch(/Slurm's queue is empty$/);
    expect(formatSlurmView({ readAt: null, nodes: [], queue: [], error: "no route to host" }, NOW)).toBe("Slurm schedules this lab (not read yet)\n  the last read failed: no route to host");
  });
});
