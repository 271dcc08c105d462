import { describe, expect, it } from "vitest";
import type { Constraints } from "../../core/api.js";
import {
  AGING_STEP_MS,
  DEFAULT_MAX_REASONS,
  HELD_GPU_HOURS,
  NO_OWNER,
  effectiveRank,
  fairShareKey,
  gpuMatches,
  hostMatches,
  neverFits,
  scheduleJobs,
  scheduleQueue,
  type Assignment,
  type ScheduleDecision,
  type ScheduleInput,
  type SchedDevice,
  type SchedJob,
  type WaitReason,
} from "../../dispatcher/scheduler.js";

const T0 = 1_700_000_000_000;
const A100 = "NVIDIA A100-SXM4-80GB";
const RTX = "NVIDIA GeForce RTX 4090";

function host(hostId: string, gpus: number, opts: { busy?: number[]; foreign?: number[]; name?: string; mem?: number; labels?: Record<string, string>; schedulable?: boolean } = {}): SchedDevice {
  return {
    hostId,
    schedulable: opts.schedulable ?? true,
    labels: opts.labels ?? {},
    gpus: Array.from({ length: gpus }, (_, index) => ({
      index,
      name: opts.name ?? A100,
      memoryTotalMiB: opts.mem ?? 81920,
      free: !(opts.busy ?? []).includes(index),
      foreign: (opts.foreign ?? []).includes(index),
    })),
  };
}

let n = 0;
function job(gpus: number, opts: Partial<SchedJob> = {}): SchedJob {
  n++;
  return { id: opts.id ?? `j${String(n).padStart(4, "0")}`, priority: "normal", createdAtMs: T0 + n, gpus, constraints: {}, ...opts };
}

