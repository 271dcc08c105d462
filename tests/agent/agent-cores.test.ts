// Two real agents on hosts without GPUs share CPU-only jobs by their free cores: each agent
// reports the cores this machine gives it, and the dispatcher never runs more 1-core jobs on a
// host at once than it has cores, using both hosts.
import { cpus } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../core/api.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { steadyDispatcherEnv } from "./agent-helpers.js";

let d: DispatcherProcess;
let agents: AgentProcess[] = [];

beforeAll(async () => {
  d = await startDispatcher({ env: steadyDispatcherEnv });
  agents = await Promise.all(["cores-a", "cores-b"].map((hostId) => startAgent({ url: d.url, joinToken: d.joinToken, hostId, gpus: "no-driver.txt", args: ["--labels", "pool=cores"] })));
}, 60_000);
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const a of agents) a.cleanup();
  await d?.stop();
  d?.cleanup();
});

describe("CPU-only jobs on two real agents", () => {
  it("spreads eight 1-core jobs over both hosts and never runs more at once on one than its cores", async () => {
    const admin = d.admin();
    const devices = await waitFor("both report cores", () => admin.devices(), (ds) => ds.filter((x) => x.hostId.startsWith("cores-")).length === 2 && ds.every((x) => x.memoryTotalMiB !== null), 20_000);
    expect(devices.length).toBeGreaterThanOrEqual(2);
    const jobs = await Promise.all(Array.from({ length: 8 }, (_, i) => admin.submit({ name: `cpu-${i}`, command: "sleep 1.5", gpus: 0, cpus: 1, constraints: { labels: { pool: "cores" } } })));
    // Sample who runs where until all have ended.
    let most = 0;
    const hosts = new Set<string>();
    const ended = await waitFor(
      "all eight to succeed",
      async () => {
        // One list is one read of the queue; eight reads of one job each could see a job that
        // has ended and the one that took its core as both holding it.
        const ids = new Set(jobs.map((j) => j.id));
        const now = (await admin.jobs({ limit: 100 })).filter((j) => ids.has(j.id));
        for (const h of ["cores-a", "cores-b"]) most = Math.max(most, now.filter((j) => j.hostId === h && (j.state === "running" || j.state === "assigned")).length);
        for (const j of now) if (j.hostId) hosts.add(j.hostId);
        return now;
      },
      (now: Job[]) => now.length === 8 && now.every((j) => j.state === "succeeded"),
      60_000,
      100,
    );
    expect(ended).toHaveLength(8);
    expect(hosts).toEqual(new Set(["cores-a", "cores-b"]));
    // Each agent reports at most this machine's cores (fewer under a cgroup quota).
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(cpus().length);
  }, 90_000);
});
