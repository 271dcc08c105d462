// collectCodeSnapshot on real trees: git work trees made with `git init` in tmp folders (their
// ignore rules, untracked files, uncommitted changes and subfolders) and plain folders.
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { collectCodeSnapshot, gitWorkTree } from "../../cli/code-snapshot.js";
import { type CodeFile, isCodeLink, manifestBlobs } from "../../core/code.js";
import { InputError } from "../../core/errors.js";

const MiB = 1024 * 1024;
const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tmpFolder(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "labrig-code-")));
  made.push(dir);
  return dir;
}

function write(root: string, path: string, content: string | Buffer, mode?: number): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  if (mode !== undefined) chmodSync(join(root, path), mode);
}

function git(dir: string, ...args: string[]): string {
  const res = spawnSync("git", ["-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false", ...args], { cwd: dir, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`git ${args.join(" ")}: ${res.stderr}`);
  return res.stdout.trim();
}

function repo(files: Record<string, string | Buffer>): string {
  const dir = tmpFolder();
  git(dir, "init", "-q", "-b", "main");
  for (const [path, content] of Object.entries(files)) write(dir, path, content);
  git(dir, "add", "-A");
  git(dir, "commit", "-q", "-m", "first");
  return dir;
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
const pathsOf = (s: { manifest: { entries: { path: string }[] } }) => s.manifest.entries.map((e) => e.path);
const fileEntry = (s: { manifest: { entries: unknown[] } }, path: string) =>
  (s.manifest.entries as CodeFile[]).find((e) => e.path === path && !isCodeLink(e));

async function refusal(run: Promise<unknown>): Promise<InputError> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  expect((err as InputError).where).toBe("--code");
  return err as InputError;
}

describe("collectCodeSnapshot in a git work tree", () => {
  it("holds the tracked and untracked-but-not-ignored files, with the commit, branch and the diff of a dirty tree", async () => {
    const dir = repo({
      ".gitignore": "build/\n*.log\n",
      ".labrigignore": "data/\n",
      "train.py": "print(1)\n",
      "README.md": "# exp\n",
      "lib/.gitignore": "cache.tmp\n",
      "lib/util.py": "def f(): pass\n",
      "run.sh": "#!/bin/sh\necho run\n",
    });
    chmodSync(join(dir, "run.sh"), 0o755);
    symlinkSync("lib/util.py", join(dir, "util-link"));
    git(dir, "add", "-A");
    git(dir, "commit", "-q", "-m", "script and link");
    write(dir, "build/out.bin", Buffer.alloc(1000, 1));
    write(dir, "train.log", "loss 1\n");
    write(dir, "lib/cache.tmp", "cached\n");
    write(dir, "notes.txt", "untracked notes\n");
    write(dir, "data/big.bin", Buffer.alloc(30 * MiB, 7));
    write(dir, "train.py", "print(2)\n");
    unlinkSync(join(dir, "README.md"));

    const snap = await collectCodeSnapshot({ cwd: dir });

    expect(snap.root).toBe(dir);
    expect(snap.subdir).toBe("");
    expect(pathsOf(snap)).toEqual([".gitignore", ".labrigignore", "lib/.gitignore", "lib/util.py", "notes.txt", "run.sh", "train.py", "util-link"]);
    let bytes = 0;
    for (const e of snap.manifest.entries) {
      if (isCodeLink(e)) continue;
      const content = readFileSync(join(dir, e.path));
      expect({ path: e.path, size: e.size, sha256: e.sha256 }).toEqual({ path: e.path, size: content.length, sha256: sha256(content) });
      expect(e.mode).toBe(e.path === "run.sh" ? 0o700 : 0o600);
      bytes += e.size;
    }
    expect(snap.bytes).toBe(bytes);
    expect(snap.manifest.entries.find((e) => e.path === "util-link")).toEqual({ path: "util-link", link: "lib/util.py" });

    const gitFacts = snap.manifest.git!;
    expect(gitFacts).toMatchObject({ commit: git(dir, "rev-parse", "HEAD"), branch: "main", dirty: true });
    const diffBlob = snap.blobs.get(gitFacts.diffSha256!);
    expect(diffBlob && "data" in diffBlob).toBe(true);
    const diff = (diffBlob as { data: Buffer }).data;
    expect(sha256(diff)).toBe(gitFacts.diffSha256);
    expect(diff.length).toBe(gitFacts.diffBytes);
    const diffText = diff.toString("utf8");
    expect(diffText).toContain("-print(1)\n+print(2)");
    expect(diffText).toMatch(/diff --git a\/README.md b\/README.md\ndeleted file mode/);

    expect(new Set(snap.blobs.keys())).toEqual(new Set(manifestBlobs(snap.manifest).keys()));
    expect(snap.blobs.get(fileEntry(snap, "notes.txt")!.sha256)).toEqual({ file: join(dir, "notes.txt"), size: 16 });

    const again = await collectCodeSnapshot({ cwd: dir });
    expect(again.id).toBe(snap.id);
    write(dir, "notes.txt", "untracked notes, edited\n");
    const edited = await collectCodeSnapshot({ cwd: dir });
    expect(edited.id).not.toBe(snap.id);
  });

  it("is clean, without a diff, when the tree is the commit", async () => {
    const dir = repo({ "train.py": "print(1)\n", ".gitignore": "*.log\n" });
    write(dir, "train.log", "ignored, so still clean\n");
    const snap = await collectCodeSnapshot({ cwd: dir });
    expect(snap.manifest.git).toEqual({ commit: git(dir, "rev-parse", "HEAD"), branch: "main", dirty: false, diffSha256: null, diffBytes: null });
    expect([...snap.blobs.values()].every((b) => "file" in b)).toBe(true);
  });

  it("is dirty with an empty diff when the only change is an untracked file", async () => {
    const dir = repo({ "train.py": "print(1)\n" });
    write(dir, "new.py", "print('new')\n");
    const snap = await collectCodeSnapshot({ cwd: dir });
    expect(snap.manifest.git).toMatchObject({ dirty: true, diffSha256: sha256(""), diffBytes: 0 });
    expect(snap.blobs.get(sha256(""))).toBeDefined();
  });

  it("leaves a changed tracked file that .labrigignore names out of the files, the diff and dirtiness", async () => {
    const dir = repo({ "train.py": "print(1)\n", ".labrigignore": "data/\n", "data/table.csv": "a,b\n1,2\n" });
    write(dir, "data/table.csv", "a,b\n3,4\n");
    const clean = await collectCodeSnapshot({ cwd: dir });
    expect(pathsOf(clean)).toEqual([".labrigignore", "train.py"]);
    expect(clean.manifest.git).toMatchObject({ dirty: false, diffSha256: null });

    write(dir, "train.py", "print(2)\n");
    const dirty = await collectCodeSnapshot({ cwd: dir });
    const diff = (dirty.blobs.get(dirty.manifest.git!.diffSha256!) as { data: Buffer }).data.toString("utf8");
    expect(diff).toContain("+print(2)");
    expect(diff).not.toContain("table.csv");
  });

  it("counts the diff of a dirty tree against the limit", async () => {
    const dir = repo({ "weights.bin": randomBytes(600 * 1024) });
    write(dir, "weights.bin", randomBytes(600 * 1024));
    const err = await refusal(collectCodeSnapshot({ cwd: dir, limitBytes: MiB }));
    expect(err.message).toContain("over the limit of 1 MiB");
    expect(err.message).toContain("  weights.bin  0.59 MiB");
    expect(err.message).toContain("The diff of the uncommitted changes to tracked files adds more than 0.41 MiB; committing them leaves it out.");
  });

  it("has no git facts in a repository without a commit, and no branch on a detached HEAD", async () => {
    const fresh = tmpFolder();
    git(fresh, "init", "-q", "-b", "main");
    write(fresh, "a.py", "x = 1\n");
    const unborn = await collectCodeSnapshot({ cwd: fresh });
    expect(pathsOf(unborn)).toEqual(["a.py"]);
    expect(unborn.manifest.git).toBeNull();

    const dir = repo({ "a.py": "x = 1\n" });
    git(dir, "checkout", "-q", "--detach");
    expect((await collectCodeSnapshot({ cwd: dir })).manifest.git).toMatchObject({ branch: null, dirty: false });
  });

  it("snapshots a subfolder given as dir with paths relative to it, and its changes alone", async () => {
    const dir = repo({
      ".gitignore": "*.log\n",
      "other.py": "print('other')\n",
      "exp/a.py": "a = 1\n",
      "exp/sub/b.py": "b = 1\n",
      "exp/.labrigignore": "*.ckpt\n",
    });
    write(dir, "exp/new.py", "new = 1\n");
    write(dir, "exp/run.log", "ignored by the top .gitignore\n");
    write(dir, "exp/w.ckpt", "weights\n");
    write(dir, "exp/a.py", "a = 2\n");
    write(dir, "other.py", "print('changed outside the snapshot')\n");

    const snap = await collectCodeSnapshot({ dir: "exp", cwd: dir });
    expect(snap.root).toBe(join(dir, "exp"));
    expect(snap.subdir).toBe("");
    expect(pathsOf(snap)).toEqual([".labrigignore", "a.py", "new.py", "sub/b.py"]);
    expect(snap.manifest.git).toMatchObject({ commit: git(dir, "rev-parse", "HEAD"), dirty: true });
    const diff = (snap.blobs.get(snap.manifest.git!.diffSha256!) as { data: Buffer }).data.toString("utf8");
    expect(diff).toContain("diff --git a/exp/a.py b/exp/a.py");
    expect(diff).not.toContain("other.py");

    const fromBelow = await collectCodeSnapshot({ dir: "..", cwd: join(dir, "exp", "sub") });
    expect(fromBelow.root).toBe(join(dir, "exp"));
    expect(fromBelow.subdir).toBe("sub");
    expect(fromBelow.id).toBe(snap.id);
  });

  it("takes in the files of a repository cloned inside the tree, with that repository's own ignore rules", async () => {
    const dir = repo({ "train.py": "print(1)\n" });
    const nested = join(dir, "vendor", "lib");
    mkdirSync(nested, { recursive: true });
    git(nested, "init", "-q", "-b", "main");
    write(nested, ".gitignore", "*.o\n");
    write(nested, "lib.py", "lib = 1\n");
    git(nested, "add", "-A");
    git(nested, "commit", "-q", "-m", "lib");
    write(nested, "lib.o", "ignored by the nested .gitignore\n");
    write(nested, "scratch.py", "untracked in the nested repository\n");

    const snap = await collectCodeSnapshot({ cwd: dir });
    expect(pathsOf(snap)).toEqual(["train.py", "vendor/lib/.gitignore", "vendor/lib/lib.py", "vendor/lib/scratch.py"]);
    expect(snap.manifest.git).toMatchObject({ commit: git(dir, "rev-parse", "HEAD"), dirty: true, diffBytes: 0 });
  });

  it("takes the whole work tree when run in a subfolder without dir, and says where it ran", async () => {
    const dir = repo({ "src/models/net.py": "net = 1\n", "train.py": "print(1)\n" });
    const snap = await collectCodeSnapshot({ cwd: join(dir, "src", "models") });
    expect(snap.root).toBe(dir);
    expect(snap.subdir).toBe("src/models");
    expect(pathsOf(snap)).toEqual(["src/models/net.py", "train.py"]);
    expect(await gitWorkTree(join(dir, "src"))).toBe(dir);
  });
});

describe("collectCodeSnapshot outside git", () => {
  it("walks the folder honouring each folder's .gitignore and .labrigignore, never entering .git", async () => {
    const dir = tmpFolder();
    write(dir, ".gitignore", "*.tmp\nout/\n");
    write(dir, ".labrigignore", "big.dat\n");
    write(dir, "a.py", "a = 1\n");
    write(dir, "x.tmp", "ignored\n");
    write(dir, "out/o.bin", "ignored folder\n");
    write(dir, "big.dat", Buffer.alloc(2 * MiB));
    write(dir, "sub/.gitignore", "!keep.tmp\nlocal.txt\n");
    write(dir, "sub/keep.tmp", "unignored below\n");
    write(dir, "sub/local.txt", "ignored below\n");
    write(dir, "sub/s.py", "s = 1\n");
    write(dir, ".git/notes", "not a repository, and not sent\n");
    expect(await gitWorkTree(dir)).toBeNull();

    const snap = await collectCodeSnapshot({ cwd: dir });
    expect(snap.root).toBe(dir);
    expect(snap.manifest.git).toBeNull();
    expect(pathsOf(snap)).toEqual([".gitignore", ".labrigignore", "a.py", "sub/.gitignore", "sub/keep.tmp", "sub/s.py"]);
    expect(fileEntry(snap, "sub/s.py")).toMatchObject({ size: 6, sha256: sha256("s = 1\n"), mode: 0o600 });
  });

  it("refuses a folder holding no files", async () => {
    const err = await refusal(collectCodeSnapshot({ cwd: tmpFolder() }));
    expect(err.message).toContain("holds no files to send");
  });

  it("refuses a tree over the limit, naming the total, the limit and the ten largest files", async () => {
    const dir = tmpFolder();
    for (let i = 1; i <= 12; i++) write(dir, `f${String(i).padStart(2, "0")}.bin`, Buffer.alloc(i * 100 * 1024));
    const err = await refusal(collectCodeSnapshot({ cwd: dir, limitBytes: MiB }));
    expect(err.message).toContain(`the snapshot of ${dir} holds 7.62 MiB, over the limit of 1 MiB`);
    const listed = [...err.message.matchAll(/^ {2}(f\d\d\.bin) {2}([\d.]+) MiB$/gm)].map((m) => [m[1], m[2]]);
    expect(listed).toEqual([
      ["f12.bin", "1.17"],
      ["f11.bin", "1.07"],
      ["f10.bin", "0.98"],
      ["f09.bin", "0.88"],
      ["f08.bin", "0.78"],
      ["f07.bin", "0.68"],
      ["f06.bin", "0.59"],
      ["f05.bin", "0.49"],
      ["f04.bin", "0.39"],
      ["f03.bin", "0.29"],
    ]);
    expect(err.message).toContain(".labrigignore");
    expect(err.message).toContain("--code-limit-mb or LABRIG_CODE_LIMIT_MB");
  });

  it("refuses a link to an absolute path, naming it", async () => {
    const dir = tmpFolder();
    write(dir, "a.py", "a = 1\n");
    symlinkSync("/etc", join(dir, "etc-link"));
    const err = await refusal(collectCodeSnapshot({ cwd: dir }));
    expect(err.message).toContain("'etc-link'");
    expect(err.message).toContain("absolute");
  });

  it("refuses a link out of the tree, naming it", async () => {
    const dir = repo({ "a.py": "a = 1\n" });
    mkdirSync(join(dir, "lib"));
    symlinkSync("../../outside", join(dir, "lib", "out-link"));
    const err = await refusal(collectCodeSnapshot({ cwd: dir }));
    expect(err.message).toContain("'lib/out-link'");
    expect(err.message).toContain("outside the tree");
  });

  it("refuses a FIFO, naming it and .labrigignore", async () => {
    const dir = tmpFolder();
    write(dir, "a.py", "a = 1\n");
    mkdirSync(join(dir, "run"));
    const made = spawnSync("mkfifo", [join(dir, "run", "pipe")]);
    expect(made.status).toBe(0);
    const err = await refusal(collectCodeSnapshot({ cwd: dir }));
    expect(err.message).toContain("'run/pipe'");
    expect(err.message).toContain("is a FIFO; a snapshot holds files, folders and links only: add it to .labrigignore");
  });
});
