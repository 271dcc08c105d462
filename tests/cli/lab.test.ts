// The local lab as `pnpm start` runs it: a real `labrig lab` process starting a real dispatcher
// and a real agent, used by real CLI processes that get no flags, then stopped with SIGINT.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { DispatcherClient } from "../../core/client.js";
import type { LabFile } from "../../lab/lab-file.js";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { cliEnv, runCli } from "./cli-process.js";

const homes: string[] = [];
const labs: ResultPromise[] = [];

afterAll(() => {
  for (const lab of labs) if (lab.exitCode === null && lab.pid) process.kill(lab.pid, "SIGKILL");
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

function newHome(): string {
  const h = mkdtempSync(join(tmpdir(), "labrig-lab-"));
  homes.push(h);
  return h;
}

function startLab(env: Record<string, string>, args: string[] = []) {
  const lab = execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", "lab", "--no-dashboard", "--port", "0", ...args], {
    cwd: repoRoot,
    env,
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    all: true,
    buffer: true,
  });
  let output = "";
  lab.all?.on("data", (d: Buffer) => (output += d.toString()));
  labs.push(lab);
  return { lab, output: () => output };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("labrig lab", () => {
  it("runs a dispatcher and a healthy local agent that flag-less CLI commands use, and stops them all on SIGINT", async () => {
    const home = newHome();
    const env = cliEnv({ LABRIG_HOME: home });
    const { lab, output } = startLab(env);
    const labFile = join(home, "lab.json");

    const info = await waitFor("lab.json", () => (existsSync(labFile) ? (JSON.parse(readFileSync(labFile, "utf8")) as LabFile) : undefined), (v) => v !== undefined, 90_000, 200).catch((err) => {
      throw new Error(`${err}\nlab output:\n${output()}`);
    });
    const client = new DispatcherClient({ url: info!.url, token: readFileSync(info!.adminTokenFile, "utf8").trim() });
    await waitFor("a healthy local device", () => client.devices(), (ds) => ds.some((d) => d.hostId === info!.hostId && d.status === "healthy"), 30_000);
    await waitFor("the lab's intro", output, (o) => o.includes("pnpm submit -- echo hi"), 10_000);

    // A second lab on the same LABRIG_HOME is refused while this one runs.
    const second = await runCli(["lab", "--no-dashboard", "--port", "0"], env, { stdin: "ignore" });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`a local lab is already running under ${home} (pid ${info!.pid}`);
    expect(existsSync(labFile)).toBe(true);

    const sub = await runCli(["submit", "--wait", "--", "echo", "hi"], env);
    expect(sub.exitCode, `${sub.stdout}\n${sub.stderr}\nlab output:\n${output()}`).toBe(0);
    const id = /submitted job (\S+)/.exec(sub.stdout)![1];
    expect(sub.stdout).toMatch(new RegExp(`job ${id}: succeeded on ${info!.hostId}`));
    const logs = await waitFor("the job's log", () => runCli(["logs", id], env), (r) => r.stdout.length > 0, 15_000, 300);
    expect(logs.stdout).toBe("hi\n");
    const jobs = await runCli(["jobs"], env);
    expect(jobs.stdout.split("\n").find((l) => l.startsWith(id))?.split(/\s{2,}/)[4]).toBe("succeeded");
    await waitFor("the change lines", output, (o) => o.includes(`job ${id} echo hi: succeeded on ${info!.hostId}, exit code 0`), 10_000);

    // A job submitted from a project folder runs there: a relative path in its command is found.
    const project = newHome();
    writeFileSync(join(project, "marker.txt"), "read from the project folder\n");
    const here = await runCli(["submit", "--wait", "--", "cat", "marker.txt"], env, { cwd: project });
    expect(here.exitCode, `${here.stdout}\n${here.stderr}`).toBe(0);
    const hereId = /submitted job (\S+)/.exec(here.stdout)![1];
    const hereLog = await waitFor("its log", () => runCli(["logs", hereId], env), (r) => r.stdout.length > 0, 15_000, 300);
    expect(hereLog.stdout).toBe("read from the project folder\n");

    lab.kill("SIGINT");
    const done = await lab;
    expect(done.exitCode, output()).toBe(0);
    const out = output();
    expect(out.indexOf(`stopping the agent (pid ${info!.agentPid})`)).toBeGreaterThan(-1);
    expect(out.indexOf(`stopping the dispatcher (pid ${info!.dispatcherPid})`)).toBeGreaterThan(out.indexOf("stopping the agent"));
    expect(out).toContain("lab stopped");
    expect(existsSync(labFile)).toBe(false);
    expect(alive(info!.dispatcherPid)).toBe(false);
    expect(alive(info!.agentPid!)).toBe(false);
    // The dispatcher's log holds its own account of a clean stop.
    expect(readFileSync(join(home, "logs", "dispatcher.log"), "utf8")).toContain("labrig dispatcher: stopped");

    // A restart prints the devices and what is still to do, not every ended job as if it had just changed.
    const again = startLab(env);
    await waitFor("the restarted lab's first lines", again.output, (o) => o.includes("jobs that had ended before this start are not repeated here"), 90_000, 200);
    await waitFor("its device line", again.output, (o) => /^device \S+: healthy/m.test(o.slice(o.indexOf("running;"))), 30_000, 200);
    expect(again.output()).not.toContain(`job ${id} echo hi: succeeded`);
    expect(again.output()).not.toContain(`job ${hereId}`);
    again.lab.kill("SIGINT");
    expect((await again.lab).exitCode, again.output()).toBe(0);
  }, 400_000);

  it("refuses a --port that is taken, naming it, and leaves nothing running", async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const home = newHome();
      const r = await runCli(["lab", "--no-dashboard", "--port", String(port)], cliEnv({ LABRIG_HOME: home }), { stdin: "ignore" });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`--port: 127.0.0.1:${port} is already in use; choose another port with --port N, or --port 0 for any free one`);
      expect(existsSync(join(home, "lab.json"))).toBe(false);
      expect(existsSync(join(home, "logs", "dispatcher.log"))).toBe(false);
    } finally {
      server.close();
    }
  });
});
