// Where a submitted job runs, and `labrig` as a command on PATH, as a researcher meets them: real
// CLI processes started from a project folder outside the checkout, against a real dispatcher
// that the CLI finds either as the local lab (lab.json under LABRIG_HOME) or by LABRIG_URL.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Job } from "../../core/api.js";
import { relativePathsIn } from "../../cli/job-commands.js";
import { repoRoot } from "../helpers/dispatcher-process.js";
import { type InProcessDispatcher, startInProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { cliEnv, runCli } from "./cli-process.js";

// Each test starts several CLI processes (node + tsx, seconds each on a busy machine).
vi.setConfig({ testTimeout: 120_000 });

let d: InProcessDispatcher;
let scratch: string;
let labHome: string;
let project: string;
let binDir: string;

beforeAll(async () => {
  d = await startInProcessDispatcher();
  scratch = realpathSync(mkdtempSync(join(tmpdir(), "labrig-where-")));
  // A local lab as `pnpm start` leaves it for other commands: lab.json naming the dispatcher.
  labHome = join(scratch, "home");
  mkdirSync(labHome);
  writeFileSync(
    join(labHome, "lab.json"),
    JSON.stringify({ url: d.url, adminTokenFile: join(d.stateDir, "admin-token"), joinTokenFile: join(d.stateDir, "join-token"), pid: process.pid, startedAt: new Date().toISOString() }),
  );
  project = join(scratch, "nbjobs");
  mkdirSync(project);
  writeFileSync(join(project, "train.py"), "print('hi')\n");
  writeFileSync(join(project, "job.yaml"), "name: from-project\ncommand: [python3, train.py]\ngpus: 0\n");
  // The README's way to put `labrig` on PATH: a link to the checkout's bin/labrig.
  binDir = join(scratch, "bin");
  mkdirSync(binDir);
  symlinkSync(join(repoRoot, "bin", "labrig"), join(binDir, "labrig"));
});

afterAll(async () => {
  await d?.stop();
  d?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

const onPath = (extra: Record<string, string>) => ({ ...cliEnv(extra), PATH: `${binDir}:${process.env.PATH ?? ""}` });

describe("labrig on PATH", () => {
  it("runs `labrig submit` from a folder outside the checkout through the linked bin entry", async () => {
    const r = await execa("labrig", ["submit", "--json", "--gpus", "0", "--", "python3", "train.py"], { cwd: project, env: onPath({ LABRIG_HOME: labHome }), extendEnv: false, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as Job;
    expect(job.command).toEqual(["python3", "train.py"]);
    expect(job.workdir).toBe(project);
    const help = await execa("labrig", ["--help"], { cwd: scratch, env: onPath({}), extendEnv: false });
    expect(help.stdout).toMatch(/^Usage: labrig /);
  });
});

describe("where a job runs", () => {
  it("in the local lab, defaults the workdir to the folder submit ran from, also through `pnpm -C <checkout> submit`, and reads --config from there", async () => {
    const env = cliEnv({ LABRIG_HOME: labHome });
    const direct = await runCli(["submit", "--json", "--gpus", "0", "--", "python3", "train.py"], env, { cwd: project });
    expect(direct.stderr).toBe("");
    expect((JSON.parse(direct.stdout) as Job).workdir).toBe(project);

    // pnpm runs the script in the checkout; the caller's folder arrives as INIT_CWD.
    const viaPnpm = await execa("pnpm", ["-C", repoRoot, "-s", "submit", "--json", "--config", "job.yaml"], { cwd: project, env: { ...process.env, ...env }, reject: false });
    expect(viaPnpm.exitCode, viaPnpm.stderr).toBe(0);
    expect(JSON.parse(viaPnpm.stdout)).toMatchObject({ name: "from-project", workdir: project });

    const chosen = await runCli(["submit", "--json", "--gpus", "0", "--workdir", "/srv/code", "--", "python3", "train.py"], env, { cwd: project });
    expect((JSON.parse(chosen.stdout) as Job).workdir).toBe("/srv/code");
  });

  it("against another lab, warns that a relative path is not looked up in this folder and names the flags that choose", async () => {
    const env = cliEnv({ LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: join(scratch, "no-lab") });
    const r = await runCli(["submit", "--json", "--gpus", "0", "--", "python3", "train.py", "--lr", "0.001"], env, { cwd: project });
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as Job).workdir).toBeNull();
    expect(r.stderr).toContain("warning: 'train.py' is a relative path, but this job does not run in this folder");
    expect(r.stderr).toContain("--workdir DIR");
    const help = await runCli(["submit", "--help"], env);
    if (help.stdout.includes("--code")) expect(r.stderr).toContain("--code");

    const withWorkdir = await runCli(["submit", "--json", "--gpus", "0", "--workdir", "/srv/code", "--", "python3", "train.py"], env, { cwd: project });
    expect(withWorkdir.stderr).toBe("");
    const noPaths = await runCli(["submit", "--json", "--gpus", "0", "--", "nvidia-smi"], env, { cwd: project });
    expect(noPaths.stderr).toBe("");
  });

  it("takes file-like words as relative paths, and flags, numbers, absolute paths and program names not", () => {
    expect(relativePathsIn(["python", "train.py", "--lr", "0.001", "--out=runs/a", "/abs/x.py"])).toEqual(["train.py"]);
    expect(relativePathsIn(["./run.sh", "data/x.csv", "python3.11", "https://x.org/a.py"])).toEqual(["./run.sh", "data/x.csv"]);
    expect(relativePathsIn("bash scripts/go.sh 3")).toEqual(["scripts/go.sh"]);
    expect(relativePathsIn(["echo", "hi"])).toEqual([]);
  });
});
