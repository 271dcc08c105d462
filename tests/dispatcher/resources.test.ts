// The pure parts of a shared lab's scheduling input: default reservations, decayed GPU-hours, and
// wait reasons in words.
import { describe, expect, it } from "vitest";
import { decayedGpuHours, DEFAULT_RESOURCES, describeWait, gpuHoursSince, jobResources } from "../../dispatcher/resources.js";
import { withinLargestHost } from "../../dispatcher/service.js";

const H = 3600_000;
const DAY = 24 * H;

describe("job resources", () => {
  it("takes what a job asks, else 4 cores and 16 GiB a GPU, else 1 core and 2 GiB", () => {
    expect(jobResources({ gpus: 2 }, DEFAULT_RESOURCES)).toEqual({ cpus: 8, memoryMiB: 32 * 1024 });
    expect(jobResources({ gpus: 0 }, DEFAULT_RESOURCES)).toEqual({ cpus: 1, memoryMiB: 2048 });
    expect(jobResources({ gpus: 1, cpus: 32, memoryGiB: 1.5 }, DEFAULT_RESOURCES)).toEqual({ cpus: 32, memoryMiB: 1536 });
  });

  it("never asks more than the largest host has, so defaults do not strand a job on a small workstation", () => {
    const job = { id: "j", priority: "normal" as const, createdAtMs: 0, gpus: 2, constraints: {}, cpus: 8, memoryMiB: 32768 };
    const hosts = [{ hostId: "ws", schedulable: true, labels: {}, gpus: [], cpus: 4, memoryMiB: 16384 }];
    expect(withinLargestHost([job], hosts)[0]).toMatchObject({ cpus: 4, memoryMiB: 16384 });
    // A host that reports nothing is not limited, and nothing is shrunk for it.
    expect(withinLargestHost([job], [{ ...hosts[0]!, cpus: undefined, memoryMiB: undefined }])[0]).toBe(job);
  });
});

describe("fair share's GPU-hours", () => {
  const now = 100 * DAY;
  it("weighs an hour used now 1 and one used a half-life ago a half, running jobs up to now", () => {
    const u = decayedGpuHours(
      [
        { owner: "ana", gpus: 2, startedMs: now - H, endedMs: now },
        { owner: "bo", gpus: 1, startedMs: now - 7 * DAY - H, endedMs: now - 7 * DAY },
        { owner: "cy", gpus: 1, startedMs: now - 2 * H, endedMs: null },
        { owner: null, gpus: 0, startedMs: now - H, endedMs: now },
      ],
      now,
      7 * DAY,
    );
    expect(u.ana).toBeCloseTo(2, 1);
    expect(u.bo).toBeCloseTo(0.5, 1);
    expect(u.cy).toBeCloseTo(2, 1);
    expect(u[""]).toBeUndefined();
  });

  it("counts plain GPU-hours inside a window", () => {
    expect(gpuHoursSince([{ owner: "ana", gpus: 4, startedMs: now - 10 * DAY, endedMs: now - 6 * DAY }], now - 7 * DAY, now)).toEqual({ ana: 4 * 24 });
  });
});

describe("wait reasons", () => {
  it("says each in a line a researcher reads", () => {
    expect(describeWait({ kind: "fair-share", behind: "bob", jobs: 3 }, { gpus: 1 })).toBe("behind 3 jobs of bob: fair share (they have used less lately)");
    expect(describeWait({ kind: "no-fit-now", largestFreeBlock: 2, short: "gpus" }, { gpus: 4 })).toBe("needs 4 GPUs; largest free block is 2");
    expect(describeWait({ kind: "owner-limit", owner: "ana", limit: "gpus", max: 4, holding: 4 }, { gpus: 1 })).toMatch(/^ana holds 4 of at most 4 GPUs at once/);
    expect(describeWait({ kind: "never-fits", why: "no host has 64 GPUs" }, { gpus: 64 })).toBe("can never run here: no host has 64 GPUs");
  });
});
