// Jobs and devices as the API returns them, built by hand for tests of what renders them (the
// dashboard, the CLI's tables, the local lab's summary): a clock fixed in time, and defaults any
// field of which a test overrides.
import type { Device, DeviceGpu, Job } from "../../core/api.js";

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
