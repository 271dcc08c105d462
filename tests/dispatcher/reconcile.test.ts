// The dispatcher's view of what really runs, in process on a real SQLite file with the clock
// passed in: jobs a host's heartbeats leave out are lost after a grace, a disconnected host keeps
// its jobs until the lost threshold, and timeouts are enforced at the dispatcher too. Every age is
// the dispatcher's receipt time, never a time an agent sent.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_JOB_TIMEOUT_S, submitJobRequestSchema, type SubmitJobRequest } from "../../core/api.js";
import { openDatabase, type Db } from "../../dispatcher/db.js";
import { configFromEnv } from "../../dispatcher/main.js";
import { DispatcherService } from "../../dispatcher/service.js";
import { Store } from "../../dispatcher/store.js";
import { SyncStore } from "../../dispatcher/sync-store.js";
import { fakeGpus } from "../helpers/sim-agent.js";

const S = 1000;
const DAY = 24 * 3600 * S;
let dir: string;
let db: Db;
let service: DispatcherService;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "labrig-reconcile-"));
  db = openDatabase(join(dir, "labrig.db"));
  const config = configFromEnv({
    LABRIG_STALE_AFTER_S: "10",
    LABRIG_DISCONNECT_AFTER_S: "30",
    LABRIG_LOST_AFTER_S: "600",
    LABRIG_MISSING_GRACE_S: "20",
    LABRIG_TIMEOUT_GRACE_S: "60",
    LABRIG_HEARTBEAT_S: "3",
  });
  service = new DispatcherService(new Store(db), new SyncStore(db, join(dir, "runs")), config);
});
afterEach(() => {
  service.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function submit(req: Partial<SubmitJobRequest> = {}) {
  return service.submit(submitJobRequestSchema.parse({ command: ["true"], gpus: 1, ...req }));
}

const hb = (runningJobs: string[]) => ({ gpus: [{ index: 0 }], runningJobs });

/** A job on `host`: assigned, handed to the agent, reported running; returns it and the start time. */
async function runningJob(host = "gpu-a", req: Partial<SubmitJobRequest> = {}) {
  service.register({ hostId: host, gpus: fakeGpus(1) });
  const job = submit({ constraints: { hostId: host }, ...req });
  service.scheduleNow();
  const grant = (await service.lease(host, 0))!;
  expect(grant.job.id).toBe(job.id);
  const running = service.agentReport(job.id, host, { attempt: grant.attempt, state: "running" });
  return { job: running, t0: Date.parse(running.startedAt!) };
}

describe("reconciling with heartbeats", () => {
  it("requeues a running job its host's heartbeats leave out for the grace, with attempt 2", async () => {
    const { job, t0 } = await runningJob("gpu-a", { maxRetries: 1 });
    service.heartbeat("gpu-a", hb([job.id]), t0 + 1 * S);
    service.heartbeat("gpu-a", hb([]), t0 + 4 * S); // the agent restarted without the job
    for (let t = 4; t < 24; t += 3) {
      service.heartbeat("gpu-a", hb([]), t0 + t * S);
      service.reap(t0 + t * S);
      expect(service.store.getJob(job.id)!.state).toBe("running");
    }
    service.heartbeat("gpu-a", hb([]), t0 + 24 * S);
    service.reap(t0 + 24 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "queued", attempt: 2, hostId: null });
    const last = service.store.transitions(job.id).at(-1)!;
    expect(last.message).toMatch(/gpu-a no longer reports the job/);
  });

  it("fails it with reason lost when no retries remain", async () => {
    const { job, t0 } = await runningJob("gpu-a", { maxRetries: 0 });
    service.heartbeat("gpu-a", hb([]), t0 + 3 * S);
    service.reap(t0 + 23 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "failed", reason: "lost", attempt: 1 });
  });

  it("keeps a job the heartbeats list, and forgives one left out by a heartbeat sent before the lease arrived", async () => {
    const { job, t0 } = await runningJob("gpu-a");
    service.heartbeat("gpu-a", hb([]), t0 + 1 * S); // composed before the agent took the lease
    service.heartbeat("gpu-a", hb([job.id]), t0 + 4 * S);
    for (let t = 7; t < 120; t += 3) service.heartbeat("gpu-a", hb([job.id]), t0 + t * S);
    service.reap(t0 + 120 * S);
    expect(service.store.getJob(job.id)!.state).toBe("running");
  });

  it("tells nothing from a heartbeat that does not list jobs at all (an agent too old to say)", async () => {
    const { job, t0 } = await runningJob("gpu-a");
    for (let t = 3; t < 60; t += 3) service.heartbeat("gpu-a", { gpus: [] }, t0 + t * S);
    service.reap(t0 + 60 * S);
    expect(service.store.getJob(job.id)!.state).toBe("running");
  });
});

