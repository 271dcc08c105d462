// The lost-job reproduction from issue 12, with real processes: a job runs, its agent and the
// job's process group are killed with -9, the agent's workdir is moved away and the agent starts
// again without --keep-jobs. Its heartbeats no longer list the job, so after the missing grace the
// dispatcher ends that attempt as lost (requeued while retries remain, else failed `lost`) instead
// of showing it `running` forever. The lost threshold is left long here: only the heartbeats can
// tell.
import { copyFileSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { signalGroup } from "../../agent/process-group.js";
import { startAgent } from "../helpers/agent-process.js";
import { startDispatcher } from "../helpers/dispatcher-process.js";
import { agentStatus, groupGone, jobGroup, smallJobsEnv, startedProcesses, waitForJob, waitForState } from "./agent-helpers.js";
import { waitFor } from "../helpers/wait.js";

const GRACE_S = 4;
const env = { ...smallJobsEnv, LABRIG_STALE_AFTER_S: "3", LABRIG_DISCONNECT_AFTER_S: "15", LABRIG_LOST_AFTER_S: "600", LABRIG_MISSING_GRACE_S: String(GRACE_S), LABRIG_HEARTBEAT_S: "1" };

const { started, removeAll } = startedProcesses();
afterEach((ctx) => removeAll(ctx.task.result?.state === "fail"));

/** Runs the reproduction up to the restarted agent; returns the job, the fresh agent and when it came back. */
async function loseAJob(maxRetries: number) {
  const d = await startDispatcher({ env });
  started.dispatchers.push(d);
  const admin = d.admin();
  const a = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-a" });
  started.agents.push(a);
  const job = await admin.submit({ command: 'if [ "$LABRIG_ATTEMPT" = 1 ]; then sleep 300; fi; echo "attempt $LABRIG_ATTEMPT done"', gpus: 0, maxRetries });
  await waitForState(admin, job.id, "running");
  const pgid = await jobGroup(a, job.id);
  started.groups.push(pgid);

  await a.kill();
  signalGroup(pgid, "SIGKILL");
  await waitFor(`job group ${pgid} gone`, () => groupGone(pgid), (g) => g, 5000);
  renameSync(a.workdir, `${a.workdir}.moved`);
  started.dirs.push(`${a.workdir}.moved`);
  // The host keeps its identity (its agent token; one that lost that too is reset by an admin with
  // `labrig hosts reset`), but every record of its jobs is gone.
  mkdirSync(a.workdir, { recursive: true, mode: 0o700 });
  copyFileSync(join(`${a.workdir}.moved`, "agent-token.json"), join(a.workdir, "agent-token.json"));
  const back = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-a", workdir: a.workdir });
  started.agents.push(back);
  started.dirs.push(a.workdir);
  const backAt = Date.now();
  expect((await agentStatus(back)).runningJobs).toEqual([]);
  return { admin, job, back, backAt };
}

describe("a job its agent lost", () => {
  it("fails with reason lost within the grace once the restarted agent's heartbeats leave it out (no retries)", async () => {
    const { admin, job, backAt } = await loseAJob(0);
    const ended = await waitForJob(admin, job.id, (j) => j.state !== "running", "to stop showing running", 30_000);
    const tookS = (Date.now() - backAt) / 1000;
    expect(ended).toMatchObject({ state: "failed", reason: "lost", attempt: 1 });
    expect(tookS).toBeLessThan(GRACE_S + 6);
    const device = (await admin.devices()).find((x) => x.hostId === "gpu-a")!;
    expect(device).toMatchObject({ status: "healthy", runningJobs: [] });
  }, 90_000);

  it("is requeued as attempt 2 within the grace and runs again to success (one retry)", async () => {
    const { admin, job, backAt } = await loseAJob(1);
    await waitForJob(admin, job.id, (j) => j.attempt === 2, "to be requeued as attempt 2", 30_000);
    expect((Date.now() - backAt) / 1000).toBeLessThan(GRACE_S + 6);
    const done = await waitForState(admin, job.id, "succeeded", 30_000);
    expect(done).toMatchObject({ attempt: 2, hostId: "gpu-a", exitCode: 0 });
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe("attempt 2 done\n");
  }, 90_000);
});
