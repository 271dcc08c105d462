// Host-key pinning for provisioning connections, in an OpenSSH-format known_hosts file kept under
// the project's state (default ~/.labrig/known_hosts, or --known-hosts). The first connection to a
// host records its key and says so; a later different key stops everything with a clear error.
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { labrigHome } from "../core/config.js";
import { LabrigError } from "../core/errors.js";

export function defaultKnownHostsFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(labrigHome(env), "known_hosts");
}

export class HostKeyChangedError extends LabrigError {
  constructor(host: string, address: string, file: string, expected: string, got: string) {
    super(
      `the SSH host key of ${host} (${address}) has changed: pinned ${expected}, offered ${got}. ` +
        `Someone may be intercepting the connection, or the host was reinstalled. If you know it was ` +
        `reinstalled, remove its line from ${file} and run again.`,
    );
  }
}

/** OpenSSH's host pattern: plain for port 22, [addr]:port otherwise. */
export function knownHostsPattern(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** "ED25519 SHA256:…" as ssh-keygen -l shows it. */
export function fingerprint(keyBlob: Buffer): string {
  const type = keyType(keyBlob).replace(/^ssh-/, "").toUpperCase();
  return `${type} SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString("latin1");
}

export type HostKeyVerdict = { status: "known" } | { status: "recorded"; fingerprint: string } | { status: "unpinned" } | { status: "changed"; error: HostKeyChangedError };

/**
 * Checks a host's offered key against the file; records it when the host is new, unless `pinNew`
 * is false (tools that must not pin on their own, the dashboard): then a new host is "unpinned".
 */
export function verifyHostKey(file: string, host: string, address: string, port: number, keyBlob: Buffer, opts: { pinNew?: boolean } = {}): HostKeyVerdict {
  const pattern = knownHostsPattern(address, port);
  const offered = keyBlob.toString("base64");
  const type = keyType(keyBlob);
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  const pinned = lines
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && !f[0]!.startsWith("#") && f[0]!.split(",").includes(pattern));
  if (pinned.some((f) => f[1] === type && f[2] === offered)) return { status: "known" };
  // Any other key for a pinned host is a change, even of another type: a downgrade is no excuse.
  const was = pinned.find((f) => f[1] === type) ?? pinned[0];
  if (was) {
    const expected = fingerprint(Buffer.from(was[2]!, "base64"));
    return { status: "changed", error: new HostKeyChangedError(host, pattern, file, expected, fingerprint(keyBlob)) };
  }
  if (opts.pinNew === false) return { status: "unpinned" };
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, `${pattern} ${type} ${offered} ${host}\n`, { mode: 0o600 });
  return { status: "recorded", fingerprint: fingerprint(keyBlob) };
}
