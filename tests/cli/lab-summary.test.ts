import { describe, expect, it } from "vitest";
import type { Device, Job } from "../../core/api.js";
import { device as fixtureDevice, job as fixtureJob } from "../helpers/fixtures.js";
import { localHostId } from "../../lab/run-lab.js";
import { renderSummaryScreen, summaryChanges } from "../../lab/summary.js";

const epoch = new Date(0).toISOString();
/** The local lab's one host (no GPU found) and a job on it, at the epoch. */
const device = (over: Partial<Device>): Device =>
  fixtureDevice("laptop", { hostname: null, agentVersion: null, gpus: [], freeGpus: 0, lastSeenAt: epoch, registeredAt: epoch, gpuProblem: "nvidia-smi not found", ...over });
const job = (over: Partial<Job>): Job => fixtureJob("j1", { name: "echo hi", project: "default", command: ["echo", "hi"], gpus: 0, createdAt: epoch, ...over });

/** What summaryChanges remembers once it has looked at least once (a first look treats ended jobs as history). */
const afterFirstLook = new Map([["device:none", ""]]);

describe("the lab's change lines", () => {
  it("reports everything at first, then only what changed, oldest job first", () => {
    const first = summaryChanges(new Map(), { devices: [device({})], jobs: [job({ id: "j2", name: "b" }), job({ id: "j1", name: "a" })] });
    expect(first.lines).toEqual(["device laptop: healthy, no GPUs (nvidia-smi not found)", "job j1 a: queued", "job j2 b: queued"]);

    const same = summaryChanges(first.seen, { devices: [device({})], jobs: [job({ id: "j2", name: "b" }), job({ id: "j1", name: "a" })] });
    expect(same.lines).toEqual([]);

    const later = summaryChanges(same.seen, {
      devices: [device({ runningJobs: ["j1"] })],
      jobs: [job({ id: "j2", name: "b" }), job({ id: "j1", name: "a", state: "succeeded", hostId: "laptop", exitCode: 0 })],
    });
    expect(later.lines).toEqual(["device laptop: healthy, no GPUs (nvidia-smi not found), 1 job running", "job j1 a: succeeded on laptop, exit code 0"]);
  });

  it("shows a retried job's attempt and a failure's reason", () => {
    const { lines } = summaryChanges(afterFirstLook, { devices: [], jobs: [job({ state: "failed", attempt: 2, reason: "lost", hostId: "gpu-b" })] });
    expect(lines).toEqual(["job j1 echo hi: failed (attempt 2) on gpu-b (lost)"]);
  });

  it("says once that earlier ended jobs exist, instead of printing each as a change, on a restarted lab", () => {
    const old = [job({ id: "j3", name: "c", state: "queued" }), job({ id: "j2", name: "b", state: "failed", exitCode: 3, reason: "exit code 3", hostId: "vm" }), job({ id: "j1", name: "a", state: "succeeded", exitCode: 0, hostId: "vm" })];
    const first = summaryChanges(new Map(), { devices: [], jobs: old });
    expect(first.lines).toEqual(["jobs that had ended before this start are not repeated here; list them with: pnpm labrig jobs", "job j3 c: queued"]);
    const retried = summaryChanges(first.seen, { devices: [], jobs: [old[0], job({ id: "j2", name: "b", state: "queued", attempt: 2 }), old[2]] });
    expect(retried.lines).toEqual(["job j2 b: queued (attempt 2)"]);
  });

  it("says a failure's exit code once, not again as its reason", () => {
    const { lines } = summaryChanges(afterFirstLook, { devices: [], jobs: [job({ state: "failed", exitCode: 3, reason: "exit code 3", hostId: "vm" })] });
    expect(lines).toEqual(["job j1 echo hi: failed on vm, exit code 3"]);
  });

  it("draws a screen with the header, devices, recent jobs and how to quit", () => {
    const text = renderSummaryScreen({ devices: [device({ gpus: [] })], jobs: [job({})] }, 0, ["labrig local lab"]);
    const lines = text.split("\n");
    expect(lines[0]).toBe("labrig local lab");
    expect(lines).toContain("DEVICES");
    expect(lines).toContain("RECENT JOBS");
    expect(lines.some((l) => l.startsWith("laptop") && l.includes("healthy"))).toBe(true);
    expect(lines.some((l) => l.startsWith("j1") && l.includes("queued"))).toBe(true);
    expect(lines.at(-1)).toBe("q or Ctrl-C stops the lab");
  });
});

describe("the local host id", () => {
  it("turns a host name into a valid host id", () => {
    expect(localHostId("gpu-a100")).toBe("gpu-a100");
    expect(localHostId("My Laptop (2).local")).toBe("My-Laptop-2-.local");
    expect(localHostId("--weird")).toBe("weird");
    expect(localHostId("x".repeat(80))).toHaveLength(63);
    expect(localHostId("???")).toBe("localhost");
  });
});
