// The job CLI as a user runs it: real `labrig` processes against a real dispatcher process. Where
// a job must run, a simulated agent (tests/helpers/sim-agent.ts) takes it through the same HTTP
// API a real agent uses, so these tests need no agent build.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../core/api.js";
import { type DispatcherProcess, repoRoot, startDispatcher } from "../helpers/dispatcher-process.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";
import { waitFor } from "../helpers/wait.js";
import { cliEnv, runCli, spawnCli } from "./cli-process.js";

let d: DispatcherProcess;
let env: Record<string, string>;
let emptyHome: string;
const agents: SimAgent[] = [];

beforeAll(async () => {
  d = await startDispatcher();
  emptyHome = mkdtempSync(join(tmpdir(), "labrig-cli-home-"));
  env = cliEnv({ LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: emptyHome });
});

afterAll(async () => {
  for (const a of agents) a.stop();
  await d?.stop();
  d?.cleanup();
  rmSync(emptyHome, { recursive: true, force: true });
});

async function simAgent(hostId: string, gpus = 1): Promise<SimAgent> {
  const a = await new SimAgent(d.url, hostId, fakeGpus(gpus)).register(d.joinToken);
  await a.heartbeat();
  agents.push(a.startHeartbeats(300));
  return a;
}

// A job left queued by one test would be leased by the next test's agent.
afterEach(async () => {
  const admin = d.admin();
  for (const j of await admin.jobs({ state: ["queued", "assigned", "running"] })) await admin.cancel(j.id);
});

const parseJob = (stdout: string) => JSON.parse(stdout) as Job;

