// A real network partition: the agent runs (the bundle `pnpm build:agent` makes, under this
// machine's node) inside a systemd+sshd test host container, the dispatcher here; the test cuts the
// host off with `docker network disconnect` while its job writes, and connects it again.
// - Cut for 90 s, shorter than LABRIG_LOST_AFTER_S: the job keeps running and ends while cut off,
//   is never re-run, ends `succeeded`, and its job.log on the dispatcher is byte-exact.
// - Cut past LABRIG_LOST_AFTER_S (short here): the job runs again on another host as attempt 2,
//   and when the cut host is back its agent stops the old attempt.
// Each test prints its timeline (seconds since the job started running) for the record.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceStatus } from "../../core/api.js";
import type { DispatcherClient } from "../../core/client.js";
import { type AgentProcess, nvidiaSmiFixtures, startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { createSshKey, createTestNetwork, docker, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { agentBundle } from "../provision/helpers.js";
import { smallJobsEnv, waitForJob, waitForState } from "./agent-helpers.js";

let net: TestNetwork;
let host: TestHost;
let dir: string;
let bundle: string;

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-partition-"));
  net = await createTestNetwork("partition");
  let h: TestHost;
  [bundle, h] = await Promise.all([agentBundle(), startTestHost({ name: "gpu-p", network: net, publicKey: createSshKey(dir).publicKey })]);
  host = h;
  await docker(["cp", process.execPath, `${host.container}:/usr/local/bin/node`]);
  await docker(["cp", bundle, `${host.container}:/opt/labrig-agent.mjs`]);
  await docker(["cp", join(nvidiaSmiFixtures, "h100-80gb-x1.txt"), `${host.container}:/opt/nvidia-smi.txt`]);
  await host.sh("printf '#!/bin/sh\\n# Stands in for nvidia-smi: there is no GPU here.\\ncat /opt/nvidia-smi.txt\\n' > /usr/local/bin/nvidia-smi && chmod +x /usr/local/bin/nvidia-smi");
}, 240_000);

