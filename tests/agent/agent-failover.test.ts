// Failures around a running job, with real processes and real signals: an agent killed with -9
// (the job moves to the other agent as attempt 2), a dispatcher killed with -9 and restarted on
// its state (the job still succeeds with its whole log, once), and an agent's SIGTERM with and
// without --keep-jobs.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { fastDispatcherEnv, groupGone, jobGroup, startedProcesses, steadyDispatcherEnv, waitForState } from "./agent-helpers.js";

const { started, removeAll } = startedProcesses();
async function dispatcher(opts: Parameters<typeof startDispatcher>[0] = {}) {
  const d = await startDispatcher({ env: fastDispatcherEnv, ...opts });
  started.dispatchers.push(d);
  return d;
}
async function agent(d: DispatcherProcess, hostId: string, more: Partial<Parameters<typeof startAgent>[0]> = {}) {
  const a = await startAgent({ url: d.url, joinToken: d.joinToken, hostId, ...more });
  started.agents.push(a);
  return a;
}

afterEach((ctx) => removeAll(ctx.task.result?.state === "fail"));

const lines = (attempt: number, n: number) => Array.from({ length: n }, (_, i) => `attempt ${attempt} line ${i + 1}\n`).join("");

describe("agent failover", () => {
  it("moves a job of an agent killed with -9 to the other agent as attempt 2, whose log is exactly attempt 2's; the restarted agent stops its old attempt", async () => {
    const d = await dispatcher();
    const admin = d.admin();
    const a = await agent(d, "gpu-a");
    // Attempt 1 keeps running after its lines (it outlives its agent); attempt 2 ends.
    const job = await admin.submit({
      command: 'for i in $(seq 1 20); do echo "attempt $LABRIG_ATTEMPT line $i"; sleep 0.05; done; if [ "$LABRIG_ATTEMPT" = 1 ]; then sleep 300; fi',
      gpus: 1,
      maxRetries: 1,
    });
    expect((await waitForState(admin, job.id, "running")).hostId).toBe("gpu-a");
    const pgid = await jobGroup(a, job.id);
    started.groups.push(pgid);
    await waitFor("attempt 1's lines synced", () => admin.syncGet(job.id, "job.log", 1).then((b) => b.toString()), (t) => t === lines(1, 20));
    const b = await agent(d, "gpu-b");
    await a.kill();

    const done = await waitForState(admin, job.id, "succeeded", 30_000);
    expect(done).toMatchObject({ attempt: 2, hostId: "gpu-b", exitCode: 0 });
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe(lines(2, 20));
    expect((await admin.syncGet(job.id, "job.log", 2)).equals(readFileSync(join(b.workdir, "jobs", job.id, "attempt-2", "job.log")))).toBe(true);
    expect((await admin.syncGet(job.id, "job.log", 1)).toString()).toBe(lines(1, 20));

    // The killed agent's job kept running; the agent, started again on its workdir, picks it
    // up, learns it is no longer its own, and stops it.
    expect(groupGone(pgid)).toBe(false);
    await agent(d, "gpu-a", { workdir: a.workdir });
    await waitFor(`old attempt's group ${pgid} gone`, () => groupGone(pgid), (g) => g, 20_000);
    expect(await admin.job(job.id)).toMatchObject({ state: "succeeded", attempt: 2, hostId: "gpu-b" });
  }, 60_000);

  it("finishes a job across a dispatcher kill -9 and restart: succeeded, its log whole, in order, without duplicates", async () => {
    const first = await dispatcher({ env: steadyDispatcherEnv });
    const a = await agent(first, "gpu-a");
    const admin = first.admin();
    const job = await admin.submit({
      // Long enough that the dispatcher is back while it still writes: sync resumes mid-run.
      command: 'for i in $(seq 1 150); do echo "attempt $LABRIG_ATTEMPT line $i"; echo "$i,0.5" >> metrics.csv; sleep 0.05; done',
      gpus: 1,
    });
    await waitForState(admin, job.id, "running");
    await sleep(800);
    await first.kill();
    await sleep(1_500);
    const second = await dispatcher({ env: steadyDispatcherEnv, stateDir: first.stateDir, port: first.port });
    expect(second.url).toBe(first.url);

    const done = await waitForState(second.admin(), job.id, "succeeded", 30_000);
    expect(done.attempt).toBe(1);
    const log = await second.admin().syncGet(job.id, "job.log");
    expect(log.toString()).toBe(lines(1, 150));
    expect(log.equals(readFileSync(join(a.workdir, "jobs", job.id, "attempt-1", "job.log")))).toBe(true);
    expect((await second.admin().syncGet(job.id, "metrics.csv")).toString()).toBe(Array.from({ length: 150 }, (_, i) => `${i + 1},0.5\n`).join(""));
  }, 60_000);
});

