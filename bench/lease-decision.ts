// lease-decision-ms-10k-jobs: one scheduling decision over 10,000 queued jobs of 40 people and 520
// hosts (500 of 8 GPUs, 20 CPU-only), with CPU, memory, fair share, owner limits and the reasons
// for the first 200 waiting jobs in play, against ranking the same queue by priority and age (the
// least any scheduler must do). p50 and p99 both have the goal; the note says how many decisions
// a garbage collection landed in (seen as the heap shrinking across one: the gc PerformanceObserver
// stays silent under the tsx CLI), which is what the tail is made of when the machine is quiet.
import { getHeapStatistics } from "node:v8";
import { rankQueue, scheduleQueue, type ScheduleInput, type SchedDevice, type SchedJob } from "../dispatcher/scheduler.js";
import { machineLoad } from "./lab-dispatcher.js";
import { percentile, round, type Benchmark } from "./types.js";

const GiB = 1024;

/**
 * A lab as the dispatcher would hand it to the scheduler: 500 hosts x 8 GPUs (about 30 % busy, 5 %
 * unschedulable, one in ten on an older agent that reports no CPU or memory), 20 CPU-only hosts,
 * and 10,000 queued jobs in age order (as JobIndex.queued() gives them) from 40 people whose use
 * follows a long tail: a few heavy users with most of the jobs and GPU-hours, some with none lately.
 */
export function syntheticLab(seed: number): ScheduleInput {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const nowMs = 1_700_000_000_000;
  const people = Array.from({ length: 40 }, (_, k) => `p${String(k).padStart(2, "0")}`);
  const weights = people.map((_, k) => 1 / (k + 1));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const somebody = () => {
    let r = rnd() * totalWeight;
    for (let k = 0; k < people.length; k++) if ((r -= weights[k]!) <= 0) return people[k]!;
    return people[people.length - 1]!;
  };
  const runningGpusByOwner: Record<string, number> = {};
  const runningJobsByOwner: Record<string, number> = {};
  const running = (owner: string, gpus: number) => {
    runningGpusByOwner[owner] = (runningGpusByOwner[owner] ?? 0) + gpus;
    runningJobsByOwner[owner] = (runningJobsByOwner[owner] ?? 0) + 1;
  };

  const names = ["NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3"];
  const devices: SchedDevice[] = Array.from({ length: 500 }, (_, h) => {
    const rtx = h % 3 === 1;
    const gpus = Array.from({ length: 8 }, (_, index) => ({ index, name: names[h % 3]!, memoryTotalMiB: rtx ? 24564 : 81920, free: rnd() > 0.7 }));
    const busy = gpus.filter((g) => !g.free).length;
    for (let i = 0; i < busy; i++) running(somebody(), 1);
    const device: SchedDevice = { hostId: `gpu-${String(h).padStart(3, "0")}`, schedulable: rnd() > 0.05, labels: { room: String(h % 4) }, gpus };
    if (rnd() < 0.1) return device; // an older agent: no CPU or memory figures
    return { ...device, cpus: rtx ? 64 : 128, memoryMiB: (rtx ? 256 : 1024) * GiB, usedCpus: busy * (rtx ? 6 : 12), usedMemoryMiB: busy * (rtx ? 24 : 96) * GiB };
  });
  for (let h = 0; h < 20; h++) {
    const jobs = Math.floor(rnd() * 8);
    for (let i = 0; i < jobs; i++) running(somebody(), 0);
    devices.push({ hostId: `cpu-${String(h).padStart(2, "0")}`, schedulable: true, labels: { room: String(h % 4) }, gpus: [], cpus: 96, memoryMiB: 384 * GiB, usedCpus: jobs * 8, usedMemoryMiB: jobs * 32 * GiB });
  }

  // Recent GPU-hours, decayed: heavy users have thousands, every fifth person none lately.
  const usage: Record<string, number> = {};
  people.forEach((p, k) => {
    if (k % 5 !== 4) usage[p] = (5000 / (k + 1)) * (0.5 + rnd());
  });
  const queue = Array.from<unknown, SchedJob>({ length: 10_000 }, (_, i) => {
    const r = rnd();
    const gpus = [1, 1, 1, 2, 4, 8, 0][Math.floor(rnd() * 7)]!;
    return {
      id: `job-${i}`,
      priority: r < 0.1 ? "high" : r < 0.8 ? "normal" : "low",
      createdAtMs: nowMs - Math.floor(rnd() * 3_600_000),
      gpus,
      constraints: rnd() < 0.2 ? { gpuName: "a100" } : rnd() < 0.1 ? { labels: { room: "2" } } : {},
      cpus: gpus > 0 ? gpus * pick([4, 6, 8]) : pick([1, 2, 4, 8, 16]),
      memoryMiB: (gpus > 0 ? gpus * pick([32, 48, 64]) : pick([4, 8, 16, 32])) * GiB,
      owner: somebody(),
    };
  }).sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    queue,
    devices,
    nowMs,
    usage,
    shares: { p03: 2, p07: 2 },
    runningGpusByOwner,
    runningJobsByOwner,
    limits: { maxGpusPerOwner: { default: 256, owners: { p00: 512 } }, maxRunningJobsPerOwner: { default: 400 } },
  };
}

