// `labrig submit --code` end to end: a real git repository made here (ignored files, a .labrigignore'd
// 30 MB data file, an executable, a link, uncommitted changes), sent with jobs to two real agents
// through a real dispatcher; each job sees exactly the tree git would commit plus the dirty
// change, a second submit sends only the manifest, and `labrig code get` gives the tree back.
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../core/api.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type InProcessDispatcher, startInProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { waitFor } from "../helpers/wait.js";
import { cliEnv, runCli } from "./cli-process.js";

let d: InProcessDispatcher;
let agents: AgentProcess[] = [];
let repo: string;
let scratch: string;
let env: Record<string, string>;

const git = (...args: string[]) => execFileSync("git", ["-c", "user.email=t@example.invalid", "-c", "user.name=t", ...args], { cwd: repo, encoding: "utf8" });

/** The tree a job should see: files and links, as path → content or "-> target", executables marked. */
function treeOf(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const rel = relative(root, full);
      if (rel === ".git") continue;
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out[rel] = `-> ${readlinkSync(full)}`;
      else if (st.isDirectory()) walk(full);
      else out[rel] = `${st.mode & 0o100 ? "x " : ""}${readFileSync(full).toString("base64")}`;
    }
  };
  walk(root);
  return out;
}

// Lists what the job's folder holds (the same way treeOf reads a folder), into its output folder.
const LIST_TREE = `find . -path ./.git -prune -o \\( -type f -o -type l \\) -print | sort > "$LABRIG_OUTPUT_DIR/tree.txt"; pwd > "$LABRIG_OUTPUT_DIR/pwd.txt"; sh ./run.sh > "$LABRIG_OUTPUT_DIR/ran.txt" 2>&1 || true`;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "labrig-code-jobs-"));
  repo = join(scratch, "project");
  mkdirSync(join(repo, "pkg"), { recursive: true });
  mkdirSync(join(repo, "data"));
  mkdirSync(join(repo, "build"));
  writeFileSync(join(repo, "train.py"), "print('v1')\n");
  writeFileSync(join(repo, "pkg", "model.py"), "class Model: pass\n");
  writeFileSync(join(repo, "pkg", "old.py"), "removed later\n");
  writeFileSync(join(repo, "run.sh"), "#!/bin/sh\necho ran in $(pwd)\n");
  chmodSync(join(repo, "run.sh"), 0o755);
  writeFileSync(join(repo, ".gitignore"), "build/\n*.ckpt\n");
  writeFileSync(join(repo, ".labrigignore"), "data/\n");
  symlinkSync("pkg/model.py", join(repo, "model-link.py"));
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("commit", "-q", "-m", "first");
  // What must not travel: git-ignored build output and checkpoints, a 30 MB data file in .labrigignore.
  writeFileSync(join(repo, "build", "out.bin"), "built");
  writeFileSync(join(repo, "weights.ckpt"), "weights");
  writeFileSync(join(repo, "data", "train.bin"), Buffer.alloc(30 * 1024 * 1024, 7));
  // Uncommitted changes that must: an edit, a new file, a deletion.
  writeFileSync(join(repo, "train.py"), "print('v2, not committed')\n");
  writeFileSync(join(repo, "notes.txt"), "new and untracked\n");
  rmSync(join(repo, "pkg", "old.py"));

  d = await startInProcessDispatcher({ env: { LABRIG_HEARTBEAT_S: "1" } });
  agents = await Promise.all([
    startAgent({ url: d.url, joinToken: d.joinToken, hostId: "code-a" }),
    startAgent({ url: d.url, joinToken: d.joinToken, hostId: "code-b" }),
  ]);
  env = cliEnv({ LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: join(scratch, "home") });
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const a of agents) a.cleanup();
  await d?.stop();
  d?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

async function ended(id: string): Promise<Job> {
  const admin = d.admin();
  return waitFor(`job ${id} to end`, () => admin.job(id), (j) => ["succeeded", "failed", "cancelled", "timed_out"].includes(j.state), 60_000);
}

