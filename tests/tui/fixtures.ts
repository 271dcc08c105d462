// Hand-built dashboard states for the view and key tests, from the shared job and device builders.
import type { Device, Job } from "../../core/api.js";
import { type TuiState, initialState } from "../../tui/state.js";
import { NOW, device, gpu, iso, job } from "../helpers/fixtures.js";

export { NOW, device, gpu, iso, job };

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
