import { describe, expect, it } from "vitest";
import { AGING_STEP_MS, scheduleJobs, type SchedDevice, type SchedJob } from "../../dispatcher/scheduler.js";

const T0 = 1_700_000_000_000;

function host(hostId: string, gpus: number, opts: { busy?: number[]; name?: string; mem?: number; labels?: Record<string, string>; schedulable?: boolean } = {}): SchedDevice {
  return {
    hostId,
    schedulable: opts.schedulable ?? true,
    labels: opts.labels ?? {},
    gpus: Array.from({ length: gpus }, (_, index) => ({
      index,
      name: opts.name ?? "NVIDIA A100-SXM4-80GB",
      memoryTotalMiB: opts.mem ?? 81920,
      free: !(opts.busy ?? []).includes(index),
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
    const out = scheduleJobs([job(4)], [host("a", 4)], T0);
    expect(out).toEqual([{ jobId: expect.any(String), hostId: "a", gpuIndices: [0, 1, 2, 3] }]);
  });

  it("never splits a job's GPUs across hosts", () => {
    expect(scheduleJobs([job(4)], [host("a", 2), host("b", 2)], T0)).toEqual([]);
  });

  it("skips busy GPUs", () => {
    const out = scheduleJobs([job(2)], [host("a", 4, { busy: [0, 2] })], T0);
    expect(out[0].gpuIndices).toEqual([1, 3]);
  });

  it("orders by priority, then age", () => {
    const low = job(1, { priority: "low", createdAtMs: T0 - 1000 });
    const oldNormal = job(1, { createdAtMs: T0 - 500 });
    const high = job(1, { priority: "high", createdAtMs: T0 });
    const newNormal = job(1, { createdAtMs: T0 - 100 });
    const out = scheduleJobs([low, newNormal, oldNormal, high], [host("a", 2)], T0);
    expect(out.map((a) => a.jobId)).toEqual([high.id, oldNormal.id]);
  });

  it("raises a waiting job's priority with age so low jobs are not starved", () => {
    const oldLow = job(1, { priority: "low", createdAtMs: T0 - 2 * AGING_STEP_MS - 1 });
    const freshHigh = job(1, { priority: "high", createdAtMs: T0 });
    const out = scheduleJobs([freshHigh, oldLow], [host("a", 1)], T0);
    expect(out.map((a) => a.jobId)).toEqual([oldLow.id]);
  });

  it("packs small jobs onto the fullest host that fits, keeping big holes open", () => {
    const out = scheduleJobs([job(1)], [host("big", 8), host("small", 4, { busy: [0, 1, 2] })], T0);
    expect(out[0].hostId).toBe("small");
  });

  it("honours hostId, labels, gpuName and minMemoryMiB constraints", () => {
    const devices = [
      host("a", 2, { name: "NVIDIA GeForce RTX 4090", mem: 24564, labels: { room: "1" } }),
      host("b", 2, { name: "NVIDIA A100-SXM4-80GB", mem: 81920, labels: { room: "2" } }),
    ];
    expect(scheduleJobs([job(1, { constraints: { hostId: "b" } })], devices, T0)[0].hostId).toBe("b");
    expect(scheduleJobs([job(1, { constraints: { labels: { room: "1" } } })], devices, T0)[0].hostId).toBe("a");
    expect(scheduleJobs([job(1, { constraints: { gpuName: "a100" } })], devices, T0)[0].hostId).toBe("b");
    expect(scheduleJobs([job(1, { constraints: { minMemoryMiB: 40000 } })], devices, T0)[0].hostId).toBe("b");
    expect(scheduleJobs([job(1, { constraints: { gpuName: "h100" } })], devices, T0)).toEqual([]);
  });

  it("runs gpus: 0 jobs on any schedulable host without taking a GPU", () => {
    const out = scheduleJobs([job(0), job(0), job(1)], [host("a", 1)], T0);
    expect(out).toHaveLength(3);
    expect(out.filter((a) => a.gpuIndices.length === 0)).toHaveLength(2);
  });

  it("gives nothing to draining or unhealthy hosts", () => {
    expect(scheduleJobs([job(1), job(0)], [host("a", 4, { schedulable: false })], T0)).toEqual([]);
  });

  it("does not let a job that can never fit block the ones behind it", () => {
    const huge = job(16, { priority: "high" });
    const small = job(1);
    const out = scheduleJobs([huge, small], [host("a", 8)], T0);
    expect(out.map((a) => a.jobId)).toEqual([small.id]);
  });

  it("a 4-GPU job waiting behind a stream of 1-GPU jobs gets its host", () => {
    // Host a has 2 of 4 GPUs busy. The big job is older than the small ones.
    const big = job(4, { createdAtMs: T0 - 10_000 });
    let busy = [0, 1];
    const smallStream = () => Array.from({ length: 4 }, () => job(1));
    // Round 1: nothing may take a's free GPUs, they are held for the big job.
    let out = scheduleJobs([big, ...smallStream()], [host("a", 4, { busy })], T0);
    expect(out).toEqual([]);
    // The running jobs end one by one; still no small job gets in.
    busy = [0];
    out = scheduleJobs([big, ...smallStream()], [host("a", 4, { busy })], T0);
    expect(out).toEqual([]);
    busy = [];
    out = scheduleJobs([big, ...smallStream()], [host("a", 4, { busy })], T0);
    expect(out).toEqual([{ jobId: big.id, hostId: "a", gpuIndices: [0, 1, 2, 3] }]);
  });

  it("lets small jobs use other hosts while the big job holds its reservation", () => {
    const big = job(4, { createdAtMs: T0 - 10_000 });
    const small = job(1);
    const out = scheduleJobs([big, small], [host("a", 4, { busy: [0] }), host("b", 2, { busy: [0] })], T0);
    expect(out).toEqual([{ jobId: small.id, hostId: "b", gpuIndices: [1] }]);
  });

  it("is deterministic for the same input", () => {
    const jobs = Array.from({ length: 50 }, (_, i) => job((i % 3) + 1));
    const devices = [host("a", 8), host("b", 8, { busy: [1, 5] }), host("c", 4)];
    expect(scheduleJobs(jobs, devices, T0)).toEqual(scheduleJobs([...jobs].reverse(), [...devices].reverse(), T0));
  });
});