describe("scheduleJobs", () => {
  it("runs four 1-GPU jobs on a host with 4 free GPUs, each on its own GPU", () => {
    const jobs = [job(1), job(1), job(1), job(1), job(1)];
    const out = scheduleJobs(jobs, [host("a", 4)], T0);
    expect(out).toHaveLength(4);
    expect(out.map((a) => a.gpuIndices[0]).sort()).toEqual([0, 1, 2, 3]);
    expect(out.map((a) => a.jobId)).toEqual(jobs.slice(0, 4).map((j) => j.id));
  });

  it("runs one 4-GPU job on a host with 4 free GPUs", () => {
    const big = job(4);
    expect(scheduleJobs([big, job(1)], [host("a", 4)], T0)).toEqual([{ jobId: big.id, hostId: "a", gpuIndices: [0, 1, 2, 3] }]);
  });

  it("never splits a job's GPUs across hosts", () => {
    expect(scheduleJobs([job(4)], [host("a", 2), host("b", 2)], T0)).toEqual([]);
  });

  it("takes only free GPUs, lowest index first", () => {
    const out = scheduleJobs([job(2)], [host("a", 4, { busy: [0, 2] })], T0);
    expect(out[0]!.gpuIndices).toEqual([1, 3]);
  });

  it("orders by priority, then age", () => {
    const low = job(1, { priority: "low", createdAtMs: T0 - 1000 });
    const oldNormal = job(1, { createdAtMs: T0 - 500 });
    const high = job(1, { priority: "high", createdAtMs: T0 });
    const newNormal = job(1, { createdAtMs: T0 - 100 });
    const out = scheduleJobs([low, newNormal, oldNormal, high], [host("a", 2)], T0);
    expect(out.map((a) => a.jobId)).toEqual([high.id, oldNormal.id]);
  });

  it("breaks ties of equal age by job id", () => {
    const b = job(1, { id: "b", createdAtMs: T0 });
    const a = job(1, { id: "a", createdAtMs: T0 });
    expect(scheduleJobs([b, a], [host("h", 1)], T0).map((x) => x.jobId)).toEqual(["a"]);
  });

  it("raises a waiting job one priority level per aging step, up to high", () => {
    const low = job(1, { priority: "low", createdAtMs: T0 });
    expect(effectiveRank(low, T0 + AGING_STEP_MS - 1)).toBe(0);
    expect(effectiveRank(low, T0 + AGING_STEP_MS)).toBe(1);
    expect(effectiveRank(low, T0 + 2 * AGING_STEP_MS)).toBe(2);
    expect(effectiveRank(low, T0 + 10 * AGING_STEP_MS)).toBe(2);
  });

  it("puts urgent above high, and never ages a job past high", () => {
    const oldHigh = job(1, { priority: "high", createdAtMs: T0 - 10 * AGING_STEP_MS });
    const urgent = job(1, { priority: "urgent", createdAtMs: T0 });
    expect(scheduleJobs([oldHigh, urgent], [host("a", 1)], T0).map((a) => a.jobId)).toEqual([urgent.id]);
    expect(effectiveRank(job(1, { priority: "low", createdAtMs: T0 }), T0 + 100 * AGING_STEP_MS)).toBe(2);
    expect(effectiveRank(urgent, T0 + 100 * AGING_STEP_MS)).toBe(3);
  });

  it("lets an old low job run before a stream of fresh high ones", () => {
    const oldLow = job(1, { priority: "low", createdAtMs: T0 - 2 * AGING_STEP_MS - 1 });
    const freshHigh = job(1, { priority: "high", createdAtMs: T0 });
    const out = scheduleJobs([freshHigh, oldLow], [host("a", 1)], T0);
    expect(out.map((a) => a.jobId)).toEqual([oldLow.id]);
  });

  it("packs small jobs onto the fullest host that fits, keeping big holes open", () => {
    const out = scheduleJobs([job(1)], [host("big", 8), host("small", 4, { busy: [0, 1, 2] })], T0);
    expect(out[0]!.hostId).toBe("small");
  });

  it("packs multi-GPU jobs too: a 2-GPU job takes the host with 2 free, not the one with 3", () => {
    const out = scheduleJobs([job(2)], [host("three", 4, { busy: [0] }), host("two", 4, { busy: [0, 1] })], T0);
    expect(out[0]).toMatchObject({ hostId: "two", gpuIndices: [2, 3] });
  });

  it("picks the lowest hostId among equally full hosts, whatever order the devices come in", () => {
    const devices = [host("c", 2), host("a", 2), host("b", 2)];
    expect(scheduleJobs([job(1)], devices, T0)[0]!.hostId).toBe("a");
  });

  it("honours hostId, labels, gpuName and minMemoryMiB constraints", () => {
    const devices = [host("a", 2, { name: RTX, mem: 24564, labels: { room: "1" } }), host("b", 2, { name: A100, mem: 81920, labels: { room: "2" } })];
    expect(scheduleJobs([job(1, { constraints: { hostId: "b" } })], devices, T0)[0]!.hostId).toBe("b");
    expect(scheduleJobs([job(1, { constraints: { labels: { room: "1" } } })], devices, T0)[0]!.hostId).toBe("a");
    expect(scheduleJobs([job(1, { constraints: { gpuName: "a100" } })], devices, T0)[0]!.hostId).toBe("b");
    expect(scheduleJobs([job(1, { constraints: { minMemoryMiB: 40000 } })], devices, T0)[0]!.hostId).toBe("b");
    expect(scheduleJobs([job(1, { constraints: { gpuName: "h100" } })], devices, T0)).toEqual([]);
  });

  it("needs every label a job names to match the host's", () => {
    const devices = [host("a", 1, { labels: { room: "1", fast: "yes" } }), host("b", 1, { labels: { room: "1" } })];
    expect(scheduleJobs([job(1, { constraints: { labels: { room: "1", fast: "yes" } } })], devices, T0)).toMatchObject([{ hostId: "a" }]);
    expect(scheduleJobs([job(1, { constraints: { labels: { room: "1", fast: "no" } } })], devices, T0)).toEqual([]);
  });

  it("matches gpuName as a case-insensitive substring of the GPU's name", () => {
    const gpu = { index: 0, name: RTX, memoryTotalMiB: 24564, free: true };
    expect(gpuMatches(gpu, { gpuName: "geforce rtx" })).toBe(true);
    expect(gpuMatches(gpu, { gpuName: "RTX 4090" })).toBe(true);
    expect(gpuMatches(gpu, { gpuName: "rtx 3090" })).toBe(false);
  });

  it("applies gpuName and minMemoryMiB to each GPU used on a host with mixed GPUs", () => {
    const mixed: SchedDevice = {
      hostId: "mixed",
      schedulable: true,
      labels: {},
      gpus: [
        { index: 0, name: RTX, memoryTotalMiB: 24564, free: true },
        { index: 1, name: RTX, memoryTotalMiB: 24564, free: true },
        { index: 2, name: A100, memoryTotalMiB: 81920, free: true },
        { index: 3, name: A100, memoryTotalMiB: 81920, free: true },
      ],
    };
    expect(scheduleJobs([job(2, { constraints: { gpuName: "A100" } })], [mixed], T0)[0]!.gpuIndices).toEqual([2, 3]);
    expect(scheduleJobs([job(2, { constraints: { minMemoryMiB: 40000 } })], [mixed], T0)[0]!.gpuIndices).toEqual([2, 3]);
    expect(scheduleJobs([job(3, { constraints: { minMemoryMiB: 40000 } })], [mixed], T0)).toEqual([]);
    // The RTX GPUs are left for a job that does not mind.
    const out = scheduleJobs([job(2, { constraints: { gpuName: "a100" } }), job(2)], [mixed], T0);
    expect(out.map((a) => a.gpuIndices)).toEqual([[2, 3], [0, 1]]);
  });

  it("runs gpus: 0 jobs on any schedulable host without taking a GPU", () => {
    const out = scheduleJobs([job(0), job(0), job(1)], [host("a", 1)], T0);
    expect(out).toHaveLength(3);
    expect(out.filter((a) => a.gpuIndices.length === 0)).toHaveLength(2);
    expect(out.find((a) => a.gpuIndices.length === 1)).toMatchObject({ hostId: "a", gpuIndices: [0] });
  });

  it("runs gpus: 0 jobs on hosts with every GPU busy, honouring their host constraints", () => {
    const devices = [host("a", 2, { busy: [0, 1] }), host("b", 2, { busy: [0, 1], labels: { cpu: "big" } }), host("c", 0, { schedulable: false })];
    const anywhere = job(0);
    const labelled = job(0, { constraints: { labels: { cpu: "big" } } });
    const pinnedToUnschedulable = job(0, { constraints: { hostId: "c" } });
    expect(scheduleJobs([anywhere, labelled, pinnedToUnschedulable], devices, T0)).toEqual([
      { jobId: anywhere.id, hostId: "a", gpuIndices: [] },
      { jobId: labelled.id, hostId: "b", gpuIndices: [] },
    ]);
  });

  it("gives nothing to draining or unhealthy hosts", () => {
    expect(scheduleJobs([job(1), job(0)], [host("a", 4, { schedulable: false })], T0)).toEqual([]);
    const out = scheduleJobs([job(1), job(1)], [host("a", 4, { schedulable: false }), host("b", 1)], T0);
    expect(out.map((a) => a.hostId)).toEqual(["b"]);
  });

  it("does not let a job that can never fit block the ones behind it", () => {
    const huge = job(16, { priority: "high" });
    const small = job(1);
    const out = scheduleJobs([huge, small], [host("a", 8)], T0);
    expect(out.map((a) => a.jobId)).toEqual([small.id]);
  });

  it("does not let a job whose constraints no host meets hold a host back", () => {
    const devices = [host("a", 4, { busy: [0] }), host("d", 8, { schedulable: false, name: "NVIDIA H100 80GB HBM3" })];
    const jobs = [
      job(1, { priority: "high", constraints: { gpuName: "h100" } }),
      job(1, { priority: "high", constraints: { hostId: "d" } }),
      job(2, { priority: "high", constraints: { minMemoryMiB: 200_000 } }),
      job(1),
    ];
    expect(scheduleJobs(jobs, devices, T0)).toEqual([{ jobId: jobs[3]!.id, hostId: "a", gpuIndices: [1] }]);
  });

  it("a 4-GPU job waiting behind a stream of 1-GPU jobs gets its host", () => {
    // Host a has 2 of 4 GPUs busy. The big job is older than the small ones.
    const big = job(4, { createdAtMs: T0 - 10_000 });
    const smallStream = () => Array.from({ length: 4 }, () => job(1));
    // Nothing may take a's free GPUs: they are held for the big job.
    expect(scheduleJobs([big, ...smallStream()], [host("a", 4, { busy: [0, 1] })], T0)).toEqual([]);
    // The running jobs end one by one; still no small job gets in.
    expect(scheduleJobs([big, ...smallStream()], [host("a", 4, { busy: [0] })], T0)).toEqual([]);
    expect(scheduleJobs([big, ...smallStream()], [host("a", 4)], T0)).toEqual([{ jobId: big.id, hostId: "a", gpuIndices: [0, 1, 2, 3] }]);
  });

  it("an aged big job overtakes a stream of fresh high-priority small jobs and holds its host", () => {
    const big = job(4, { priority: "normal", createdAtMs: T0 - AGING_STEP_MS - 1 });
    const stream = Array.from({ length: 4 }, () => job(1, { priority: "high", createdAtMs: T0 }));
    expect(scheduleJobs([big, ...stream], [host("a", 4, { busy: [0, 1] })], T0)).toEqual([]);
    // Before it has aged, the high stream goes first and takes the free GPUs.
    expect(scheduleJobs([big, ...stream], [host("a", 4, { busy: [0, 1] })], T0 - 2)).toHaveLength(2);
  });

  it("lets small jobs use other hosts while the big job holds its reservation", () => {
    const big = job(4, { createdAtMs: T0 - 10_000 });
    const small = job(1);
    const out = scheduleJobs([big, small], [host("a", 4, { busy: [0] }), host("b", 2, { busy: [0] })], T0);
    expect(out).toEqual([{ jobId: small.id, hostId: "b", gpuIndices: [1] }]);
  });

  it("reserves the candidate host with the most matching free GPUs", () => {
    const big = job(4, { createdAtMs: T0 - 10_000 });
    const smalls = [job(1), job(1), job(1)];
    const devices = [host("a", 4, { busy: [0, 1, 2] }), host("b", 4, { busy: [0, 1] }), host("c", 8, { busy: [0, 1, 2, 3, 4] })];
    // c has 3 free and can hold 4: it is reserved; the small jobs pack onto a, then b.
    const out = scheduleJobs([big, ...smalls], devices, T0);
    expect(out.map((a) => a.hostId)).toEqual(["a", "b", "b"]);
  });

  it("lets only the best-ranked job that does not fit reserve a host", () => {
    const big = job(4, { createdAtMs: T0 - 20_000 });
    const alsoBig = job(4, { createdAtMs: T0 - 10_000, constraints: { hostId: "b" } });
    const small = job(1);
    const out = scheduleJobs([big, alsoBig, small], [host("a", 4, { busy: [0] }), host("b", 4, { busy: [0] })], T0);
    expect(out).toEqual([{ jobId: small.id, hostId: "b", gpuIndices: [1] }]);
  });

  it("still places gpus: 0 jobs at the end of the queue once every GPU is taken", () => {
    const jobs = [job(2), job(4), ...Array.from({ length: 20 }, () => job(1)), job(0, { priority: "low" })];
    const out = scheduleJobs(jobs, [host("a", 2)], T0);
    expect(out.map((a) => a.jobId)).toEqual([jobs[0]!.id, jobs[jobs.length - 1]!.id]);
  });

  it("places no job on a GPU a process outside labrig is using, and packs around it", () => {
    const [a, b] = [job(1), job(1)];
    // GPU 0 of "a" is someone's notebook: the 1-GPU jobs take 1 and 2; "b" (all free) waits.
    expect(scheduleJobs([a, b], [host("a", 3, { foreign: [0] }), host("b", 4)], T0)).toEqual([
      { jobId: a.id, hostId: "a", gpuIndices: [1] },
      { jobId: b.id, hostId: "a", gpuIndices: [2] },
    ]);
    // Every GPU in use by others: nothing starts, and a 2-GPU job reserves the host for when they end.
    const big = job(2);
    const small = job(1);
    expect(scheduleJobs([big, small], [host("a", 2, { foreign: [0, 1] }), host("c", 1, { foreign: [0] })], T0)).toEqual([]);
  });

  it("is deterministic: the order of jobs and devices in the input does not change the decision", () => {
    const jobs = Array.from({ length: 50 }, (_, i) => job((i % 3) + 1, { priority: (["low", "normal", "high"] as const)[i % 3] }));
    const devices = [host("a", 8), host("b", 8, { busy: [1, 5] }), host("c", 4)];
    expect(scheduleJobs(jobs, devices, T0)).toEqual(scheduleJobs([...jobs].reverse(), [...devices].reverse(), T0));
  });

  it("decides as the rules read, done naively, on many random labs", () => {
    const rnd = seeded(7);
    for (let lab = 0; lab < 400; lab++) {
      const input = randomLab(rnd);
      const got = scheduleQueue(input);
      expect(got, `lab ${lab}`).toEqual(naiveDecide(input));
      expectValid(got.assignments, input);
      expect(scheduleJobs(input.queue, input.devices, input.nowMs), `lab ${lab}`).toEqual(naiveDecide({ queue: input.queue, devices: input.devices, nowMs: input.nowMs }).assignments);
    }
  });

  it("decides as the naive rules do on a lab of a few hundred hosts and thousands of jobs", () => {
    const rnd = seeded(11);
    const input = randomLab(rnd, { hosts: 300, jobs: 3000 });
    const got = scheduleQueue(input);
    expect(got.assignments.length).toBeGreaterThan(100);
    expect(got).toEqual(naiveDecide(input));
    expectValid(got.assignments, input);
  });

  it("decides as the naive rules do once every reason is given and GPUs run out, on many busy labs", () => {
    // Few reasons and long queues: the walk's shortcuts (accounts at a limit, GPU-less jobs only
    // once nothing is free) take over early.
    const rnd = seeded(23);
    for (let lab = 0; lab < 100; lab++) {
      const input = { ...randomLab(rnd, { hosts: 12, jobs: 300 }), maxReasons: Math.floor(rnd() * 4) };
      expect(scheduleQueue(input), `lab ${lab}`).toEqual(naiveDecide(input));
    }
  });
});