describe("labrig submit / jobs / job / cancel", () => {
  it("queues the command after --, lists it, shows it, and cancels it", async () => {
    const sub = await runCli(["submit", "--json", "--name", "cli-t1", "--project", "clitest", "--gpus", "2", "--env", "A=1", "--", "echo", "hi", "--flag"], env);
    expect(sub.stderr).toBe("");
    expect(sub.exitCode).toBe(0);
    const job = parseJob(sub.stdout);
    expect(job).toMatchObject({ name: "cli-t1", project: "clitest", command: ["echo", "hi", "--flag"], gpus: 2, env: { A: "1" }, state: "queued" });

    const list = await runCli(["jobs", "--project", "clitest"], env);
    expect(list.exitCode).toBe(0);
    const row = list.stdout.split("\n").find((l) => l.startsWith(job.id));
    expect(row?.split(/\s{2,}/).slice(0, 7)).toEqual([job.id, "cli-t1", "clitest", "admin", "queued", "2", "-"]);

    const cancel = await runCli(["cancel", job.id], env);
    expect(cancel).toMatchObject({ exitCode: 0, stdout: `job ${job.id}: cancelled\n` });

    const cancelled = await runCli(["jobs", "--state", "cancelled", "--json"], env);
    expect((JSON.parse(cancelled.stdout) as Job[]).map((j) => j.id)).toContain(job.id);
    const shown = await runCli(["job", job.id], env);
    expect(shown.stdout).toMatch(/^state\s+cancelled\b/m);
    expect(shown.stdout).toMatch(/#1 {2}queued → cancelled/);
  });

  it("reads a job file, lets flags override it, and refuses a bad one naming line and field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labrig-jobfile-"));
    try {
      const good = join(dir, "train.yaml");
      writeFileSync(good, "name: from-file\nproject: clitest\ncommand: [python, train.py, --lr, 0.10]\ngpus: 3\ntimeout: 60\nretries: 1\n");
      const sub = await runCli(["submit", "--config", good, "--gpus", "1", "--priority", "high", "--json"], env);
      expect(sub.exitCode).toBe(0);
      expect(parseJob(sub.stdout)).toMatchObject({ name: "from-file", command: ["python", "train.py", "--lr", "0.10"], gpus: 1, timeoutS: 60, maxRetries: 1, priority: "high" });

      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, "command: echo\ngpus: two\nseed: 1\n");
      const r = await runCli(["submit", "--config", bad], env);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${bad}:3:1: seed: unknown key`);
      const r2 = await runCli(["submit", "--config", bad.replace("bad", "missing")], env);
      expect(r2.stderr).toMatch(/--config: cannot read .*missing\.yaml: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("passes the command after -- the same way through `pnpm submit` and `pnpm labrig submit`", async () => {
    const pnpmEnv = { ...process.env, ...env };
    const viaScript = await execa("pnpm", ["-s", "submit", "--json", "--", "echo", "hi", "--x"], { cwd: repoRoot, env: pnpmEnv, reject: false });
    const viaLabrig = await execa("pnpm", ["-s", "labrig", "submit", "--json", "--", "echo", "hi", "--x"], { cwd: repoRoot, env: pnpmEnv, reject: false });
    expect(viaScript.exitCode, String(viaScript.stderr)).toBe(0);
    expect(viaLabrig.exitCode, String(viaLabrig.stderr)).toBe(0);
    expect(parseJob(String(viaScript.stdout)).command).toEqual(["echo", "hi", "--x"]);
    expect(parseJob(String(viaLabrig.stdout)).command).toEqual(["echo", "hi", "--x"]);
  });

  it("says how to find a dispatcher when none is configured, and takes --url/--token over nothing", async () => {
    const bare = cliEnv({ LABRIG_HOME: emptyHome });
    const r = await runCli(["jobs"], bare);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/no dispatcher found: run labrig login --url URL, set LABRIG_URL and LABRIG_TOKEN, or start a local lab with 'pnpm start'/);
    const withFlags = await runCli(["jobs", "--url", d.url, "--token", d.adminToken, "--json"], bare);
    expect(withFlags.exitCode).toBe(0);
    expect(Array.isArray(JSON.parse(withFlags.stdout))).toBe(true);
    const wrongToken = await runCli(["jobs", "--url", d.url, "--token", "nope"], bare);
    expect(wrongToken.exitCode).toBe(1);
    expect(wrongToken.stderr).toMatch(/HTTP 401/);
  });
});

describe("with an agent taking the jobs", () => {
  it("submit --wait follows the job to succeeded, exits 1 when it fails, and retry queues attempt 2", async () => {
    const agent = await simAgent("cli-host-wait");
    const ok = spawnCli(["submit", "--wait", "--host", "cli-host-wait", "--", "true"], env);
    const lease1 = await waitFor("a lease", () => agent.lease(1), (l) => l !== null, 20_000);
    await agent.report(lease1!, "running");
    await sleep(500);
    await agent.report(lease1!, "succeeded", 0);
    const okDone = await ok;
    expect(okDone.exitCode, String(okDone.stderr)).toBe(0);
    expect(String(okDone.stdout)).toMatch(new RegExp(`job ${lease1!.job.id}: succeeded on cli-host-wait.*exit code 0`));

    const bad = spawnCli(["submit", "--wait", "--host", "cli-host-wait", "--", "false"], env);
    const lease2 = await waitFor("a lease", () => agent.lease(1), (l) => l !== null, 20_000);
    await agent.report(lease2!, "running");
    await agent.report(lease2!, "failed", 3);
    const badDone = await bad;
    expect(badDone.exitCode).toBe(1);
    expect(String(badDone.stderr)).toContain(`job ${lease2!.job.id} ended failed with exit code 3`);

    const retry = await runCli(["retry", lease2!.job.id], env);
    expect(retry).toMatchObject({ exitCode: 0, stdout: `job ${lease2!.job.id}: queued again as attempt 2\n` });
    await runCli(["cancel", lease2!.job.id], env);
  });

  it("logs prints job.log byte for byte, and -f follows it until the job has ended", async () => {
    const agent = await simAgent("cli-host-logs");
    const sub = await runCli(["submit", "--json", "--host", "cli-host-logs", "--", "train"], env);
    const id = parseJob(sub.stdout).id;
    const lease = await waitFor("a lease", () => agent.lease(1), (l) => l !== null, 20_000);
    await agent.report(lease!, "running");
    const chunks = ["epoch 1 loss 0.9\n", "épоch 2 — loss 0.5 ✓\n", "no newline at the end"].map((s) => Buffer.from(s));
    let offset = 0;
    const append = async (b: Buffer) => {
      await agent.client.syncAppend(id, "job.log", offset, b, lease!.attempt);
      offset += b.length;
    };
    await append(chunks[0]);

    const follow = spawnCli(["logs", id, "-f", "--interval", "100"], env);
    await sleep(1500);
    await append(chunks[1]);
    await agent.report(lease!, "succeeded", 0);
    // The agent may sync its last bytes just after it reports the end; -f must still print them.
    await sleep(300);
    await append(chunks[2]);
    const followed = await follow;
    expect(followed.exitCode, String(followed.stderr)).toBe(0);
    expect(followed.stdout).toBe(Buffer.concat(chunks).toString());

    const once = await runCli(["logs", id], env);
    expect(once.stdoutBytes.equals(Buffer.concat(chunks))).toBe(true);
  });

  it("asks for 0 GPUs by default when no device in the lab has a GPU, and lists and drains devices", async () => {
    // A separate dispatcher: the GPU default looks at every device in the lab.
    const d2 = await startDispatcher();
    try {
      const env2 = cliEnv({ LABRIG_URL: d2.url, LABRIG_TOKEN: d2.adminToken, LABRIG_HOME: emptyHome });
      const cpuOnly = await new SimAgent(d2.url, "cpu-box", []).register(d2.joinToken);
      await cpuOnly.heartbeat();
      const sub = await runCli(["submit", "--json", "--", "echo", "hi"], env2);
      expect(sub.stderr).toContain("no device in this lab has a GPU, so the job asks for 0 GPUs");
      expect(parseJob(sub.stdout).gpus).toBe(0);
      const chosen = await runCli(["submit", "--json", "--gpus", "1", "--", "echo", "hi"], env2);
      expect(parseJob(chosen.stdout).gpus).toBe(1);

      const devices = await runCli(["devices"], env2);
      expect(devices.stdout.split("\n")[1].split(/\s{2,}/).slice(0, 3)).toEqual(["cpu-box", "healthy", "0"]);
      const drain = await runCli(["drain", "cpu-box"], env2);
      expect(drain.exitCode).toBe(0);
      expect((await runCli(["devices", "--json"], env2)).stdout).toMatch(/"draining": true/);
      await runCli(["undrain", "cpu-box"], env2);
      expect((await runCli(["devices", "--json"], env2)).stdout).toMatch(/"draining": false/);
    } finally {
      await d2.stop();
      d2.cleanup();
    }
  });
});
