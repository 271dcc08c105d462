// A base image for building labrig's dispatcher image without a registry: the test Debian base
// (tests/infra/image.ts) with the node binary running the tests (the Node the project carries), so
// the image runs the same runtime as the tests. Built once per base and Node version.
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { docker } from "./docker.js";
import { ensureTestHostImage } from "./image.js";

let ensured: Promise<string> | undefined;

/** `labrig-test-node-base:<hash>`, built if this engine lacks it; pass it as BASE_IMAGE. */
export function ensureNodeBaseImage(): Promise<string> {
  ensured ??= (async () => {
    // build.sh names the debootstrap base after the host image's tag.
    const base = (await ensureTestHostImage()).replace("labrig-test-host", "labrig-test-debian-base");
    const tag = `labrig-test-node-base:${createHash("sha256").update(base).update(process.version).digest("hex").slice(0, 12)}`;
    if (await docker(["image", "ls", "-q", tag])) return tag;
    const ctx = mkdtempSync(join(tmpdir(), "labrig-node-base-"));
    try {
      copyFileSync(process.execPath, join(ctx, "node"));
      writeFileSync(join(ctx, "Dockerfile"), `FROM ${base}\nCOPY node /usr/local/bin/node\nRUN node --version\n`);
      const res = await execa("docker", ["build", "-q", "-t", tag, ctx], { reject: false, env: { DOCKER_BUILDKIT: "0" }, timeout: 300_000 });
      if (res.exitCode !== 0) throw new Error(`building ${tag} failed: ${res.stderr.slice(-2000)}`);
      return tag;
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  })();
  return ensured;
}