describe("CPU and memory", () => {
  const cpuHost = (hostId: string, cpus: number, opts: { used?: number; memoryMiB?: number; usedMemoryMiB?: number } = {}): SchedDevice => ({
    ...host(hostId, 0),
    cpus,
    usedCpus: opts.used ?? 0,
    memoryMiB: opts.memoryMiB ?? 65536,
    usedMemoryMiB: opts.usedMemoryMiB ?? 0,
  });

  it("shares eight CPU-only jobs between two GPU-less hosts by free cores", () => {
    const jobs = Array.from({ length: 8 }, () => job(0, { cpus: 4 }));
    const out = scheduleJobs(jobs, [cpuHost("a", 16), cpuHost("b", 16)], T0);
    expect(out.map((a) => a.hostId)).toEqual(["a", "b", "a", "b", "a", "b", "a", "b"]);
    // A host with more cores free takes jobs until it has no more free than the other.
    const uneven = scheduleJobs(jobs, [cpuHost("a", 16), cpuHost("b", 32, { used: 8 })], T0);
    expect(uneven.map((a) => a.hostId)).toEqual(["b", "b", "a", "b", "a", "b", "a", "b"]);
  });

  it("gives a GPU-less job the host with most free CPU, then most free memory, then the lowest hostId", () => {
    const devices = [cpuHost("a", 8), cpuHost("b", 8, { memoryMiB: 131072 }), cpuHost("c", 4, { memoryMiB: 1 << 20 })];
    expect(scheduleJobs([job(0, { cpus: 1 })], devices, T0)[0]!.hostId).toBe("b");
    expect(scheduleJobs([job(0, { cpus: 1 })], [cpuHost("b", 8), cpuHost("a", 8)], T0)[0]!.hostId).toBe("a");
  });

  it("never oversubscribes cores or memory, and places nothing that does not fit what is left", () => {
    const jobs = [job(0, { cpus: 6 }), job(0, { cpus: 6 }), job(0, { cpus: 2 })];
    // 11 cores free: the first job takes 6, the second does not fit in the 5 left, the third does.
    expect(scheduleJobs(jobs, [cpuHost("a", 16, { used: 5 })], T0).map((a) => a.jobId)).toEqual([jobs[0]!.id, jobs[2]!.id]);
    const memoryJobs = [job(0, { memoryMiB: 40_000 }), job(0, { memoryMiB: 30_000 }), job(0, { memoryMiB: 20_000 })];
    expect(scheduleJobs(memoryJobs, [cpuHost("a", 16, { memoryMiB: 65_536 })], T0).map((a) => a.jobId)).toEqual([memoryJobs[0]!.id, memoryJobs[2]!.id]);
    const gpuJobs = [job(1, { cpus: 8 }), job(1, { cpus: 8 }), job(1, { cpus: 8 })];
    const gpuHost: SchedDevice = { ...host("g", 4), cpus: 16, usedCpus: 0 };
    expect(scheduleJobs(gpuJobs, [gpuHost], T0)).toHaveLength(2);
  });

  it("makes a memory-hungry job wait for a host with room, and runs it there once there is", () => {
    const hungry = job(1, { memoryMiB: 200_000 });
    const small = job(1, { memoryMiB: 1000 });
    const roomy: SchedDevice = { ...host("roomy", 2, { busy: [0, 1] }), memoryMiB: 512_000, usedMemoryMiB: 400_000 };
    const tight: SchedDevice = { ...host("tight", 4), memoryMiB: 128_000 };
    const now = scheduleQueue({ queue: [hungry, small], devices: [roomy, tight], nowMs: T0 });
    // It fits no host now; "roomy" would hold it once its jobs end, so it holds "roomy".
    expect(now.assignments).toEqual([{ jobId: small.id, hostId: "tight", gpuIndices: [0] }]);
    expect(now.reservation).toEqual({ jobId: hungry.id, hostId: "roomy" });
    expect(now.waiting[hungry.id]).toEqual({ kind: "reserving", hostId: "roomy" });
    const later = scheduleJobs([hungry, small], [{ ...roomy, gpus: host("roomy", 2).gpus, usedMemoryMiB: 0 }, tight], T0);
    expect(later[0]).toEqual({ jobId: hungry.id, hostId: "roomy", gpuIndices: [0] });
  });

  it("says memory is what is short when GPUs and cores are free", () => {
    const blocker = job(1, { id: "a-blocker", createdAtMs: T0 - 100, constraints: { hostId: "other" } });
    const hungry = job(1, { id: "b-hungry", memoryMiB: 100_000 });
    const d: SchedDevice = { ...host("h", 2), memoryMiB: 256_000, usedMemoryMiB: 200_000, cpus: 32 };
    const other: SchedDevice = { ...host("other", 1, { busy: [0] }) };
    const out = scheduleQueue({ queue: [blocker, hungry], devices: [d, other], nowMs: T0 });
    // The blocker reserves "other"; the hungry job would fit "h" once its jobs end.
    expect(out.reservation).toEqual({ jobId: blocker.id, hostId: "other" });
    expect(out.waiting[hungry.id]).toEqual({ kind: "no-fit-now", largestFreeBlock: 2, short: "memory" });
  });

  it("does not limit hosts that report no CPU or memory figure (older agents)", () => {
    const old = host("old", 2);
    const unknown: SchedDevice = { ...host("unknown", 2), cpus: Infinity, memoryMiB: Number.NaN };
    for (const d of [old, unknown]) {
      expect(scheduleJobs([job(1, { cpus: 512, memoryMiB: 10_000_000 }), job(0, { cpus: 512 })], [d], T0)).toHaveLength(2);
      expect(neverFits(job(1, { cpus: 512, memoryMiB: 10_000_000 }), [d])).toBeNull();
    }
  });

  it("reserves a host whose GPUs are free but whose cores are taken, and lets no GPU-less job take them", () => {
    const big = job(2, { cpus: 32, createdAtMs: T0 - 10_000 });
    const cpuJob = job(0, { cpus: 4 });
    const gpuHost: SchedDevice = { ...host("g", 4, { busy: [0] }), cpus: 48, usedCpus: 24 };
    const out = scheduleQueue({ queue: [big, cpuJob, job(1, { cpus: 1 })], devices: [gpuHost], nowMs: T0 });
    expect(out.reservation).toEqual({ jobId: big.id, hostId: "g" });
    expect(out.assignments).toEqual([]);
    expect(out.waiting[cpuJob.id]).toEqual({ kind: "reserved-for", jobId: big.id, hostId: "g" });
    // A GPU-less job that asks for nothing the host limits may still run there.
    const free = job(0);
    expect(scheduleJobs([big, free], [gpuHost], T0)).toEqual([{ jobId: free.id, hostId: "g", gpuIndices: [] }]);
    // Once the running jobs' cores are back, the big job starts.
    expect(scheduleJobs([big, cpuJob], [{ ...gpuHost, usedCpus: 0 }], T0)[0]).toEqual({ jobId: big.id, hostId: "g", gpuIndices: [1, 2] });
  });
});

