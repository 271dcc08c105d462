// The Slurm driver's pure core: the sbatch script for one attempt (data in, text out), the reading
// of sbatch's answer, and the table mapping attempts to Slurm jobs and claim tokens, on real SQLite.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { submitJobRequestSchema } from "../../core/api.js";
import { openDatabase, type Db } from "../../dispatcher/db.js";
import { SlurmJobs } from "../../dispatcher/slurm-jobs.js";
import { batchScript, excludedNodes, parseSbatchParsable, sbatchOptions, SLURM_NICE, slurmJobName, SbatchAnswerError } from "../../dispatcher/slurm-script.js";
import { Store } from "../../dispatcher/store.js";
import { hashToken } from "../../dispatcher/tokens.js";

const job = { id: "j0042", name: "resnet 50 / lr=0.1", gpus: 2, cpus: 8, memoryMiB: 32768, timeoutS: 3600 };

describe("excludedNodes: where Slurm may place a job so that labrig's claim takes it", () => {
  const gpu = (name: string, memoryTotalMiB = 24576) => ({ name, memoryTotalMiB });
  const devices: { hostId: string; labels: Record<string, string>; gpus: { name: string; memoryTotalMiB: number }[] }[] = [
    { hostId: "a100-1", labels: { gpu: "a100", room: "b2" }, gpus: [gpu("NVIDIA A100-SXM4-80GB", 81920), gpu("NVIDIA A100-SXM4-80GB", 81920)] },
    { hostId: "rtx-1", labels: { gpu: "3090" }, gpus: [gpu("NVIDIA GeForce RTX 3090")] },
    { hostId: "cpu-1", labels: {}, gpus: [] },
  ];
  const nodes = ["a100-1", "rtx-1", "cpu-1", "no-agent"];
  const place = (gpus: number, constraints = {}, slurmNodes: string[] | "unknown" = nodes) => excludedNodes({ gpus, constraints }, devices, slurmNodes === "unknown" ? undefined : slurmNodes);

  it("leaves out nodes with too few GPUs and nodes with no labrig agent", () => {
    expect(place(1)).toEqual({ exclude: ["cpu-1", "no-agent"], eligible: ["a100-1", "rtx-1"] });
    expect(place(2)).toEqual({ exclude: ["cpu-1", "no-agent", "rtx-1"], eligible: ["a100-1"] });
    expect(place(0)).toEqual({ exclude: ["no-agent"], eligible: ["a100-1", "cpu-1", "rtx-1"] });
  });

  it("applies labrig's constraints as its own scheduler does: host, labels, GPU name (any case, a part of it) and GPU memory", () => {
    expect(place(1, { hostId: "rtx-1" }).eligible).toEqual(["rtx-1"]);
    expect(place(1, { labels: { room: "b2" } }).eligible).toEqual(["a100-1"]);
    expect(place(1, { gpuName: "rtx 3090" }).eligible).toEqual(["rtx-1"]);
    expect(place(1, { minMemoryMiB: 40000 }).eligible).toEqual(["a100-1"]);
    expect(place(1, { labels: { gpu: "h100" } })).toEqual({ exclude: ["a100-1", "cpu-1", "no-agent", "rtx-1"], eligible: [] });
  });

  it("counts only the agents' hosts when Slurm's node list is not known, and no agent outside Slurm as eligible", () => {
    expect(place(1, {}, "unknown")).toEqual({ exclude: ["cpu-1"], eligible: ["a100-1", "rtx-1"] });
    expect(place(1, {}, ["rtx-1"])).toEqual({ exclude: [], eligible: ["rtx-1"] });
  });
});

describe("sbatchOptions", () => {
  it("maps GPUs, cores, memory and the time limit to Slurm's options, asking to be requeued", () => {
    expect(sbatchOptions(job)).toEqual([
      "--job-name=labrig-j0042-resnet_50_lr_0.1",
      "--requeue",
      "--nodes=1",
      "--ntasks=1",
      "--gres=gpu:2",
      "--cpus-per-task=8",
      "--mem=32768M",
      "--time=65",
      "--nice=2000",
      "--chdir=/tmp",
      "--output=/tmp/labrig-slurm-%j.out",
    ]);
  });

  it("asks for no GPUs, cores, memory or time limit that the job does not have", () => {
    const opts = sbatchOptions({ id: "j1", name: "cpu", gpus: 0, timeoutS: null });
    expect(opts.some((o) => o.startsWith("--gres") || o.startsWith("--cpus") || o.startsWith("--mem") || o.startsWith("--time"))).toBe(false);
  });

  it("rounds fractional cores and a timeout up to what Slurm counts in", () => {
    const opts = sbatchOptions({ id: "j1", name: "x", gpus: 1, cpus: 2.5, memoryMiB: 1000.2, timeoutS: 61 });
    expect(opts).toContain("--cpus-per-task=3");
    expect(opts).toContain("--mem=1001M");
    expect(opts).toContain("--time=7"); // 61 s + 300 s margin = 6.02 min
  });

  it("maps labrig's priorities to Slurm's --nice in labrig's order, and the nodes to leave out to --exclude", () => {
    const nice = (priority: "low" | "normal" | "high" | "urgent") => sbatchOptions({ ...job, priority }).find((o) => o.startsWith("--nice="));
    expect(["urgent", "high", "normal", "low"].map((p) => nice(p as "low"))).toEqual(["--nice=0", "--nice=1000", "--nice=2000", "--nice=3000"]);
    expect(Object.values(SLURM_NICE)).toEqual([...Object.values(SLURM_NICE)].sort((a, b) => a - b));
    expect(sbatchOptions({ ...job, exclude: ["gpu-b", "gpu-c"] })).toContain("--exclude=gpu-b,gpu-c");
    expect(sbatchOptions({ ...job, exclude: [] }).some((o) => o.startsWith("--exclude"))).toBe(false);
  });

  it("names a job only with characters Slurm and a shell read as they are", () => {
    expect(slurmJobName({ id: "j7", name: "$(rm -rf /); 'x'\n" })).toBe("labrig-j7-rm_-rf_x");
    expect(slurmJobName({ id: "j7", name: "///" })).toBe("labrig-j7");
  });
});