describe("a dispatcher restart", () => {
  it("does not count its own downtime against a handed-out job's start: it waits for the host's heartbeats", async () => {
    service.register({ hostId: "gpu-a", gpus: fakeGpus(1) });
    const job = submit({ constraints: { hostId: "gpu-a" } });
    service.scheduleNow();
    const grant = (await service.lease("gpu-a", 0))!;
    const delivered = Date.parse(grant.job.deliveredAt!);
    service.close();
    // Down for 40 s, longer than the 15 s assign timeout; the agent started the job meanwhile and
    // could not say so.
    const restartedAt = delivered + 40 * S;
    const config = configFromEnv({ LABRIG_ASSIGN_TIMEOUT_S: "15", LABRIG_MISSING_GRACE_S: "20", LABRIG_HEARTBEAT_S: "3" });
    service = new DispatcherService(service.store, service.sync, config, restartedAt);
    service.reap(restartedAt + 1 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "assigned", attempt: 1 });
    service.heartbeat("gpu-a", hb([job.id]), restartedAt + 2 * S);
    service.reap(restartedAt + 30 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "assigned", attempt: 1 });
    // A host that keeps leaving it out after the restart does lose it.
    service.heartbeat("gpu-a", hb([]), restartedAt + 31 * S);
    service.reap(restartedAt + 52 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "queued", attempt: 2 });
  });
});

describe("disconnected is not lost", () => {
  it("leaves a disconnected host's job running until the lost threshold, then requeues it", async () => {
    const { job, t0 } = await runningJob("gpu-a", { maxRetries: 1 });
    service.heartbeat("gpu-a", hb([job.id]), t0);
    service.reap(t0 + 90 * S); // a 90 s network cut
    expect(service.devices.status("gpu-a", t0 + 90 * S)).toBe("disconnected");
    expect(service.store.getJob(job.id)).toMatchObject({ state: "running", attempt: 1 });
    service.reap(t0 + 599 * S);
    expect(service.store.getJob(job.id)!.state).toBe("running");
    service.reap(t0 + 600 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "queued", attempt: 2 });
    expect(service.store.transitions(job.id).at(-1)!.message).toMatch(/silent for 600 s, past the lost threshold \(600 s\)/);
    // Back after that: it is told to stop the old attempt.
    expect(service.heartbeat("gpu-a", hb([job.id]), t0 + 601 * S).cancel).toEqual([job.id]);
  });

  it("gives a disconnected host no new work, and takes it back as healthy on its next heartbeat", async () => {
    const { job, t0 } = await runningJob("gpu-a");
    service.register({ hostId: "gpu-a", gpus: fakeGpus(2) });
    const other = submit({ constraints: { hostId: "gpu-a" } });
    const later = t0 + 40 * S;
    expect(service.scheduleNow(later)).toBe(0);
    expect(service.store.getJob(other.id)!.state).toBe("queued");
    service.heartbeat("gpu-a", hb([job.id]), later);
    expect(service.devices.status("gpu-a", later)).toBe("healthy");
    service.reap(later);
    expect(service.store.getJob(job.id)!.state).toBe("running");
  });
});

describe("timeouts at the dispatcher", () => {
  it(`refuses a timeout over ${MAX_JOB_TIMEOUT_S} s (30 days), naming the bound`, () => {
    const r = submitJobRequestSchema.safeParse({ command: "true", timeoutS: 31 * 24 * 3600 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toMatch(/at most 2592000 s \(30 days\)/);
    expect(submitJobRequestSchema.safeParse({ command: "true", timeoutS: MAX_JOB_TIMEOUT_S }).success).toBe(true);
  });

  it("ends a running job timed_out past its timeout plus the grace while its agent heartbeats but never ends it", async () => {
    const { job, t0 } = await runningJob("gpu-a", { timeoutS: 100 });
    for (let t = 3; t < 160; t += 3) {
      service.heartbeat("gpu-a", hb([job.id]), t0 + t * S);
      service.reap(t0 + t * S);
    }
    expect(service.store.getJob(job.id)!.state).toBe("running");
    service.heartbeat("gpu-a", hb([job.id]), t0 + 160 * S);
    service.reap(t0 + 160 * S);
    expect(service.store.getJob(job.id)).toMatchObject({ state: "timed_out", reason: expect.stringMatching(/timed out after 100 s \(ended by the dispatcher/) });
    // The agent still holding it is told to stop it.
    expect(service.heartbeat("gpu-a", hb([job.id]), t0 + 161 * S).cancel).toEqual([job.id]);
  });

  it("ends a silent host's job timed_out at its timeout, before the host is lost", async () => {
    const { job, t0 } = await runningJob("gpu-a", { timeoutS: 60 });
    service.heartbeat("gpu-a", hb([job.id]), t0);
    service.reap(t0 + 119 * S);
    expect(service.store.getJob(job.id)!.state).toBe("running");
    service.reap(t0 + 120 * S);
    expect(service.store.getJob(job.id)!.state).toBe("timed_out");
  });

  it("does not end a 25-day job early", async () => {
    const { job, t0 } = await runningJob("gpu-a", { timeoutS: 25 * 24 * 3600 });
    for (const t of [1 * DAY, 10 * DAY, 24.8 * DAY, 24.9 * DAY, 25 * DAY, 25 * DAY + 59 * S]) {
      service.heartbeat("gpu-a", hb([job.id]), t0 + t);
      service.reap(t0 + t);
      expect(service.store.getJob(job.id)!.state).toBe("running");
    }
    service.heartbeat("gpu-a", hb([job.id]), t0 + 25 * DAY + 60 * S);
    service.reap(t0 + 25 * DAY + 60 * S);
    expect(service.store.getJob(job.id)!.state).toBe("timed_out");
  });
});