describe("fair share", () => {
  it("splits free GPUs between people within one decision", () => {
    const alice = Array.from({ length: 20 }, () => job(1, { owner: "alice" }));
    const bob = [job(1, { owner: "bob" }), job(1, { owner: "bob" })];
    const out = scheduleQueue({ queue: [...alice, ...bob], devices: [host("a", 2)], nowMs: T0 + 100 });
    expect(out.assignments.map((a) => a.jobId)).toEqual([alice[0]!.id, bob[0]!.id]);
  });

  it("starts both of bob's 2 jobs on the first two GPUs to free, though alice queued 20 before him", () => {
    // A lab of 2 GPUs. Alice's jobs run 60 and 90 minutes in turn, bob's 60; usage is the
    // GPU-hours of finished jobs (no decay over a few hours), held GPUs what runs.
    const MIN = 60_000;
    const jobs = [
      ...Array.from({ length: 20 }, (_, i) => job(1, { id: `alice-${String(i).padStart(2, "0")}`, owner: "alice", createdAtMs: T0 + i })),
      ...[0, 1].map((i) => job(1, { id: `bob-${i}`, owner: "bob", createdAtMs: T0 + MIN + i })),
    ];
    const duration = (id: string) => (id.startsWith("bob") ? 60 : Number(id.slice(6)) % 2 === 0 ? 60 : 90) * MIN;
    let queued = jobs.filter((j) => j.owner === "alice");
    const running: { id: string; owner: string; gpu: number; endMs: number }[] = [];
    const usage: Record<string, number> = {};
    const started: string[] = [];
    const decide = (nowMs: number) => {
      const busy = running.map((r) => r.gpu);
      const runningGpusByOwner: Record<string, number> = {};
      for (const r of running) runningGpusByOwner[r.owner] = (runningGpusByOwner[r.owner] ?? 0) + 1;
      const out = scheduleQueue({ queue: queued, devices: [host("a", 2, { busy })], nowMs, usage, runningGpusByOwner });
      for (const a of out.assignments) {
        const j = queued.find((q) => q.id === a.jobId)!;
        running.push({ id: j.id, owner: j.owner!, gpu: a.gpuIndices[0]!, endMs: nowMs + duration(j.id) });
        started.push(j.id);
      }
      queued = queued.filter((q) => !out.assignments.some((a) => a.jobId === q.id));
    };
    decide(T0 + 10);
    expect(started).toEqual(["alice-00", "alice-01"]);
    queued.push(...jobs.filter((j) => j.owner === "bob"));
    decide(T0 + MIN + 10); // bob's submit: nothing is free
    for (let end = 0; end < 4; end++) {
      running.sort((a, b) => a.endMs - b.endMs);
      const done = running.shift()!;
      usage[done.owner] = (usage[done.owner] ?? 0) + duration(done.id) / (60 * MIN);
      decide(done.endMs);
    }
    expect(started.slice(2, 4)).toEqual(["bob-0", "bob-1"]);
    expect(started.slice(4)).toEqual(["alice-02", "alice-03"]);
  });

  it("puts a person with no recent use before the 150th job of someone with recent use at the same priority", () => {
    const dave = Array.from({ length: 150 }, (_, i) => job(1, { owner: "dave", createdAtMs: T0 - 10_000 + i }));
    const carol = job(1, { owner: "carol", createdAtMs: T0 });
    const out = scheduleQueue({ queue: [...dave, carol], devices: [host("a", 1)], nowMs: T0, usage: { dave: 10 } });
    expect(out.assignments.map((a) => a.jobId)).toEqual([carol.id]);
    // Neither has recent use: dave's oldest goes first, then carol, then dave again.
    const even = scheduleQueue({ queue: [...dave, carol], devices: [host("a", 3)], nowMs: T0 });
    expect(even.assignments.map((a) => a.jobId)).toEqual([dave[0]!.id, carol.id, dave[1]!.id]);
  });

  it("ranks priority above fair share, and fair share above age", () => {
    const heavyUrgent = job(1, { owner: "heavy", priority: "urgent" });
    const light = job(1, { owner: "light", createdAtMs: T0 });
    const heavyOld = job(1, { owner: "heavy", createdAtMs: T0 - 1000 });
    const out = scheduleQueue({ queue: [heavyOld, light, heavyUrgent], devices: [host("a", 2)], nowMs: T0, usage: { heavy: 500 } });
    expect(out.assignments.map((a) => a.jobId)).toEqual([heavyUrgent.id, light.id]);
  });

  it("divides usage by share, counts held GPUs only through their hours, and gives jobs without an owner one account", () => {
    const a = job(1, { owner: "a" });
    const b = job(1, { owner: "b" });
    const devices = [host("h", 1)];
    // a used twice as much, but has twice the share: tie, so the older job (a's) goes first.
    expect(scheduleQueue({ queue: [a, b], devices, nowMs: T0, usage: { a: 20, b: 10 }, shares: { a: 2 } }).assignments[0]!.jobId).toBe(a.id);
    expect(scheduleQueue({ queue: [a, b], devices, nowMs: T0, usage: { a: 20, b: 10 } }).assignments[0]!.jobId).toBe(b.id);
    // GPUs held now count through the hours they have run, which the caller puts in usage: held
    // GPUs alone move nothing (limits aside), so the older job goes first.
    expect(scheduleQueue({ queue: [a, b], devices, nowMs: T0, runningGpusByOwner: { a: 3 } }).assignments[0]!.jobId).toBe(a.id);
    const nobody = job(1, { owner: null });
    expect(scheduleQueue({ queue: [nobody, b], devices, nowMs: T0, usage: { [NO_OWNER]: 50 } }).assignments[0]!.jobId).toBe(b.id);
    // A share that is not a positive number counts as 1; "constructor" is a name like any other.
    const c = job(1, { owner: "constructor" });
    expect(scheduleQueue({ queue: [c, b], devices, nowMs: T0, shares: { constructor: 0 }, usage: { b: 1 } }).assignments[0]!.jobId).toBe(c.id);
  });

  it("breaks a tie of key and age between people by job id", () => {
    const b = job(1, { id: "b", owner: "ann", createdAtMs: T0 });
    const a = job(1, { id: "a", owner: "bob", createdAtMs: T0 });
    expect(scheduleQueue({ queue: [b, a], devices: [host("h", 1)], nowMs: T0 }).assignments.map((x) => x.jobId)).toEqual(["a"]);
  });

  it("computes the key as the header states it", () => {
    expect(fairShareKey(10, 2, 2)).toBe((10 + 2 * HELD_GPU_HOURS) / 2);
  });
});

