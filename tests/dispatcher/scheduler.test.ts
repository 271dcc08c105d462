import { describe, expect, it } from "vitest";
import type { Constraints } from "../../core/api.js";
import { AGING_STEP_MS, effectiveRank, gpuMatches, hostMatches, scheduleJobs, type Assignment, type SchedDevice, type SchedJob } from "../../dispatcher/scheduler.js";

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
      const { queue, devices } = randomLab(rnd);
      const got = scheduleJobs(queue, devices, T0);
      expect(got, `lab ${lab}`).toEqual(naiveSchedule(queue, devices, T0));
      expectValid(got, queue, devices);
    }
  });

  it("decides as the naive rules do on a lab of a few hundred hosts and thousands of jobs", () => {
    const rnd = seeded(11);
    const { queue, devices } = randomLab(rnd, { hosts: 300, jobs: 3000 });
    const got = scheduleJobs(queue, devices, T0);
    expect(got.length).toBeGreaterThan(100);
    expect(got).toEqual(naiveSchedule(queue, devices, T0));
  });
});

// ---- the rules written the plain way, for comparison ----

/**
 * The scheduler's documented rules without any of its speed-ups: every job looks at every host.
 */
function naiveSchedule(queue: SchedJob[], devices: SchedDevice[], nowMs: number): Assignment[] {
  const ranked = [...queue].sort((a, b) => effectiveRank(b, nowMs) - effectiveRank(a, nowMs) || a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const hosts = devices
    .filter((d) => d.schedulable)
    .sort((a, b) => (a.hostId < b.hostId ? -1 : 1))
    .map((d) => ({ d, free: d.gpus.filter((g) => g.free && !g.foreign).sort((a, b) => a.index - b.index) }));
  let reserved: string | undefined;
  let reservationMade = false;
  const out: Assignment[] = [];
  for (const j of ranked) {
    const c = j.constraints;
    if (j.gpus === 0) {
      const h = hosts.find((x) => hostMatches(x.d, c));
      if (h) out.push({ jobId: j.id, hostId: h.d.hostId, gpuIndices: [] });
      continue;
    }
    const fitting = hosts
      .filter((h) => h.d.hostId !== reserved && hostMatches(h.d, c) && h.free.filter((g) => gpuMatches(g, c)).length >= j.gpus)
      .sort((a, b) => a.free.length - b.free.length); // stable: hostId order among equals
    if (fitting.length > 0) {
      const h = fitting[0]!;
      const take = h.free.filter((g) => gpuMatches(g, c)).slice(0, j.gpus);
      h.free = h.free.filter((g) => !take.includes(g));
      out.push({ jobId: j.id, hostId: h.d.hostId, gpuIndices: take.map((g) => g.index) });
      continue;
    }
    if (reservationMade) continue;
    const candidates = hosts.filter((h) => hostMatches(h.d, c) && h.d.gpus.filter((g) => gpuMatches(g, c)).length >= j.gpus);
    if (candidates.length === 0) continue;
    const freeOf = (h: (typeof hosts)[number]) => h.free.filter((g) => gpuMatches(g, c)).length;
    reserved = candidates.reduce((best, h) => (freeOf(h) > freeOf(best) ? h : best)).d.hostId;
    reservationMade = true;
  }
  return out;
}

function expectValid(out: Assignment[], queue: SchedJob[], devices: SchedDevice[]): void {
  const jobs = new Map(queue.map((j) => [j.id, j]));
  const used = new Set<string>();
  for (const a of out) {
    const j = jobs.get(a.jobId)!;
    const d = devices.find((x) => x.hostId === a.hostId)!;
    expect(d.schedulable).toBe(true);
    expect(a.gpuIndices).toHaveLength(j.gpus);
    expect(hostMatches(d, j.constraints)).toBe(true);
    for (const i of a.gpuIndices) {
      const g = d.gpus.find((x) => x.index === i)!;
      expect(g.free && !g.foreign && gpuMatches(g, j.constraints)).toBe(true);
      expect(used.has(`${a.hostId}/${i}`)).toBe(false);
      used.add(`${a.hostId}/${i}`);
    }
  }
  expect(new Set(out.map((a) => a.jobId)).size).toBe(out.length);
}

function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

function randomLab(rnd: () => number, size = { hosts: 40, jobs: 80 }): { queue: SchedJob[]; devices: SchedDevice[] } {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const names = [A100, RTX, "NVIDIA H100 80GB HBM3"];
  const devices: SchedDevice[] = Array.from({ length: 1 + Math.floor(rnd() * size.hosts) }, (_, h) => {
    const mixed = rnd() < 0.2;
    const name = pick(names);
    return {
      hostId: `h${String(Math.floor(rnd() * 1000)).padStart(3, "0")}-${h}`,
      schedulable: rnd() > 0.15,
      labels: rnd() < 0.5 ? { room: pick(["1", "2"]), ...(rnd() < 0.3 ? { fast: "yes" } : {}) } : {},
      gpus: Array.from({ length: pick([0, 1, 2, 4, 4, 8, 8]) }, (_, index) => {
        const n = mixed ? pick(names) : name;
        return { index, name: n, memoryTotalMiB: n === RTX ? 24564 : 81920, free: rnd() > 0.4, foreign: rnd() < 0.1 };
      }),
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
  const queue: SchedJob[] = Array.from({ length: Math.floor(rnd() * size.jobs) }, (_, i) => ({
    id: `q${i}`,
    priority: pick(["low", "normal", "high"] as const),
    createdAtMs: T0 - Math.floor(rnd() * 3 * AGING_STEP_MS) + pick([0, 0, 0, 1]),
    gpus: pick([0, 1, 1, 1, 2, 3, 4, 8, 16]),
    constraints: constraint(),
  }));
  return { queue, devices };
}