afterAll(async () => {
  await host?.stop();
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts the bundled agent in the test host as a transient systemd unit, talking to `d` across the test network. */
async function startHostAgent(d: DispatcherProcess, unit: string): Promise<void> {
  const url = `http://${net.gateway}:${d.port}`;
  await host.sh(
    `systemd-run --unit ${unit} -E LABRIG_KILL_GRACE_S=2 /usr/local/bin/node /opt/labrig-agent.mjs --url ${url} --host-id gpu-p ` +
      `--join-token ${d.joinToken} --workdir /var/lib/${unit} --listen 127.0.0.1:0 --labels pool=p`,
  );
  await waitFor("the host's agent to register", () => d.admin().devices(), (ds) => ds.some((x) => x.hostId === "gpu-p" && x.status === "healthy"), 30_000, 200);
}

async function stopHostAgent(unit: string): Promise<void> {
  await host.exec(`systemctl kill -s SIGKILL ${unit}; systemctl stop ${unit}; systemctl reset-failed ${unit} 2>/dev/null; true`);
}

/** Notes what happened when: explicit marks and every change of the job's state and the host's status. */
class Timeline {
  readonly lines: string[] = [];
  private t0 = Date.now();
  private lastJob = "";
  private lastDevice = "";
  private stop = false;
  private watching?: Promise<void>;

  start(): void {
    this.t0 = Date.now();
  }
  mark(what: string): void {
    this.lines.push(`${((Date.now() - this.t0) / 1000).toFixed(1).padStart(6)} s  ${what}`);
  }
  watch(admin: DispatcherClient, jobId: string, hostId: string): void {
    this.watching = (async () => {
      while (!this.stop) {
        try {
          const [job, devices] = await Promise.all([admin.job(jobId), admin.devices()]);
          const j = `job ${job.state}, attempt ${job.attempt}${job.hostId ? ` on ${job.hostId}` : ""}`;
          if (j !== this.lastJob) this.mark((this.lastJob = j));
          const status: DeviceStatus | undefined = devices.find((x) => x.hostId === hostId)?.status;
          const dv = `host ${hostId} ${status}`;
          if (dv !== this.lastDevice) this.mark((this.lastDevice = dv));
        } catch {
          /* the dispatcher is busy; try again */
        }
        await sleep(250);
      }
    })();
  }
  async end(title: string): Promise<void> {
    this.stop = true;
    await this.watching;
    console.log(`--- timeline: ${title} ---\n${this.lines.join("\n")}`);
  }
}

/** The lines the job writes: numbered and padded, so a missing, doubled or torn line shows. */
const expectedLog = (n: number) => Array.from({ length: n }, (_, i) => `line ${String(i + 1).padStart(4, "0")} ${"x".repeat(100)}\n`).join("");
const writeLines = (n: number, every: string) => `for i in $(seq 1 ${n}); do printf 'line %04d %s\\n' $i ${"x".repeat(100)}; sleep ${every}; done`;

describe("a network partition", () => {
  it("survives a 90 s cut shorter than the lost threshold: never re-run, succeeded, job.log byte-exact", async () => {
    const d = await startDispatcher({ args: ["--bind", "0.0.0.0"], readyWithinMs: 90_000, env: { ...smallJobsEnv, LABRIG_HEARTBEAT_S: "1", LABRIG_STALE_AFTER_S: "5", LABRIG_DISCONNECT_AFTER_S: "10", LABRIG_LOST_AFTER_S: "600", LABRIG_MISSING_GRACE_S: "10" } });
    const tl = new Timeline();
    try {
      await startHostAgent(d, "labrig-agent-short");
      const admin = d.admin();
      // 100 lines over about 40 s: the job writes through the cut and ends while still cut off.
      const lines = 100;
      const job = await admin.submit({ command: writeLines(lines, "0.4"), gpus: 1, maxRetries: 3, constraints: { hostId: "gpu-p" } });
      await waitForState(admin, job.id, "running", 30_000);
      tl.start();
      tl.watch(admin, job.id, "gpu-p");
      await waitFor("some lines synced before the cut", () => admin.syncStatus(job.id), (s) => (s.files["job.log"]?.size ?? 0) > 0, 20_000, 200);
      await docker(["network", "disconnect", net.name, host.container]);
      tl.mark("network disconnected (docker network disconnect)");
      const cutSize = (await admin.syncStatus(job.id)).files["job.log"]!.size;
      tl.mark(`dispatcher holds ${cutSize} bytes of job.log`);
      await sleep(90_000);
      const during = await admin.job(job.id);
      const onHostRun = JSON.parse(await host.sh(`cat /var/lib/labrig-agent-short/jobs/${job.id}/attempt-1/run.json`)) as { state: string; endedAt: string | null };
      tl.mark(`after 90 s cut off: dispatcher has the job ${during.state}, attempt ${during.attempt}; on the host it is ${onHostRun.state}${onHostRun.endedAt ? ` (ended ${onHostRun.endedAt})` : ""}`);
      expect(during).toMatchObject({ state: "running", attempt: 1 });
      expect(onHostRun.state).toBe("succeeded");
      expect((await admin.devices()).find((x) => x.hostId === "gpu-p")?.status).toBe("disconnected");
      await docker(["network", "connect", net.name, host.container]);
      tl.mark("network connected again");

      const done = await waitForJob(admin, job.id, (j) => j.state !== "running", "to end", 60_000);
      tl.mark(`job ended: ${done.state}, attempt ${done.attempt}, exit ${done.exitCode}`);
      expect(done).toMatchObject({ state: "succeeded", attempt: 1, hostId: "gpu-p", exitCode: 0 });
      const synced = await admin.syncGet(job.id, "job.log");
      const onHost = Buffer.from((await host.sh(`base64 -w0 /var/lib/labrig-agent-short/jobs/${job.id}/attempt-1/job.log`)).trim(), "base64");
      tl.mark(`job.log: ${synced.length} bytes on the dispatcher, ${onHost.length} on the host`);
      expect(synced.equals(onHost)).toBe(true);
      expect(synced.toString()).toBe(expectedLog(lines));
      // Never re-run: one attempt, one run, no requeue in its history.
      expect(await host.sh(`ls /var/lib/labrig-agent-short/jobs/${job.id}`)).toBe("attempt-1");
      const { body } = await admin.request<{ history: { attempt: number; toState: string }[] }>("GET", `/api/jobs/${job.id}`);
      expect(body.history.map((t) => `${t.attempt}:${t.toState}`)).toEqual(["1:queued", "1:assigned", "1:running", "1:succeeded"]);
    } finally {
      await tl.end("90 s partition, lost threshold 600 s");
      await stopHostAgent("labrig-agent-short");
      await docker(["network", "connect", net.name, host.container]).catch(() => undefined);
      await d.kill();
      d.cleanup();
    }
  }, 300_000);

  it("past the lost threshold runs the job elsewhere as attempt 2, and the returning host's agent stops the old attempt", async () => {
    const d = await startDispatcher({ args: ["--bind", "0.0.0.0"], readyWithinMs: 90_000, env: { ...smallJobsEnv, LABRIG_HEARTBEAT_S: "1", LABRIG_STALE_AFTER_S: "3", LABRIG_DISCONNECT_AFTER_S: "6", LABRIG_LOST_AFTER_S: "15", LABRIG_MISSING_GRACE_S: "10" } });
    const tl = new Timeline();
    let other: AgentProcess | undefined;
    try {
      await startHostAgent(d, "labrig-agent-lost");
      const admin = d.admin();
      const job = await admin.submit({
        command: `echo "attempt $LABRIG_ATTEMPT on $(hostname)"; if [ "$LABRIG_ATTEMPT" = 1 ]; then exec sleep 600; fi`,
        gpus: 1,
        maxRetries: 1,
        constraints: { labels: { pool: "p" } },
      });
      expect((await waitForState(admin, job.id, "running", 30_000)).hostId).toBe("gpu-p");
      tl.start();
      tl.watch(admin, job.id, "gpu-p");
      other = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-local", args: ["--labels", "pool=p"], command: [process.execPath, bundle], readyWithinMs: 90_000 });
      await waitFor("attempt 1's sleep", () => host.exec("pgrep -x sleep"), (r) => r.exitCode === 0, 10_000, 200);
      await docker(["network", "disconnect", net.name, host.container]);
      tl.mark("network disconnected (docker network disconnect)");

      const moved = await waitForJob(admin, job.id, (j) => j.attempt === 2 && j.state === "succeeded", "to run again elsewhere", 60_000);
      tl.mark(`job ${moved.state} as attempt ${moved.attempt} on ${moved.hostId}`);
      expect(moved.hostId).toBe("gpu-local");
      expect((await admin.syncGet(job.id, "job.log")).toString()).toMatch(/^attempt 2 on /);
      expect((await host.exec("pgrep -x sleep")).exitCode).toBe(0); // still running while cut off

      await docker(["network", "connect", net.name, host.container]);
      tl.mark("network connected again");
      await waitFor("the old attempt stopped on the returning host", () => host.exec("pgrep -x sleep"), (r) => r.exitCode === 1, 60_000, 250);
      tl.mark("old attempt's process gone on gpu-p");
      const agentLog = await host.sh("journalctl -u labrig-agent-lost --no-pager -o cat");
      expect(agentLog).toMatch(new RegExp(`job ${job.id} attempt 1: stopping`));
      expect(await admin.job(job.id)).toMatchObject({ state: "succeeded", attempt: 2, hostId: "gpu-local" });
    } finally {
      await tl.end("partition past the lost threshold (15 s)");
      await other?.kill();
      other?.cleanup();
      await stopHostAgent("labrig-agent-lost");
      await docker(["network", "connect", net.name, host.container]).catch(() => undefined);
      await d.kill();
      d.cleanup();
    }
  }, 300_000);
});