describe("owner limits", () => {
  it("holds an owner to maxGpusPerOwner, per owner or by default, counting what they hold now", () => {
    const jobs = [job(2, { owner: "a" }), job(2, { owner: "a" }), job(1, { owner: "a" }), job(1, { owner: "b" }), job(4, { owner: "b" })];
    const limits = { maxGpusPerOwner: { default: 3, owners: { b: 8 } } };
    const out = scheduleQueue({ queue: jobs, devices: [host("h", 8)], nowMs: T0, limits, runningGpusByOwner: { b: 3 } });
    expect(out.assignments.map((a) => a.jobId).sort()).toEqual([jobs[0]!.id, jobs[2]!.id, jobs[3]!.id, jobs[4]!.id].sort());
    expect(out.waiting[jobs[1]!.id]).toEqual({ kind: "owner-limit", owner: "a", limit: "gpus", max: 3, holding: 2 });
  });

  it("holds an owner to maxRunningJobsPerOwner, GPU-less jobs included", () => {
    const jobs = [job(0, { owner: "a" }), job(1, { owner: "a" }), job(0, { owner: "a" }), job(1, { owner: "b" })];
    const out = scheduleQueue({ queue: jobs, devices: [host("h", 4)], nowMs: T0, limits: { maxRunningJobsPerOwner: { default: 2 } }, runningJobsByOwner: { a: 1 } });
    expect(out.assignments.map((a) => a.jobId)).toEqual([jobs[0]!.id, jobs[3]!.id]);
    expect(out.waiting[jobs[1]!.id]).toEqual({ kind: "owner-limit", owner: "a", limit: "jobs", max: 2, holding: 2 });
  });

  it("lets a job skipped for its owner's limit reserve nothing and block nobody", () => {
    const big = job(4, { owner: "a", createdAtMs: T0 - 10_000 });
    const small = job(1, { owner: "b" });
    const out = scheduleQueue({ queue: [big, small], devices: [host("h", 4, { busy: [0] })], nowMs: T0, limits: { maxGpusPerOwner: { default: 2 } } });
    expect(out.reservation).toBeNull();
    expect(out.assignments).toEqual([{ jobId: small.id, hostId: "h", gpuIndices: [1] }]);
  });
});

