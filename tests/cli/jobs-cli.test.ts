// The job CLI as a user runs it: real `labrig` processes against a real dispatcher process. Where
// a job must run, a simulated agent (tests/helpers/sim-agent.ts) takes it through the same HTTP
// API a real agent uses, so these tests need no agent build.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { endStateOf } from "../../agent/running-job.js";
import type { Job } from "../../core/api.js";
import { DataClient } from "../../tui/client.js";
import { initialState } from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";
import { type DispatcherProcess, repoRoot, startDispatcher } from "../helpers/dispatcher-process.js";
import { fakeGpus, SimAgent } from "../helpers/sim-agent.js";
import { waitFor } from "../helpers/wait.js";
import { cliEnv, runCli, spawnCli } from "./cli-process.js";

// Each test starts several CLI processes (node + tsx, seconds each on a busy machine).
vi.setConfig({ testTimeout: 120_000 });

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
    // It never ran: no log, and nothing to follow.
    const noLog = await runCli(["logs", job.id], env);
    expect(noLog.stderr).toBe(`job ${job.id} never ran, so it has no log: it ended cancelled (cancelled by the CLI) before starting\n`);
    expect(noLog.stderr).not.toContain("-f");

    const cancelled = await runCli(["jobs", "--state", "cancelled", "--json"], env);
    expect((JSON.parse(cancelled.stdout) as Job[]).map((j) => j.id)).toContain(job.id);
    const shown = await runCli(["job", job.id], env);
    expect(shown.stdout).toMatch(/^state\s+cancelled \(cancelled by the CLI\)$/m);
    expect(shown.stdout).toMatch(/#1 {2}queued → cancelled {2}cancelled by the CLI/);
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
      // Every problem in one round: the unknown key and the bad value together.
      expect(r.stderr).toContain(`${bad}:2:7: gpus: expected a whole number from 0 to 64, got "two"\n${bad}:3:1: seed: unknown key`);
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
    // Retrying a succeeded job runs it again; the CLI says so rather than only "queued again".
    const again = await runCli(["retry", lease1!.job.id], env);
    expect(again).toMatchObject({
      exitCode: 0,
      stdout: `job ${lease1!.job.id} had succeeded; it is queued to run again as attempt 2 (attempt 1's log stays: pnpm labrig logs ${lease1!.job.id} --attempt 1)\n`,
    });
    await runCli(["cancel", lease1!.job.id], env);

    const bad = spawnCli(["submit", "--wait", "--host", "cli-host-wait", "--", "false"], env);
    const lease2 = await waitFor("a lease", () => agent.lease(1), (l) => l !== null, 20_000);
    await agent.report(lease2!, "running");
    await agent.report(lease2!, "failed", 3);
    const badDone = await bad;
    expect(badDone.exitCode).toBe(1);
    // The exit code once: not "with exit code 3 (exit code 3)".
    expect(String(badDone.stderr)).toBe(`labrig: job ${lease2!.job.id} ended failed, exit code 3; see: pnpm labrig logs ${lease2!.job.id}\n`);
    expect(String(badDone.stdout)).toContain(`job ${lease2!.job.id}: failed on cli-host-wait (GPUs 0), exit code 3\n`);

    const retry = await runCli(["retry", lease2!.job.id], env);
    expect(retry).toMatchObject({ exitCode: 0, stdout: `job ${lease2!.job.id}: queued again as attempt 2\n` });
    // A manual retry goes past maxRetries + 1 attempts; the detail must not read "2 of at most 1".
    const shown = await runCli(["job", lease2!.job.id], env);
    expect(shown.stdout).toMatch(/^attempt\s+2$/m);
    expect(shown.stdout).toContain("retried by the CLI");
    await runCli(["cancel", lease2!.job.id], env);
  });

  it("records who cancelled: a running job cancelled from the CLI, then one from the dashboard, each named in its reason", async () => {
    const agent = await simAgent("cli-host-cancel");
    const sub = await runCli(["submit", "--json", "--host", "cli-host-cancel", "--", "sleep", "600"], env);
    const id = parseJob(sub.stdout).id;
    const lease = await waitFor("a lease", () => agent.lease(1), (l) => l !== null, 20_000);
    await agent.report(lease!, "running");
    const cancel = await runCli(["cancel", id], env);
    expect(cancel.stdout).toBe(`job ${id}: cancel requested (running); its agent stops it at its next heartbeat\n`);
    // The agent stops it and reports the end in its own words, as a real agent does.
    const end = endStateOf({ exitCode: 143, signal: null }, "cancel", null);
    await agent.client.jobEvent(id, { attempt: lease!.attempt, ...end });
    const shown = await runCli(["job", id], env);
    expect(shown.stdout).toMatch(/^state\s+cancelled \(cancelled by the CLI\)$/m);
    expect(shown.stdout).toContain("running → running  on cli-host-cancel  cancel requested by the CLI");
    expect(shown.stdout).not.toContain("cancelled by the dispatcher");

    // The dashboard's data client, as the Queue view's `c` key uses it.
    const queued = parseJob((await runCli(["submit", "--json", "--host", "nowhere", "--", "true"], env)).stdout);
    const dashboard = new DataClient({ url: d.url, token: d.adminToken, store: new TuiStore(initialState(d.url)) });
    await dashboard.perform({ kind: "cancel", jobId: queued.id });
    expect(await d.admin().job(queued.id)).toMatchObject({ state: "cancelled", reason: "cancelled by the dashboard", cancelledBy: "the dashboard" });
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
    // It ends by saying how the job ended (on stderr, so stdout is the log alone).
    expect(String(followed.stderr)).toBe(`--- job ${id}: succeeded on cli-host-logs (GPUs 0), exit code 0\n`);

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
      // Heartbeats keep it healthy however slowly the CLI processes below start.
      agents.push(cpuOnly.startHeartbeats(300));
      const sub = await runCli(["submit", "--json", "--", "echo", "hi"], env2);
      expect(sub.stderr).toContain("no device in this lab has a GPU, so the job asks for 0 GPUs");
      expect(parseJob(sub.stdout).gpus).toBe(0);
      // Asking for a GPU in a lab that has none is refused at once, with the reason.
      const chosen = await runCli(["submit", "--json", "--gpus", "1", "--", "echo", "hi"], env2);
      expect(chosen.exitCode).not.toBe(0);
      expect(chosen.stderr).toMatch(/no host in this lab could ever run it/);

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
