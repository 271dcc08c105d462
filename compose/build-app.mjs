#!/usr/bin/env node
// Assembles what the dispatcher image runs, into dist/image/app (or the folder given):
//   labrig.mjs             the dispatcher, backup and restore commands in one esbuild bundle
//   migrations/            the dispatcher's SQL migrations (read next to the bundle)
//   agent/labrig-agent.mjs the agent bundle, so provisioning fetches it from the image
//   bin/labrig, bin/restic the command, and restic for backups inside the container
// The Dockerfile runs this in its build stage; tests run it on this machine and build the image
// with PREBUILT=1 (no registry needed). Nothing native is carried: SQLite is Node's own node:sqlite.
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const out = resolve(process.argv[2] ?? join(root, "dist", "image", "app"));

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "bin"), { recursive: true });

await build({
  entryPoints: [join(root, "compose", "app-entry.ts")],
  outfile: join(out, "labrig.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  // Bundled CommonJS dependencies call require(); give the ESM bundle one.
  // ssh2 reads __dirname at load; give the ESM bundle that one too.
  banner: { js: "import { createRequire as __labrigRequire } from 'node:module'; const require = __labrigRequire(import.meta.url); const __dirname = import.meta.dirname;" },
  // ssh2 (the Slurm driver's SSH) try-loads optional native addons; left out, it uses its JS crypto.
  external: ["*.node"],
  logLevel: "warning",
});
cpSync(join(root, "dispatcher", "migrations"), join(out, "migrations"), { recursive: true });

// The agent bundle, built fresh from agent/ (its own esbuild script) so the image never carries a stale one.
const agentBundle = join(root, "dist", "agent", "labrig-agent.mjs");
if (existsSync(join(root, "agent", "bundle.ts"))) {
  execFileSync(process.execPath, ["--import", "tsx", join(root, "agent", "bundle.ts"), "--out", agentBundle], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
}
if (existsSync(agentBundle)) {
  mkdirSync(join(out, "agent"), { recursive: true });
  cpSync(agentBundle, join(out, "agent", "labrig-agent.mjs"));
} else {
  console.warn(`build-app: ${agentBundle} is missing (build the agent first); the image will not carry the agent`);
}

writeFileSync(join(out, "bin", "labrig"), '#!/bin/sh\nexec node /opt/labrig/labrig.mjs "$@"\n');
chmodSync(join(out, "bin", "labrig"), 0o755);
const restic = which("restic");
if (restic) cpSync(restic, join(out, "bin", "restic"), { dereference: true });
else console.warn("build-app: restic is not installed here; the image will not be able to run backups");

console.log(`build-app: ${out} ready`);

function which(cmd) {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}