describe("wait reasons", () => {
  it("names never-fits, no-schedulable-host, reserving, reserved-for and no-fit-now", () => {
    const devices = [host("a", 4, { busy: [0, 1] }), host("b", 2, { busy: [0] }), host("d", 8, { schedulable: false, name: "NVIDIA H100 80GB HBM3" })];
    const huge = job(16);
    const h100 = job(1, { constraints: { gpuName: "h100" } });
    const big = job(4);
    const two = job(2);
    const alsoBig = job(4, { constraints: { hostId: "b" } });
    const out = scheduleQueue({ queue: [huge, h100, big, two, alsoBig, job(1)], devices, nowMs: T0 });
    expect(out.waiting[huge.id]).toEqual({ kind: "never-fits", why: "needs 16 GPUs; the most any host has is 8" });
    expect(out.waiting[h100.id]).toEqual({ kind: "no-schedulable-host" });
    expect(out.waiting[big.id]).toEqual({ kind: "reserving", hostId: "a" });
    expect(out.waiting[two.id]).toEqual({ kind: "reserved-for", jobId: big.id, hostId: "a" });
    expect(out.waiting[alsoBig.id]).toEqual({ kind: "never-fits", why: 'needs 4 GPUs; the most host "b" has is 2' });
    expect(out.assignments).toEqual([{ jobId: expect.any(String), hostId: "b", gpuIndices: [1] }]);
    // "Needs 4 GPUs; the largest free block is 2": the 8-GPU job holds the full host.
    const eight = job(8, { priority: "high" });
    const four = job(4);
    const blocked = scheduleQueue({ queue: [eight, four], devices: [host("a", 4, { busy: [0, 1] }), host("b", 8, { busy: [0, 1, 2, 3, 4, 5, 6, 7] })], nowMs: T0 });
    expect(blocked.waiting).toEqual({ [eight.id]: { kind: "reserving", hostId: "b" }, [four.id]: { kind: "no-fit-now", largestFreeBlock: 2, short: "gpus" } });
  });

  it("says a job is behind another person's jobs when fair share put them first", () => {
    const alice = [job(1, { owner: "alice", createdAtMs: T0 - 1000 }), job(1, { owner: "alice", createdAtMs: T0 - 900 })];
    const bob = [0, 1, 2].map((i) => job(1, { owner: "bob", createdAtMs: T0 - 500 + i }));
    const out = scheduleQueue({ queue: [...alice, ...bob], devices: [host("a", 1, { busy: [0] })], nowMs: T0, usage: { alice: 100 } });
    expect(out.waiting[bob[0]!.id]).toEqual({ kind: "reserving", hostId: "a" });
    expect(out.waiting[bob[1]!.id]).toEqual({ kind: "no-fit-now", largestFreeBlock: 0, short: "gpus" });
    expect(out.waiting[alice[0]!.id]).toEqual({ kind: "fair-share", behind: "bob", jobs: 3 });
    expect(out.waiting[alice[1]!.id]).toEqual({ kind: "fair-share", behind: "bob", jobs: 3 });
  });

  it("describes what was free at each job's turn", () => {
    const devices = [{ ...host("a", 4), cpus: 8 }, host("b", 8, { busy: [0, 1, 2, 3, 4, 5, 6, 7] })];
    const eight = job(8);
    const first = job(2, { cpus: 16 });
    const three = job(3, { cpus: 1 });
    const second = job(2, { cpus: 16 });
    const out = scheduleQueue({ queue: [eight, first, three, second], devices, nowMs: T0 });
    expect(out.assignments).toEqual([{ jobId: three.id, hostId: "a", gpuIndices: [0, 1, 2] }]);
    expect(out.waiting[first.id]).toEqual({ kind: "no-fit-now", largestFreeBlock: 4, short: "cpus" });
    expect(out.waiting[second.id]).toEqual({ kind: "no-fit-now", largestFreeBlock: 1, short: "gpus" });
  });

  it("gives reasons only to the first maxReasons waiting jobs, in rank order", () => {
    const jobs = Array.from({ length: 10 }, () => job(1));
    const out = scheduleQueue({ queue: jobs, devices: [host("a", 2)], nowMs: T0, maxReasons: 3 });
    expect(Object.keys(out.waiting)).toEqual(jobs.slice(2, 5).map((j) => j.id));
    expect(Object.keys(scheduleQueue({ queue: jobs, devices: [host("a", 2)], nowMs: T0 }).waiting)).toHaveLength(8);
    expect(DEFAULT_MAX_REASONS).toBe(200);
  });
});

describe("neverFits", () => {
  const devices = [host("a", 8, { labels: { room: "1" } }), { ...host("b", 4, { name: RTX, mem: 24564, labels: { room: "2" } }), cpus: 32, memoryMiB: 131072 }, host("c", 2, { schedulable: false })];

  it("passes a job some host could hold, draining hosts included", () => {
    expect(neverFits(job(8), devices)).toBeNull();
    expect(neverFits(job(2, { constraints: { hostId: "c" } }), devices)).toBeNull();
    expect(neverFits(job(0, { cpus: 32 }), devices)).toBeNull();
  });

  it("says what no host has", () => {
    expect(neverFits(job(1), [])).toBe("no host is registered yet");
    expect(neverFits(job(1, { constraints: { hostId: "z" } }), devices)).toBe('no host is called "z"');
    expect(neverFits(job(1, { constraints: { labels: { room: "3" } } }), devices)).toBe("no host has the label room=3");
    expect(neverFits(job(1, { constraints: { labels: { room: "1", fast: "yes" } } }), devices)).toBe("no host has all the labels room=1, fast=yes");
    expect(neverFits(job(1, { constraints: { hostId: "a", labels: { room: "2" } } }), devices)).toBe('host "a" does not have the label room=2');
    expect(neverFits(job(9), devices)).toBe("needs 9 GPUs; the most any host has is 8");
    expect(neverFits(job(5, { constraints: { gpuName: "rtx" } }), devices)).toBe('needs 5 GPUs named like "rtx"; the most any host has is 4');
    expect(neverFits(job(1, { constraints: { gpuName: "rtx", minMemoryMiB: 40000 } }), devices)).toBe('needs 1 GPU named like "rtx" and with at least 40000 MiB; the most any host has is 0');
    expect(neverFits(job(1, { cpus: 64, constraints: { labels: { room: "2" } } }), devices)).toBe("needs 64 CPUs; the most a host with its GPUs has is 32");
    expect(neverFits(job(0, { memoryMiB: 262144, constraints: { hostId: "b" } }), devices)).toBe('needs 256 GiB of memory; the most host "b" has is 128 GiB');
  });
});

// ---- the rules written the plain way, for comparison ----

/**
 * The scheduler's documented rules without any of its speed-ups: the next job is picked from the
 * whole remaining queue with the accounts' keys as they stand, and every job looks at every host.
 */
