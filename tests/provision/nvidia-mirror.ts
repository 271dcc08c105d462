// A stand-in for NVIDIA's apt repository, served by the test over HTTP on the test network's
// gateway: a flat, signed repository holding one tiny locally built package named
// nvidia-container-toolkit whose `nvidia-ctk runtime configure --runtime=docker` edits
// daemon.json as the real one does. NVIDIA's repository and GPUs are out of reach here; the
// step under test installs from this exactly as it would from a lab's offline mirror.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { execa } from "execa";

export interface FakeNvidiaMirror {
  repository: string;
  keyUrl: string;
  /** Paths the hosts fetched, in order. */
  requests(): string[];
  close(): Promise<void>;
}

const nvidiaCtk = `#!/bin/sh
# Test stand-in for nvidia-ctk: only 'runtime configure --runtime=docker', editing daemon.json like the real one.
set -e
[ "$1 $2 $3" = "runtime configure --runtime=docker" ] || { echo "stand-in nvidia-ctk: unsupported: $*" >&2; exit 2; }
f=/etc/docker/daemon.json
[ -s "$f" ] || echo '{}' > "$f"
jq '.runtimes.nvidia = {"args": [], "path": "nvidia-container-runtime"}' "$f" > "$f.new" && mv "$f.new" "$f"
echo "INFO Wrote updated config to $f"
`;
const runtime = `#!/bin/sh
# Test stand-in for nvidia-container-runtime: plain runc (there is no GPU to inject).
exec runc "$@"
`;

export async function startFakeNvidiaMirror(dir: string, bindAddress: string): Promise<FakeNvidiaMirror> {
  const repo = join(dir, "repo");
  const pkg = join(dir, "pkg");
  const gnupg = join(dir, "gnupg");
  for (const d of [repo, join(pkg, "DEBIAN"), join(pkg, "usr/bin")]) mkdirSync(d, { recursive: true });
  mkdirSync(gnupg, { recursive: true, mode: 0o700 });

  writeFileSync(
    join(pkg, "DEBIAN/control"),
    "Package: nvidia-container-toolkit\nVersion: 1.17.0-1\nArchitecture: all\nMaintainer: labrig tests <tests@labrig.invalid>\nDepends: jq\nDescription: test stand-in for NVIDIA's container toolkit\n",
  );
  writeFileSync(join(pkg, "usr/bin/nvidia-ctk"), nvidiaCtk);
  writeFileSync(join(pkg, "usr/bin/nvidia-container-runtime"), runtime);
  chmodSync(join(pkg, "usr/bin/nvidia-ctk"), 0o755);
  chmodSync(join(pkg, "usr/bin/nvidia-container-runtime"), 0o755);
  await execa("dpkg-deb", ["--build", "--root-owner-group", pkg, join(repo, "nvidia-container-toolkit_1.17.0-1_all.deb")]);
  const packages = (await execa("dpkg-scanpackages", ["--multiversion", "."], { cwd: repo })).stdout + "\n";
  writeFileSync(join(repo, "Packages"), packages);
  const sha = (f: string) => createHash("sha256").update(readFileSync(join(repo, f))).digest("hex");
  writeFileSync(
    join(repo, "Release"),
    `Origin: labrig-test\nLabel: labrig-test\nDate: ${new Date().toUTCString()}\nSHA256:\n ${sha("Packages")} ${statSync(join(repo, "Packages")).size} Packages\n`,
  );
  const gpg = (args: string[]) => execa("gpg", ["--homedir", gnupg, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "", ...args]);
  await gpg(["--quick-gen-key", "labrig test mirror <mirror@labrig.invalid>", "ed25519", "sign", "never"]);
  await gpg(["--armor", "--output", join(repo, "key.asc"), "--export"]);
  await gpg(["--clearsign", "--output", join(repo, "InRelease"), join(repo, "Release")]);

  const seen: string[] = [];
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    seen.push(path);
    try {
      const body = readFileSync(join(repo, path));
      res.writeHead(200, { "content-length": body.length }).end(req.method === "HEAD" ? undefined : body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, bindAddress, resolve));
  const base = `http://${bindAddress}:${(server.address() as AddressInfo).port}`;
  return {
    repository: base,
    keyUrl: `${base}/key.asc`,
    requests: () => [...seen],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