export const leaseDecision: Benchmark = {
  name: "lease-decision-ms-10k-jobs",
  description: "one scheduling decision: 10,000 queued jobs of 40 people, 500 hosts x 8 GPUs + 20 CPU-only, CPU/memory/fair share/limits/reasons",
  async run({ quick, log }) {
    const input = syntheticLab(42);
    const rounds = quick ? 30 : 200;
    // The dispatcher decides all day: measure it warm. Up to about round 30 V8 still compiles
    // (and reoptimises) the decision's functions, so the first rounds' tail is the JIT's.
    const warmup = 50;
    const times: number[] = [];
    const cpuTimes: number[] = [];
    const sortTimes: number[] = [];
    let withGc = 0;
    let assigned = 0;
    let reasons = 0;
    for (let i = 0; i < rounds + warmup; i++) {
      const heap0 = getHeapStatistics().used_heap_size;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const decision = scheduleQueue(input);
      const t1 = performance.now();
      const c = process.cpuUsage(c0);
      const collected = getHeapStatistics().used_heap_size < heap0;
      rankQueue(input.queue, input.nowMs);
      const t2 = performance.now();
      if (i === rounds + warmup - 1) {
        assigned = decision.assignments.length;
        reasons = Object.keys(decision.waiting).length;
      }
      if (i >= warmup) {
        if (collected) withGc++;
        times.push(t1 - t0);
        cpuTimes.push((c.user + c.system) / 1000);
        sortTimes.push(t2 - t1);
      }
    }
    for (const xs of [times, cpuTimes, sortTimes]) xs.sort((a, b) => a - b);
    const p50 = percentile(times, 50);
    const p99 = percentile(times, 99);
    // CPU time shows what the decision costs when the shared machine's other work stretches wall
    // time; it counts the process's other threads too (the compiler's, the collector's helpers).
    const cpuP50 = percentile(cpuTimes, 50);
    const load = machineLoad();
    const gcNote = `a garbage collection landed in ${withGc} of ${rounds} decisions`;
    log(
      `  decision p50 ${round(p50)} ms, p99 ${round(p99)} ms; CPU p50 ${round(cpuP50)} ms (${assigned} assignments, ${reasons} reasons); ` +
        `ranking alone p50 ${round(percentile(sortTimes, 50))} ms; ${gcNote}; ${load}`,
    );
    return [
      {
        name: "lease-decision-ms-10k-jobs",
        value: round(p50, 3),
        unit: "ms",
        reference: { name: "rank-queue-only-ms", value: round(percentile(sortTimes, 50), 3), unit: "ms" },
        goal: "< 5 ms",
        met: p50 < 5,
        note: `median of ${rounds} decisions after ${warmup} to warm up, ${assigned} assignments and ${reasons} reasons each; CPU p50 ${round(cpuP50, 3)} ms a decision; ${load}`,
      },
      {
        name: "lease-decision-ms-10k-jobs-p99",
        value: round(p99, 3),
        unit: "ms",
        reference: { name: "rank-queue-only-p99-ms", value: round(percentile(sortTimes, 99), 3), unit: "ms" },
        goal: "< 5 ms",
        met: p99 < 5,
        note: `p99 of the same ${rounds} decisions; ${gcNote}; the machine's other work lands here too`,
      },
    ];
  },
};
