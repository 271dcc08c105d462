// A job that ends while its agent cannot reach the dispatcher: the agent writes its end down
// (run.json, its record) when the job exits, not when an upload that was in flight when the link
// went quiet gives up (two minutes later). The cut is a loopback proxy between agent and
// dispatcher that stops forwarding (tests/helpers/freezable-proxy.ts); the same case across a
// real `docker network disconnect` is in agent-partition.test.ts, 90 s long.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startAgent } from "../helpers/agent-process.js";
import { startDispatcher } from "../helpers/dispatcher-process.js";
import { startFreezableProxy, type FreezableProxy } from "../helpers/freezable-proxy.js";
import { waitFor } from "../helpers/wait.js";
import { smallJobsEnv, startedProcesses, waitForJob, waitForState } from "./agent-helpers.js";

const env = { ...smallJobsEnv, LABRIG_HEARTBEAT_S: "1", LABRIG_STALE_AFTER_S: "5", LABRIG_DISCONNECT_AFTER_S: "60", LABRIG_LOST_AFTER_S: "600" };

const { started, removeAll } = startedProcesses();
let proxy: FreezableProxy | undefined;
afterEach(async (ctx) => {
  await proxy?.close();
  proxy = undefined;
  await removeAll(ctx.task.result?.state === "fail");
});

const lines = 30;
const expectedLog = Array.from({ length: lines }, (_, i) => `line ${i + 1}\n`).join("");

describe("a job that ends while the dispatcher cannot be reached", () => {
  it("is written down as succeeded on the host at once, and reported with its whole log once the link is back", async () => {
    const d = await startDispatcher({ env });
    started.dispatchers.push(d);
    proxy = await startFreezableProxy(d.port);
    const a = await startAgent({ url: proxy.url, joinToken: d.joinToken, hostId: "gpu-cut" });
    started.agents.push(a);
    const admin = d.admin();
    // About 3 s of output: the link goes quiet after the first lines, so a sync is in flight or starts into it.
    const job = await admin.submit({ command: `for i in $(seq 1 ${lines}); do echo "line $i"; sleep 0.1; done`, gpus: 0 });
    await waitForState(admin, job.id, "running");
    await waitFor("the first lines synced", () => admin.syncStatus(job.id), (s) => (s.files["job.log"]?.size ?? 0) > 0, 10_000, 50);
    proxy.freeze();
    const runJson = join(a.workdir, "jobs", job.id, "attempt-1", "run.json");
    const onHost = await waitFor("run.json to say how the job ended", () => JSON.parse(readFileSync(runJson, "utf8")) as { state: string; endedAt: string | null }, (r) => r.state !== "running", 15_000, 100);
    expect(onHost.state).toBe("succeeded");
    expect((await admin.job(job.id)).state).toBe("running");

    proxy.thaw();
    const done = await waitForJob(admin, job.id, (j) => j.state !== "running", "to end once the link is back", 150_000);
    expect(done).toMatchObject({ state: "succeeded", attempt: 1, exitCode: 0 });
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe(expectedLog);
  }, 200_000);
});
