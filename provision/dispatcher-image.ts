// `labrig image build`: the dispatcher image from compose/Dockerfile, on this machine's Docker
// engine, ready for the dispatcher-container step to send to the lab's NAS. Two ways, one
// Dockerfile: from the official Node image, everything built inside (needs the npm registry); or,
// for an air-gapped lab, on a local `--base` image that has Node >= 22.13, with the app
// assembled here first (compose/build-app.mjs, then PREBUILT=1), which is how the tests build it.
//
//   const built = await buildDispatcherImage({ tag: "labrig/dispatcher:latest", base: "debian-node:24" });
import { resolve } from "node:path";
import { execa } from "execa";
import { LabrigError } from "../core/errors.js";

export const defaultDispatcherImage = "labrig/dispatcher:latest";
const repoRoot = resolve(import.meta.dirname, "..");

export interface ImageBuildOptions {
  tag: string;
  /** A local base image with Node; without it, the Dockerfile's default (the official Node image). */
  base?: string;
  /** Progress lines (the build's own output goes here too). */
  onLine?: (line: string) => void;
}

export interface BuiltImage {
  tag: string;
  id: string;
  sizeBytes: number;
  base: string;
  /** True when the app was assembled on this machine (PREBUILT=1). */
  prebuilt: boolean;
}

export class ImageBuildError extends LabrigError {}

async function docker(args: string[], what: string, onLine?: (l: string) => void): Promise<string> {
  const child = execa("docker", args, { cwd: repoRoot, reject: false, all: true, buffer: true });
  child.all?.on("data", (d: Buffer) => d.toString().split("\n").filter(Boolean).forEach((l) => onLine?.(l)));
  const res = await child;
  if (res.failed && (res as { code?: string }).code === "ENOENT") throw new ImageBuildError("the docker command is not installed on this machine; install Docker to build the dispatcher image");
  if (res.exitCode !== 0) throw new ImageBuildError(`${what} failed (docker ${args[0]} exited ${res.exitCode}): ${String(res.all).trim().split("\n").slice(-6).join("\n")}`);
  return String(res.stdout).trim();
}

/** The Node version inside a base image, checked before building: the dispatcher needs node:sqlite. */
async function nodeVersionOf(base: string): Promise<string> {
  const present = await execa("docker", ["image", "inspect", "--format", "{{.Id}}", base], { reject: false });
  if (present.exitCode !== 0) throw new ImageBuildError(`the base image ${base} is not on this machine's Docker engine (docker image ls); load or build it first, or leave out --base to use the official Node image`);
  const res = await execa("docker", ["run", "--rm", "--network", "none", "--entrypoint", "node", base, "--version"], { reject: false });
  if (res.exitCode !== 0) throw new ImageBuildError(`the base image ${base} has no working node command (${String(res.stderr).trim() || `exit ${res.exitCode}`}); the dispatcher needs Node >= ${minNode.join(".")} in its base`);
  return String(res.stdout).trim();
}

/** node:sqlite without a flag. */
const minNode = [22, 13] as const;

export function nodeIsRecentEnough(version: string): boolean {
  const m = /^v(\d+)\.(\d+)\./.exec(version);
  return !!m && (Number(m[1]) > minNode[0] || (Number(m[1]) === minNode[0] && Number(m[2]) >= minNode[1]));
}

export async function buildDispatcherImage(opts: ImageBuildOptions): Promise<BuiltImage> {
  const line = opts.onLine ?? (() => undefined);
  let prebuilt = false;
  const args = ["build", "-f", "compose/Dockerfile", "-t", opts.tag];
  if (opts.base) {
    const version = await nodeVersionOf(opts.base);
    if (!nodeIsRecentEnough(version)) {
      throw new ImageBuildError(`the base image ${opts.base} has Node ${version}; the dispatcher needs Node >= ${minNode.join(".")} (its database is node:sqlite). Use a base with Node 22.13 or later`);
    }
    line(`assembling the app on this machine (node compose/build-app.mjs) for ${opts.base}`);
    const app = await execa(process.execPath, ["compose/build-app.mjs"], { cwd: repoRoot, reject: false, all: true });
    if (app.exitCode !== 0) throw new ImageBuildError(`node compose/build-app.mjs failed: ${String(app.all).trim().split("\n").slice(-6).join("\n")}`);
    prebuilt = true;
    args.push("--build-arg", `BASE_IMAGE=${opts.base}`, "--build-arg", "PREBUILT=1");
  }
  args.push(".");
  line(`docker ${args.join(" ")}`);
  await docker(args, `building ${opts.tag}`, line);
  const [id, size] = (await docker(["image", "inspect", "--format", "{{.Id}} {{.Size}}", opts.tag], "reading the image")).split(" ");
  return { tag: opts.tag, id: id!, sizeBytes: Number(size), base: opts.base ?? "the Dockerfile's default (node:24-bookworm-slim)", prebuilt };
}

export function formatBuiltImage(b: BuiltImage): string {
  return `built ${b.tag} (${b.id.replace(/^sha256:/, "").slice(0, 12)}, ${(b.sizeBytes / 1e6).toFixed(1)} MB) from compose/Dockerfile on ${b.base}${b.prebuilt ? ", app assembled on this machine" : ""}\n`;
}
