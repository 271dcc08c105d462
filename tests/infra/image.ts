// The test host image, built once per content of tests/infra/host-image/ (its tag carries the
// hash, so editing the Dockerfile or build script rebuilds it and nothing else does). Parallel
// test files wait on one lock instead of building twice.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { docker, requireDocker } from "./docker.js";

const imageDir = resolve(import.meta.dirname, "host-image");
const lockFile = "/tmp/labrig-test-host-image.lock";

/**
 * The Debian mirror this machine's apt uses (so debootstrap and the hosts' apt reach the same one),
 * or LABRIG_TEST_DEBIAN_MIRROR when set. With neither, the build stops and says what to set.
 */
export function debianMirror(): string {
  const chosen = process.env.LABRIG_TEST_DEBIAN_MIRROR;
  if (chosen) return chosen;
  const files = ["/etc/apt/sources.list", ...listDir("/etc/apt/sources.list.d").map((f) => join("/etc/apt/sources.list.d", f))];
  for (const file of files) {
    if (!existsSync(file) || !/\.(list|sources)$|sources\.list$/.test(file)) continue;
    const text = readFileSync(file, "utf8");
    const oneLine = text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m);
    if (oneLine && !oneLine[1].includes("security")) return oneLine[1];
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = stanza.match(/^URIs:\s*(\S+)/m)?.[1];
      if (uri && /^Suites:.*\bbookworm\b/m.test(stanza) && !uri.includes("security")) return uri;
    }
  }
  throw new Error(
    "tests/infra: found no Debian bookworm mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/; " +
      "set LABRIG_TEST_DEBIAN_MIRROR to the mirror URL the test hosts' apt should use",
  );
}

function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** `labrig-test-host:<hash>` of the image folder's files and the mirror. */
export function testHostImageTag(mirror = debianMirror()): string {
  const hash = createHash("sha256");
  for (const f of listDir(imageDir)) hash.update(f).update("\0").update(readFileSync(join(imageDir, f))).update("\0");
  hash.update(mirror);
  return `labrig-test-host:${hash.digest("hex").slice(0, 12)}`;
}

let ensured: Promise<string> | undefined;

/** Builds the test host image if this engine lacks it (about a minute the first time) and returns its tag. */
export function ensureTestHostImage(): Promise<string> {
  ensured ??= (async () => {
    await requireDocker();
    const mirror = debianMirror();
    const tag = testHostImageTag(mirror);
    const have = await docker(["image", "ls", "-q", tag]);
    if (have) return tag;
    const res = await execa("flock", [lockFile, join(imageDir, "build.sh"), tag, mirror], { reject: false, timeout: 600_000, all: true });
    if (res.exitCode !== 0) throw new Error(`building the test host image ${tag} failed:\n${res.all}`);
    return tag;
  })();
  return ensured;
}
