// Hand-built dashboard states for the view and key tests: devices, jobs and a clock fixed in time.
import type { Device, DeviceGpu, Job } from "../../core/api.js";
import { type TuiState, initialState } from "../../tui/state.js";

export const NOW = Date.parse("2025-03-01T12:00:00Z");
export const iso = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000).toISOString();

export function gpu(index: number, over: Partial<DeviceGpu> = {}): DeviceGpu {
  return {
    index,
    uuid: `GPU-${index}`,
    name: "NVIDIA A100-SXM4-80GB",
    memoryTotalMiB: 81920,
    memoryUsedMiB: 20480,
    utilizationPct: 50,
    temperatureC: 60,
    powerW: 200,
    busy: false,
    ...over,
  };
}

export function device(hostId: string, over: Partial<Device> = {}): Device {
  const gpus = over.gpus ?? [gpu(0), gpu(1)];
  return {
    hostId,
    hostname: hostId,
    status: "healthy",
    draining: false,
    lastSeenAt: iso(2),
    registeredAt: iso(3600),
    agentVersion: "test",
    agentUrl: null,
    labels: {},
    gpus,
    freeGpus: gpus.filter((g) => !g.busy).length,
    runningJobs: [],
    cpuPct: null,
    memoryUsedMiB: null,
    memoryTotalMiB: null,
    diskFreeGiB: null,
    gpuProblem: null,
    ...over,
  };
}

export function job(id: string, over: Partial<Job> = {}): Job {
  return {
    id,
    name: `train-${id}`,
    project: "vision",
    command: ["python", "train.py", "--lr", "0.1"],
    gpus: 1,
    image: null,
    env: {},
    workdir: null,
    timeoutS: null,
    priority: "normal",
    maxRetries: 0,
    constraints: {},
    state: "queued",
    attempt: 1,
    hostId: null,
    gpuIndices: [],
    exitCode: null,
    reason: null,
    createdAt: iso(120),
    assignedAt: null,
    startedAt: null,
    endedAt: null,
    ...over,
  };
}

export function labState(devices: Device[], jobs: Job[], over: Partial<TuiState> = {}): TuiState {
  const s = initialState("http://127.0.0.1:8000");
  return {
    ...s,
    devices: Object.fromEntries(devices.map((d) => [d.hostId, d])),
    jobs: Object.fromEntries(jobs.map((j) => [j.id, j])),
    connection: { status: "connected", since: iso(60), error: null, retryAt: null, lastSyncAt: iso(5) },
    ...over,
  };
}

/** A small lab: two hosts (one hot, one stale), a running, a queued and a failed job. */
export function smallLab(over: Partial<TuiState> = {}): TuiState {
  return labState(
    [
      device("gpu-a100", { gpus: [gpu(0, { busy: true, utilizationPct: 97, temperatureC: 84, powerW: 390 }), gpu(1, { utilizationPct: 3, temperatureC: 41 })], runningJobs: ["01jobrun00"] }),
      device("gpu-3090", { status: "stale", lastSeenAt: iso(15), gpus: [gpu(0, { name: "NVIDIA GeForce RTX 3090", memoryTotalMiB: 24576, utilizationPct: null, temperatureC: null, powerW: null, memoryUsedMiB: null })] }),
    ],
    [
      job("01jobrun00", { name: "resnet50-sweep", state: "running", hostId: "gpu-a100", gpuIndices: [0], startedAt: iso(300), assignedAt: iso(301) }),
      job("01jobque00", { name: "vit-base", state: "queued", priority: "high", createdAt: iso(30) }),
      job("01jobfail0", { name: "bert-tiny", state: "failed", exitCode: 2, hostId: "gpu-3090", gpuIndices: [0], endedAt: iso(600), reason: "exit code 2" }),
    ],
    over,
  );
}

export const SWEEP = "g0c4h2m9qx7";

/**
 * A 6-point sweep `lr-sweep` (group SWEEP, owner ana, one GPU each), submitted 200 s ago: 2 running
 * on gpu-a100, 3 queued, 1 succeeded; named as `labrig submit --sweep` names them.
 */
export function sweepJobs(group = SWEEP, prefix = "01swp"): Job[] {
  const points = ["lr=0.1,batch_size=32", "lr=0.1,batch_size=64", "lr=0.01,batch_size=32", "lr=0.01,batch_size=64", "lr=0.001,batch_size=32", "lr=0.001,batch_size=64"];
  const states: Partial<Job>[] = [
    { state: "succeeded", hostId: "gpu-a100", gpuIndices: [1], exitCode: 0, startedAt: iso(190), endedAt: iso(40) },
    { state: "running", hostId: "gpu-a100", gpuIndices: [0], startedAt: iso(180) },
    { state: "running", hostId: "gpu-a100", gpuIndices: [1], startedAt: iso(35) },
    { state: "queued" },
    { state: "queued" },
    { state: "queued" },
  ];
  return points.map((p, i) => job(`${prefix}${String(i).padStart(10 - prefix.length, "0")}`, { name: `lr-sweep [${p}]`, group, owner: "ana", createdAt: iso(200), ...states[i] }));
}