describe("labrig submit --code", () => {
  let jobA: Job;

  it("runs each job in exactly the tree git would commit plus the uncommitted change, on two hosts", async () => {
    const expected = treeOf(repo);
    for (const gone of ["build/out.bin", "weights.ckpt", "data/train.bin"]) delete expected[gone];
    expect(Object.keys(expected).sort()).toEqual([".gitignore", ".labrigignore", "model-link.py", "notes.txt", "pkg/model.py", "run.sh", "train.py"]);

    const a = await runCli(["submit", "--code", "--json", "--gpus", "0", "--host", "code-a", "--", "sh", "-c", LIST_TREE], env, { cwd: repo });
    expect(a.exitCode, a.stderr).toBe(0);
    jobA = JSON.parse(a.stdout) as Job;
    expect(jobA.code).toMatchObject({ files: 6, git: { branch: "main", dirty: true } });
    expect(jobA.code!.git!.commit).toBe(git("rev-parse", "HEAD").trim());
    expect(a.stderr).toMatch(/^code: 6 files, .* in snapshot [0-9a-f]{12}, git [0-9a-f]{8} \(main, dirty\); sent [1-9]\d* new blobs/m);

    // From a subfolder: the same tree, run in that subfolder of it.
    const b = await runCli(["submit", "--code", "--json", "--gpus", "0", "--host", "code-b", "--", "sh", "-c", `cd .. && ${LIST_TREE} && cd pkg && pwd > "$LABRIG_OUTPUT_DIR/pwd.txt"`], env, { cwd: join(repo, "pkg") });
    expect(b.exitCode, b.stderr).toBe(0);
    const jobB = JSON.parse(b.stdout) as Job;
    expect(jobB.code!.snapshot).toBe(jobA.code!.snapshot);
    expect(jobB.workdir).toBe("pkg");
    // The second submit of the unchanged tree sends the manifest alone.
    expect(b.stderr).toContain("sent 0 new blobs (0 B)");

    const admin = d.admin();
    for (const [job, host] of [[jobA, "code-a"], [jobB, "code-b"]] as const) {
      const end = await ended(job.id);
      expect(end.state, `${job.id} on ${host}`).toBe("succeeded");
      expect(end.hostId).toBe(host);
      const listed = (await admin.syncGet(job.id, "tree.txt")).toString().trim().split("\n").map((l) => l.replace(/^\.\//, ""));
      expect(listed).toEqual(Object.keys(expected).sort());
      const pwd = (await admin.syncGet(job.id, "pwd.txt")).toString().trim();
      expect(pwd.endsWith(job === jobB ? `${job.id}/attempt-1.code/pkg` : `${job.id}/attempt-1.code`)).toBe(true);
      expect((await admin.syncGet(job.id, "ran.txt")).toString()).toContain("ran in");
      const runJson = JSON.parse((await admin.syncGet(job.id, "run.json")).toString());
      expect(runJson.code).toMatchObject({ snapshot: jobA.code!.snapshot, git: { commit: jobA.code!.git!.commit, branch: "main", dirty: true } });
      expect(runJson.code.placed.method).toBe("hardlink");
    }
    // Each host's tree is removed once the attempt is done; the cache keeps the files.
    await waitFor("the code folder to go", async () => readdirSync(join(agents[0]!.workdir, "jobs", jobA.id)), (names) => !names.includes("attempt-1.code"), 10_000);
  }, 120_000);

  it("shows the snapshot in labrig job, prints the uncommitted change, and gives the exact tree back", async () => {
    const show = await runCli(["job", jobA.id], env);
    expect(show.stdout).toMatch(/code\s+6 files, .* in snapshot [0-9a-f]{12}, git [0-9a-f]{8} \(main, dirty\); labrig code get/);

    const diff = await runCli(["code", "diff", jobA.id], env);
    expect(diff.exitCode, diff.stderr).toBe(0);
    expect(diff.stdout).toContain("+print('v2, not committed')");
    expect(diff.stdout).toContain("deleted file mode");

    const to = join(scratch, "restored");
    const get = await runCli(["code", "get", jobA.id, "--to", to], env);
    expect(get.exitCode, get.stderr).toBe(0);
    expect(get.stdout).toContain(`wrote job ${jobA.id}'s tree to ${to}`);
    const expected = treeOf(repo);
    for (const gone of ["build/out.bin", "weights.ckpt", "data/train.bin"]) delete expected[gone];
    expect(treeOf(to)).toEqual(expected);
    // Plain files the user can edit, not read-only links into a cache.
    expect(lstatSync(join(to, "train.py")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(to, "run.sh")).mode & 0o777).toBe(0o700);

    const again = await runCli(["code", "get", jobA.id, "--to", to], env);
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toMatch(/not empty/);
  });

  it("gives every job of a sweep the same snapshot, sent once", async () => {
    const r = await runCli(["submit", "--code", "--json", "--gpus", "0", "--sweep", "seed=1,2,3", "--", "sh", "-c", "test -f train.py && echo {seed}"], env, { cwd: repo });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain("sent 0 new blobs");
    const { jobs } = JSON.parse(r.stdout) as { jobs: Job[] };
    expect(jobs).toHaveLength(3);
    expect(new Set(jobs.map((j) => j.code?.snapshot))).toEqual(new Set([jobA.code!.snapshot]));
    for (const j of jobs) expect((await ended(j.id)).state).toBe("succeeded");
  }, 60_000);

  it("says what is over the limit, naming the largest files, and sends nothing", async () => {
    const big = join(scratch, "big");
    mkdirSync(big);
    writeFileSync(join(big, "weights.pt"), Buffer.alloc(1536 * 1024, 1));
    writeFileSync(join(big, "train.py"), "print(1)\n");
    const before = await d.admin().codeUsage();
    const r = await runCli(["submit", "--code", big, "--code-limit-mb", "1", "--gpus", "0", "--", "true"], env, { cwd: repo });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/--code: .*over the limit/);
    expect(r.stderr).toMatch(/weights\.pt/);
    expect(r.stderr).toContain(".labrigignore");
    expect(await d.admin().codeUsage()).toEqual(before);
    expect((await d.admin().jobs()).some((j) => j.command.includes("true") && j.code)).toBe(false);
  });
});