describe("agent SIGTERM", () => {
  // Slow disconnects here: the agent's restart must not count as a lost host.
  const env = { ...steadyDispatcherEnv, LABRIG_DISCONNECT_AFTER_S: "20" };

  it("stops its running jobs, reports them failed ('agent stopped') and exits 0", async () => {
    const d = await dispatcher({ env });
    const a = await agent(d, "gpu-a");
    const admin = d.admin();
    const job = await admin.submit({ command: "echo started; sleep 300", gpus: 1 });
    await waitForState(admin, job.id, "running");
    const pgid = await jobGroup(a, job.id);
    started.groups.push(pgid);
    expect(await a.stop()).toBe(0);
    expect(groupGone(pgid)).toBe(true);
    expect(await admin.job(job.id)).toMatchObject({ state: "failed", reason: "agent stopped" });
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe("started\n");
    expect(existsSync(join(a.workdir, "agent.json"))).toBe(false);
  }, 30_000);

  it("re-adopts its running job after a kill -9 and restart on its workdir; sync resumes from its saved state: the log arrives whole, once", async () => {
    const d = await dispatcher({ env });
    const a = await agent(d, "gpu-a");
    const admin = d.admin();
    const job = await admin.submit({ command: 'for i in $(seq 1 80); do echo "attempt $LABRIG_ATTEMPT line $i"; sleep 0.05; done', gpus: 1 });
    await waitForState(admin, job.id, "running");
    const pgid = await jobGroup(a, job.id);
    started.groups.push(pgid);
    await waitFor("some lines synced", () => admin.syncGet(job.id, "job.log").then((b) => b.length), (n) => n > 0);
    // The agent saves its sync state after the upload it records; wait for it rather than race it.
    const syncState = join(a.workdir, "state", "sync", `${job.id}.attempt-1.json`);
    await waitFor("the saved sync state", async () => existsSync(syncState), (e) => e);
    await a.kill();
    expect(groupGone(pgid)).toBe(false);
    expect(existsSync(syncState)).toBe(true);

    await agent(d, "gpu-a", { workdir: a.workdir });
    const done = await waitForState(admin, job.id, "succeeded", 30_000);
    expect(done).toMatchObject({ attempt: 1, exitCode: 0 });
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe(lines(1, 80));
  }, 40_000);

  it("with --keep-jobs leaves its jobs running and re-adopts them at the next start, which reports how they ended", async () => {
    const d = await dispatcher({ env });
    const a = await agent(d, "gpu-a", { args: ["--keep-jobs"] });
    const admin = d.admin();
    const job = await admin.submit({ command: 'for i in $(seq 1 50); do echo "attempt $LABRIG_ATTEMPT line $i"; sleep 0.1; done; exit 4', gpus: 1 });
    await waitForState(admin, job.id, "running");
    const pgid = await jobGroup(a, job.id);
    started.groups.push(pgid);
    expect(await a.stop()).toBe(0);
    expect(groupGone(pgid)).toBe(false);
    expect((await admin.job(job.id)).state).toBe("running");

    await agent(d, "gpu-a", { workdir: a.workdir, args: ["--keep-jobs"] });
    const done = await waitForState(admin, job.id, "failed", 20_000);
    expect(done).toMatchObject({ attempt: 1, exitCode: 4 });
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe(lines(1, 50));
  }, 40_000);
});