function naiveDecide(input: ScheduleInput): ScheduleDecision {
  const { queue, devices, nowMs, limits } = input;
  const maxReasons = input.maxReasons ?? DEFAULT_MAX_REASONS;
  const own = (r: Record<string, number> | undefined, k: string) => (r && Object.hasOwn(r, k) ? r[k] : undefined);
  const accountOf = (j: SchedJob) => j.owner ?? NO_OWNER;
  const ask = (x: number | undefined) => (x !== undefined && x > 0 ? x : 0);
  const total = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? Infinity : x);
  const hosts = devices
    .filter((d) => d.schedulable)
    .sort((a, b) => (a.hostId < b.hostId ? -1 : 1))
    .map((d) => ({
      d,
      free: d.gpus.filter((g) => g.free && !g.foreign).sort((a, b) => a.index - b.index),
      cpus: Math.max(0, total(d.cpus) - (d.usedCpus ?? 0)),
      memory: Math.max(0, total(d.memoryMiB) - (d.usedMemoryMiB ?? 0)),
    }));
  type Host = (typeof hosts)[number];
  const heldGpus = new Map<string, number>();
  const heldJobs = new Map<string, number>();
  const usageOf = (a: string) => {
    const u = own(input.usage, a);
    return u !== undefined && u > 0 ? u : 0;
  };
  const shareOf = (a: string) => {
    const s = own(input.shares, a);
    return s !== undefined && s > 0 && s !== Infinity ? s : 1;
  };
  const gpusHeld = (a: string) => heldGpus.get(a) ?? own(input.runningGpusByOwner, a) ?? 0;
  const jobsHeld = (a: string) => heldJobs.get(a) ?? own(input.runningJobsByOwner, a) ?? 0;
  const keyOf = (a: string) => fairShareKey(usageOf(a), gpusHeld(a) - (own(input.runningGpusByOwner, a) ?? 0), shareOf(a));
  const limitOf = (l: { default?: number; owners?: Record<string, number> } | undefined, a: string) => own(l?.owners, a) ?? l?.default ?? Infinity;
  const older = (x: SchedJob, y: SchedJob) => x.createdAtMs < y.createdAtMs || (x.createdAtMs === y.createdAtMs && x.id < y.id);

  let reserved: Host | undefined;
  let reservation: ScheduleDecision["reservation"] = null;
  const assignments: Assignment[] = [];
  const waiting: Record<string, WaitReason> = {};
  let reasonsGiven = 0;
  const considered: SchedJob[] = [];
  const remaining = [...queue];
  while (remaining.length > 0) {
    let best = 0;
    for (let i = 1; i < remaining.length; i++) {
      const x = remaining[i]!;
      const y = remaining[best]!;
      const rx = effectiveRank(x, nowMs);
      const ry = effectiveRank(y, nowMs);
      if (rx !== ry ? rx > ry : keyOf(accountOf(x)) !== keyOf(accountOf(y)) ? keyOf(accountOf(x)) < keyOf(accountOf(y)) : older(x, y)) best = i;
    }
    const j = remaining.splice(best, 1)[0]!;
    const reason = (r: () => WaitReason) => {
      if (reasonsGiven++ < maxReasons) waiting[j.id] = r();
    };
    const a = accountOf(j);
    const c = j.constraints;
    const [g, cpus, memory] = [j.gpus, ask(j.cpus), ask(j.memoryMiB)];
    const matchingFree = (h: Host) => h.free.filter((x) => gpuMatches(x, c));
    const fitsNow = (h: Host) => hostMatches(h.d, c) && matchingFree(h).length >= g && h.cpus >= cpus && h.memory >= memory;
    const fitsEmpty = (h: Host) => hostMatches(h.d, c) && h.d.gpus.filter((x) => gpuMatches(x, c)).length >= g && total(h.d.cpus) >= cpus && total(h.d.memoryMiB) >= memory;
    const mayUse = (h: Host) => h !== reserved || (g === 0 && (cpus === 0 || total(h.d.cpus) === Infinity) && (memory === 0 || total(h.d.memoryMiB) === Infinity));
    const rank = effectiveRank(j, nowMs);
    const before = [...considered];
    considered.push(j);

    const overGpus = g > 0 && gpusHeld(a) + g > limitOf(limits?.maxGpusPerOwner, a);
    if (overGpus || jobsHeld(a) + 1 > limitOf(limits?.maxRunningJobsPerOwner, a)) {
      reason(() =>
        overGpus
          ? { kind: "owner-limit", owner: j.owner ?? null, limit: "gpus", max: limitOf(limits?.maxGpusPerOwner, a), holding: gpusHeld(a) }
          : { kind: "owner-limit", owner: j.owner ?? null, limit: "jobs", max: limitOf(limits?.maxRunningJobsPerOwner, a), holding: jobsHeld(a) },
      );
      continue;
    }
    const fitting = hosts.filter((h) => fitsNow(h) && mayUse(h));
    // Stable sorts: hostId order among equals.
    if (g > 0) fitting.sort((x, y) => x.free.length - y.free.length);
    else fitting.sort((x, y) => (x.cpus !== y.cpus ? (x.cpus > y.cpus ? -1 : 1) : x.memory !== y.memory ? (x.memory > y.memory ? -1 : 1) : 0));
    if (fitting.length > 0) {
      const h = fitting[0]!;
      const take = matchingFree(h).slice(0, g);
      h.free = h.free.filter((x) => !take.includes(x));
      h.cpus -= cpus;
      h.memory -= memory;
      heldGpus.set(a, gpusHeld(a) + g);
      heldJobs.set(a, jobsHeld(a) + 1);
      assignments.push({ jobId: j.id, hostId: h.d.hostId, gpuIndices: take.map((x) => x.index) });
      continue;
    }
    if (g > 0 && !reserved) {
      const candidates = hosts.filter(fitsEmpty);
      if (candidates.length > 0) {
        reserved = candidates.reduce((b, h) => (matchingFree(h).length > matchingFree(b).length ? h : b));
        reservation = { jobId: j.id, hostId: reserved.d.hostId };
        const hostId = reserved.d.hostId;
        reason(() => ({ kind: "reserving", hostId }));
        continue;
      }
    }
    reason(() => {
      if (!hosts.some(fitsEmpty)) {
        const why = neverFits(j, devices);
        return why !== null ? { kind: "never-fits", why } : { kind: "no-schedulable-host" };
      }
      if (reserved && fitsNow(reserved)) return { kind: "reserved-for", jobId: reservation!.jobId, hostId: reservation!.hostId };
      const younger = new Map<string, number>();
      for (const x of before) if (accountOf(x) !== a && effectiveRank(x, nowMs) === rank && older(j, x)) younger.set(accountOf(x), (younger.get(accountOf(x)) ?? 0) + 1);
      const behind = [...younger].sort(([n1, c1], [n2, c2]) => c2 - c1 || (n1 < n2 ? -1 : 1))[0];
      if (behind) return { kind: "fair-share", behind: behind[0] === NO_OWNER ? null : behind[0], jobs: behind[1] };
      const matching = hosts.filter((h) => hostMatches(h.d, c));
      const largest = Math.max(0, ...matching.map((h) => matchingFree(h).length));
      const withGpus = matching.filter((h) => matchingFree(h).length >= g);
      return { kind: "no-fit-now", largestFreeBlock: largest, short: g > 0 && withGpus.length === 0 ? "gpus" : withGpus.some((h) => h.cpus >= cpus) ? "memory" : "cpus" };
    });
  }
  return { assignments, waiting, reservation };
}

