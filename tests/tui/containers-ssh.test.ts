// The dashboard's Docker over SSH against a real sshd test host: it connects only to a host whose
// key provisioning pinned, and refuses an unpinned or changed one with a message saying what to do
// (finding: tui/containers.ts accepted any host key). It is provisioning's own path
// (connectDockerOverSsh), told to pin nothing.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshRemote } from "../../provision/ssh-remote.js";
import { pollSources, sshSource } from "../../tui/containers.js";
import { startTestBed, type TestBed, type TestHost, type TestSshKey } from "../infra/index.js";

let bed: TestBed;
let dir: string;
let key: TestSshKey;
let host: TestHost;

beforeAll(async () => {
  bed = await startTestBed("tui-ssh", [{ name: "tui-ssh-a" }]);
  ({ dir, key } = bed);
  host = bed.hosts[0]!;
}, 600_000);

afterAll(() => bed?.stop());

function source(knownHostsFile: string) {
  return sshSource({ host: host.name, address: host.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile }, knownHostsFile);
}

describe("the dashboard's Docker over SSH", () => {
  it("refuses a host whose key provisioning has not pinned, and pins nothing itself", async () => {
    const known = join(dir, "known_empty");
    const [r] = await pollSources([source(known)]);
    expect(r!.error).toContain("is not pinned in");
    expect(r!.error).toContain(`labrig provision --host ${host.name}`);
    expect(() => readFileSync(known)).toThrow();
  }, 60_000);

  it("refuses a host whose key differs from the pinned one", async () => {
    const known = join(dir, "known_other");
    writeFileSync(known, `${host.ip} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRoaXMtaXMtbm90LXRoZS1yZWFsLWtleS0xMjM0NTY3 other\n`);
    const [r] = await pollSources([source(known)]);
    expect(r!.error).toContain(`the SSH host key of ${host.name} (${host.ip}) has changed: pinned `);
  }, 60_000);

  it("goes past the host key check for the key provisioning pinned", async () => {
    const known = join(dir, "known_pinned");
    const remote = new SshRemote({ host: host.name, address: host.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile }, { knownHostsFile: known });
    await remote.run("true", { sudo: false });
    await remote.close();
    const [r] = await pollSources([source(known)]);
    // The test host runs no Docker engine: the error is Docker's, not the host key's.
    expect(r!.error ?? "").not.toMatch(/pinned/);
  }, 60_000);
});
