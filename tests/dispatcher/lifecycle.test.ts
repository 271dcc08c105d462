// The dispatcher process's life: how it starts (state files, tokens, what it prints), how it stops
// on SIGTERM, and leases that are never started, each against its own real process.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { nodeWithTsx, repoRoot, startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";
import { waitFor } from "../helpers/wait.js";

const run = promisify(execFile);
const started: DispatcherProcess[] = [];
const dirs: string[] = [];

async function start(opts: Parameters<typeof startDispatcher>[0] = {}): Promise<DispatcherProcess> {
  const d = await startDispatcher(opts);
  started.push(d);
  return d;
}

afterEach(async () => {
  for (const d of started.splice(0)) {
    await d.kill();
    d.cleanup();
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("labrig dispatcher", () => {
  it("documents its flags and environment in --help", async () => {
    const { stdout } = await run(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", "dispatcher", "--help"], { cwd: repoRoot });
    for (const flag of ["--port", "--state", "--bind", "--queue-command", "LABRIG_ADMIN_TOKEN", "LABRIG_JOIN_TOKEN", "LABRIG_STALE_AFTER_S", "LABRIG_DISCONNECT_AFTER_S", "LABRIG_LOST_AFTER_S", "LABRIG_MISSING_GRACE_S", "LABRIG_TIMEOUT_GRACE_S", "LABRIG_ASSIGN_TIMEOUT_S"]) {
      expect(stdout).toContain(flag);
    }
  });

  it("writes dispatcher.json and 0600 token files, and prints generated tokens only on the first start", async () => {
    const state = mkdtempSync(join(tmpdir(), "labrig-life-"));
    dirs.push(state);
    const d = await start({ stateDir: state });
    const info = JSON.parse(readFileSync(join(state, "dispatcher.json"), "utf8"));
    expect(info).toMatchObject({ url: d.url, port: d.port, pid: d.child.pid });
    expect(Date.parse(info.startedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(d.output()).toContain(`labrig dispatcher listening on ${d.url}`);
    for (const f of ["admin-token", "join-token"]) expect(statSync(join(state, f)).mode & 0o777).toBe(0o600);
    expect(d.output()).toContain(d.adminToken);
    expect(d.output()).toContain(d.joinToken);
    await d.stop();

    const again = await start({ stateDir: state });
    expect(again.adminToken).toBe(d.adminToken);
    expect(again.joinToken).toBe(d.joinToken);
    expect(again.output()).not.toContain(d.adminToken);
  });

  it("takes its tokens from LABRIG_ADMIN_TOKEN and LABRIG_JOIN_TOKEN", async () => {
    const d = await start({ env: { LABRIG_ADMIN_TOKEN: "admin-from-env", LABRIG_JOIN_TOKEN: "join-from-env" } });
    expect(d.adminToken).toBe("admin-from-env");
    expect(d.output()).not.toContain("admin-from-env");
    const a = await new SimAgent(d.url, "env-host", fakeGpus(1)).register("join-from-env");
    expect(a.client.token).toMatch(/^lrt_/);
  });

  it("refuses to start with thresholds that make no sense, naming the variable", async () => {
    await expect(start({ env: { LABRIG_STALE_AFTER_S: "30", LABRIG_DISCONNECT_AFTER_S: "10" } })).rejects.toThrow(/LABRIG_DISCONNECT_AFTER_S/);
    await expect(start({ env: { LABRIG_DISCONNECT_AFTER_S: "60", LABRIG_LOST_AFTER_S: "30" } })).rejects.toThrow(/LABRIG_LOST_AFTER_S/);
  });

  it("on SIGTERM answers waiting long polls with 204, checkpoints the WAL and exits 0 within 10 s", async () => {
    const d = await start();
    const a = await new SimAgent(d.url, "term-host", fakeGpus(1)).register(d.joinToken);
    const job = await d.admin().submit({ command: "true", name: "kept", constraints: { hostId: "nowhere" } });
    const polls = [a.lease(30), a.lease(30)];
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const exited = new Promise<number | null>((r) => d.child.once("exit", (code) => r(code)));
    d.child.kill("SIGTERM");
    expect(await Promise.all(polls)).toEqual([null, null]);
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const wal = join(d.stateDir, "labrig.db-wal");
    expect(!existsSync(wal) || statSync(wal).size === 0).toBe(true);

    const d2 = await start({ stateDir: d.stateDir });
    expect((await d2.admin().job(job.id)).name).toBe("kept");
    d.cleanup = () => {};
  });
});

describe("leases that are not started", () => {
  it("requeue a taken lease without a running event after LABRIG_ASSIGN_TIMEOUT_S, without using up a retry", async () => {
    const d = await start({ env: { LABRIG_ASSIGN_TIMEOUT_S: "1" } });
    const a = await new SimAgent(d.url, "slow-host", fakeGpus(1)).register(d.joinToken);
    a.startHeartbeats(300);
    try {
      const job = await d.admin().submit({ command: "true", maxRetries: 0 });
      const first = (await a.lease(5))!;
      expect(first).toMatchObject({ attempt: 1, job: { id: job.id } });
      // The agent never reports `running`: the job comes back as attempt 2 and is offered again.
      const second = await a.lease(10);
      expect(second).toMatchObject({ attempt: 2, job: { id: job.id } });
      const late = await a.client.request("POST", `/api/jobs/${job.id}/events`, { body: { attempt: 1, state: "running" } }).catch((e) => e);
      expect(late.status).toBe(409);
      expect((await a.report(second!, "running")).state).toBe("running");
    } finally {
      a.stop();
    }
  });

  it("requeue an assignment its host never asks for, so another host can run it", async () => {
    const d = await start({ env: { LABRIG_ASSIGN_TIMEOUT_S: "1" } });
    const deaf = await new SimAgent(d.url, "deaf-host", fakeGpus(1), { pool: "p" }).register(d.joinToken);
    deaf.startHeartbeats(300);
    try {
      const job = await d.admin().submit({ command: "true", constraints: { labels: { pool: "p" } } });
      await waitFor("the job to be assigned", () => d.admin().job(job.id), (j) => j.state === "assigned", 3000, 50);
      // The deaf host heartbeats but never polls; once its assignment times out the job is free again.
      const other = await new SimAgent(d.url, "eager-host", fakeGpus(1), { pool: "p" }).register(d.joinToken);
      other.startHeartbeats(300);
      try {
        const lease = await other.lease(10);
        expect(lease).toMatchObject({ job: { id: job.id }, attempt: 2 });
      } finally {
        other.stop();
      }
    } finally {
      deaf.stop();
    }
  });
});