function expectValid(out: Assignment[], input: ScheduleInput): void {
  const jobs = new Map(input.queue.map((j) => [j.id, j]));
  const used = new Set<string>();
  const cpus = new Map<string, number>();
  const memory = new Map<string, number>();
  for (const a of out) {
    const j = jobs.get(a.jobId)!;
    const d = input.devices.find((x) => x.hostId === a.hostId)!;
    expect(d.schedulable).toBe(true);
    expect(a.gpuIndices).toHaveLength(j.gpus);
    expect(hostMatches(d, j.constraints)).toBe(true);
    for (const i of a.gpuIndices) {
      const g = d.gpus.find((x) => x.index === i)!;
      expect(g.free && !g.foreign && gpuMatches(g, j.constraints)).toBe(true);
      expect(used.has(`${a.hostId}/${i}`)).toBe(false);
      used.add(`${a.hostId}/${i}`);
    }
    cpus.set(d.hostId, (cpus.get(d.hostId) ?? d.usedCpus ?? 0) + (j.cpus ?? 0));
    memory.set(d.hostId, (memory.get(d.hostId) ?? d.usedMemoryMiB ?? 0) + (j.memoryMiB ?? 0));
    if (d.cpus !== undefined && (j.cpus ?? 0) > 0) expect(cpus.get(d.hostId)).toBeLessThanOrEqual(d.cpus);
    if (d.memoryMiB !== undefined && !Number.isNaN(d.memoryMiB) && (j.memoryMiB ?? 0) > 0) expect(memory.get(d.hostId)).toBeLessThanOrEqual(d.memoryMiB);
  }
  expect(new Set(out.map((a) => a.jobId)).size).toBe(out.length);
}

function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

function randomLab(rnd: () => number, size = { hosts: 40, jobs: 80 }): ScheduleInput {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const names = [A100, RTX, "NVIDIA H100 80GB HBM3"];
  const people = ["ann", "bob", "cy", "constructor", "dee"];
  const devices: SchedDevice[] = Array.from({ length: 1 + Math.floor(rnd() * size.hosts) }, (_, h) => {
    const mixed = rnd() < 0.2;
    const name = pick(names);
    const device: SchedDevice = {
      hostId: `h${String(Math.floor(rnd() * 1000)).padStart(3, "0")}-${h}`,
      schedulable: rnd() > 0.15,
      labels: rnd() < 0.5 ? { room: pick(["1", "2"]), ...(rnd() < 0.3 ? { fast: "yes" } : {}) } : {},
      gpus: Array.from({ length: pick([0, 1, 2, 4, 4, 8, 8]) }, (_, index) => {
        const n = mixed ? pick(names) : name;
        return { index, name: n, memoryTotalMiB: n === RTX ? 24564 : 81920, free: rnd() > 0.4, foreign: rnd() < 0.1 };
      }),
    };
    // Older agents report no CPU or memory; some report one of them, or an unlimited figure.
    const r = rnd();
    if (r < 0.3) return device;
    const cpus = pick([8, 16, 32, 64, Infinity]);
    const memoryMiB = pick([16384, 65536, 262144, Number.NaN]);
    return {
      ...device,
      ...(r < 0.85 || rnd() < 0.5 ? { cpus, usedCpus: cpus === Infinity ? 0 : Math.floor(rnd() * cpus * 1.1) } : {}),
      ...(r < 0.85 || rnd() < 0.5 ? { memoryMiB, usedMemoryMiB: Number.isNaN(memoryMiB) ? 0 : Math.floor(rnd() * memoryMiB) } : {}),
    };
  });
  const constraint = (): Constraints => {
    const r = rnd();
    if (r < 0.55) return {};
    if (r < 0.65) return { gpuName: pick(["a100", "RTX", "h100", "v100"]) };
    if (r < 0.75) return { minMemoryMiB: pick([16000, 40000, 100000]) };
    if (r < 0.85) return { labels: rnd() < 0.5 ? { room: pick(["1", "2"]) } : { room: "1", fast: "yes" } };
    if (r < 0.95) return { hostId: pick(devices).hostId };
    return { gpuName: "a100", labels: { room: "2" } };
  };
  const withOwners = rnd() < 0.8;
  // Some labs have jobs of few distinct ages, so ties of age (and of fair-share key) are common.
  const coarse = rnd() < 0.3;
  const queue: SchedJob[] = Array.from({ length: Math.floor(rnd() * size.jobs) }, (_, i) => {
    const gpus = pick([0, 1, 1, 1, 2, 3, 4, 8, 16]);
    const j: SchedJob = {
      id: `q${i}`,
      priority: pick(["low", "normal", "high"] as const),
      createdAtMs: coarse ? T0 - pick([0, 1, 2, 5]) * (AGING_STEP_MS / 2) : T0 - Math.floor(rnd() * 3 * AGING_STEP_MS) + pick([0, 0, 0, 1]),
      gpus,
      constraints: constraint(),
    };
    if (rnd() < 0.7) j.cpus = pick([0, 1, 2, 4, 8, 16, 48]);
    if (rnd() < 0.7) j.memoryMiB = pick([0, 1024, 8192, 32768, 131072]);
    if (withOwners) j.owner = rnd() < 0.1 ? null : pick(people);
    return j;
  });
  if (!withOwners) return { queue, devices, nowMs: T0 };
  const some = (values: readonly number[]) => Object.fromEntries(people.filter(() => rnd() < 0.6).map((p) => [p, pick(values)]));
  return {
    queue,
    devices,
    nowMs: T0,
    usage: { ...some([0, 1, 2, 5, 10, 40]), ...(rnd() < 0.3 ? { [NO_OWNER]: 3 } : {}) },
    ...(rnd() < 0.5 ? { shares: some([1, 2, 0.5, 0, -1]) } : {}),
    runningGpusByOwner: some([0, 1, 2, 4]),
    runningJobsByOwner: some([0, 1, 3]),
    ...(rnd() < 0.6
      ? {
          limits: {
            ...(rnd() < 0.7 ? { maxGpusPerOwner: { ...(rnd() < 0.5 ? { default: pick([2, 4, 8]) } : {}), owners: some([0, 1, 3, 6]) } } : {}),
            ...(rnd() < 0.7 ? { maxRunningJobsPerOwner: { ...(rnd() < 0.5 ? { default: pick([1, 3, 6]) } : {}), owners: some([0, 2, 5]) } } : {}),
          },
        }
      : {}),
    ...(rnd() < 0.3 ? { maxReasons: pick([0, 1, 5]) } : {}),
  };
}