describe("batchScript", () => {
  const script = batchScript(job, 3, "http://nas:8000/", "lrs_secret'token");

  it("starts with bash and the #SBATCH lines, before any command", () => {
    const lines = script.split("\n");
    expect(lines[0]).toBe("#!/bin/bash");
    const firstCommand = lines.findIndex((l, i) => i > 0 && !l.startsWith("#"));
    expect(lines.slice(1, firstCommand).filter((l) => l.startsWith("#SBATCH"))).toEqual(sbatchOptions(job).map((o) => `#SBATCH ${o}`));
  });

  it("claims with the job id, attempt, node name and GPUs, and quotes the token and URL for the shell", () => {
    expect(script).toContain("url=http://nas:8000/api/slurm/claim\n");
    expect(script).toContain(`token='lrs_secret'\\''token'`);
    expect(script).toContain("attempt=3");
    expect(script).toContain("SLURMD_NODENAME");
    expect(script).toContain("SLURM_JOB_GPUS");
    expect(script).toContain("CUDA_VISIBLE_DEVICES");
  });

  it("never puts the token on a command line", () => {
    const curlLines = script.split("\n").filter((l) => l.includes("curl"));
    expect(curlLines.length).toBeGreaterThan(0);
    for (const l of curlLines) expect(l).toContain("-K -");
    expect(script).not.toMatch(/curl[^\n]*Bearer lrs_/);
  });

  it("is a script bash can read", () => {
    execFileSync("bash", ["-n"], { input: script });
  });

  it("refuses an attempt that is not a whole number from 1", () => {
    expect(() => batchScript(job, 0, "http://nas:8000", "t")).toThrow(/attempt/);
  });
});

describe("parseSbatchParsable", () => {
  it("reads the job id, with or without the cluster", () => {
    expect(parseSbatchParsable("1234\n")).toBe("1234");
    expect(parseSbatchParsable("77;lab\n")).toBe("77");
  });
  it("refuses anything else, quoting it", () => {
    expect(() => parseSbatchParsable("sbatch: error: Batch job submission failed")).toThrow(SbatchAnswerError);
    expect(() => parseSbatchParsable("")).toThrow(/not a job id/);
  });
});

describe("SlurmJobs (the attempt → Slurm job mapping)", () => {
  let dir: string;
  let db: Db;
  let slurm: SlurmJobs;
  let jobId: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "labrig-slurm-jobs-"));
    db = openDatabase(join(dir, "labrig.db"));
    slurm = new SlurmJobs(db);
    const req = submitJobRequestSchema.parse({ command: ["true"] });
    jobId = new Store(db).insertJob({ ...req, command: ["true"], name: "j", project: "p" }).id;
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps each attempt's Slurm job id and only the hash of its claim token", () => {
    const token = slurm.reserve(jobId, 1, new Date("2026-12-01T10:00:00Z"));
    expect(slurm.get(jobId, 1)).toEqual({ jobId, attempt: 1, slurmJobId: null, submittedAt: "2026-12-01T10:00:00.000Z", cancelledAt: null });
    slurm.setSlurmJobId(jobId, 1, "981");
    expect(slurm.get(jobId, 1)?.slurmJobId).toBe("981");
    const stored = db.prepare("SELECT claim_token_hash FROM slurm_jobs").pluck().get();
    expect(stored).toBe(hashToken(token));
    expect(JSON.stringify(db.prepare("SELECT * FROM slurm_jobs").all())).not.toContain(token);
  });

  it("finds the attempt a claim token was made for, and nothing for another token", () => {
    const t1 = slurm.reserve(jobId, 1);
    const t2 = slurm.reserve(jobId, 2);
    expect(t1).not.toBe(t2);
    expect(slurm.forClaimToken(t1)?.attempt).toBe(1);
    expect(slurm.forClaimToken(t2)?.attempt).toBe(2);
    expect(slurm.forClaimToken("lrs_wrong")).toBeUndefined();
    expect(slurm.ofJob(jobId).map((r) => r.attempt)).toEqual([1, 2]);
  });

  it("holds one Slurm job per attempt, and forgets one whose sbatch failed", () => {
    slurm.reserve(jobId, 1);
    expect(() => slurm.reserve(jobId, 1)).toThrow();
    slurm.remove(jobId, 1);
    expect(slurm.get(jobId, 1)).toBeUndefined();
    slurm.reserve(jobId, 1);
  });

  it("records when scancel was run", () => {
    slurm.reserve(jobId, 1);
    slurm.markCancelled(jobId, 1, new Date("2026-12-01T11:00:00Z"));
    expect(slurm.get(jobId, 1)?.cancelledAt).toBe("2026-12-01T11:00:00.000Z");
  });
});
