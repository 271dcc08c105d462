// The SSH side of provisioning against real test hosts: host keys pinned on first use and a
// changed key refused, a sudo that wants a password named as such, command errors that carry
// the command, exit code and stderr, and one retry when the connection drops under a command.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostKeyChangedError } from "../../provision/known-hosts.js";
import { RemoteCommandError, SudoPasswordRequiredError } from "../../provision/remote.js";
import { SshRemote } from "../../provision/ssh-remote.js";
import { createSshKey, startTestBed, type TestBed, type TestHost, type TestSshKey } from "../infra/index.js";
import { provisionCli, stepOf } from "./helpers.js";

let bed: TestBed;
let dir: string;
let key: TestSshKey;
let host: TestHost;
let strict: TestHost;

beforeAll(async () => {
  bed = await startTestBed("ssh", [{ name: "ssh-a" }, { name: "ssh-pw", sudo: "password" }]);
  ({ dir, key } = bed);
  [host, strict] = bed.hosts as [TestHost, TestHost];
}, 600_000);

afterAll(() => bed?.stop());

function remoteFor(h: TestHost, knownHostsFile: string, notices: string[] = []) {
  return new SshRemote(
    { host: h.name, address: h.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile },
    { knownHostsFile, onNotice: (m) => notices.push(m) },
  );
}

describe("ssh sessions", () => {
  it("records a new host's key once, shows it, and reuses one connection for many commands", async () => {
    const known = join(dir, "known_a");
    const notices: string[] = [];
    const remote = remoteFor(host, known, notices);
    const outputs = await Promise.all(Array.from({ length: 5 }, () => remote.run("echo $PPID", { sudo: false })));
    // Each command's parent is the sshd session process of one and the same connection.
    const sessions = await host.sh("pgrep -c -u deploy -f 'sshd: deploy'");
    expect(outputs.length).toBe(5);
    expect(sessions).toBe("1");
    expect(await remote.run("id -u", { sudo: true })).toBe("0\n");
    await remote.close();
    expect(notices).toEqual([expect.stringMatching(/^recorded the host key of ssh-a \(.+\): ED25519 SHA256:\S+ in /)]);
    const fingerprint = (await host.sh("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")).split(" ")[1];
    expect(notices[0]).toContain(fingerprint);
    expect(readFileSync(known, "utf8")).toMatch(new RegExp(`^${host.ip.replace(/\./g, "\\.")} ssh-ed25519 \\S+ ssh-a\\n$`));

    const again: string[] = [];
    const second = remoteFor(host, known, again);
    await second.run("true");
    await second.close();
    expect(again).toEqual([]);
  });

  it("refuses a host whose key changed, saying which host and which file to fix", async () => {
    const known = join(dir, "known_changed");
    const first = remoteFor(host, known);
    await first.run("true");
    await first.close();
    // Pin another key for the same address, as if the host had been replaced.
    const other = createSshKey(mkdtempSync(join(dir, "other-")));
    writeFileSync(known, `${host.ip} ${other.publicKey.split(" ").slice(0, 2).join(" ")} ssh-a\n`);
    const remote = remoteFor(host, known);
    const err = await remote.run("true").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyChangedError);
    expect((err as Error).message).toContain(`the SSH host key of ssh-a (${host.ip}) has changed`);
    expect((err as Error).message).toContain(`remove its line from ${known}`);
  });

  it("names a sudo that wants a password, with the fix", async () => {
    const remote = remoteFor(strict, join(dir, "known_pw"));
    expect(await remote.run("whoami")).toBe("deploy\n");
    const err = await remote.run("true", { sudo: true }).catch((e: unknown) => e);
    await remote.close();
    expect(err).toBeInstanceOf(SudoPasswordRequiredError);
    expect((err as Error).message).toContain("sudo asks deploy for a password");
    expect((err as Error).message).toContain("NOPASSWD");
  });

  it("reports that sudo error as the failed step of a provisioning run", async () => {
    const inv = join(dir, "inv-pw.yaml");
    writeFileSync(inv, `defaults: {identityFile: ${key.privateKeyFile}}\nhosts:\n  ssh-pw: {address: ${strict.ip}, roles: [gpu]}\n`);
    const run = await provisionCli(["--host", "ssh-pw", "--inventory", inv, "--known-hosts", join(dir, "known_cli"), "--only", "base,firewall"]);
    expect(run.exitCode).toBe(1);
    expect(stepOf(run, "ssh-pw", "base")).toMatchObject({ status: "failed", reason: expect.stringContaining("sudo asks deploy for a password") });
    expect(stepOf(run, "ssh-pw", "firewall")).toMatchObject({ status: "skipped", reason: "not run: step base failed" });
  });

  it("carries the command, exit code and stderr tail in a command error", async () => {
    const remote = remoteFor(host, join(dir, "known_a"));
    const err = await remote.run("echo first >&2; echo 'no such thing' >&2; exit 3").catch((e: unknown) => e);
    await remote.close();
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err).toMatchObject({ exitCode: 3, command: "echo first >&2; echo 'no such thing' >&2; exit 3" });
    expect((err as Error).message).toBe("on ssh-a: `echo first >&2; echo 'no such thing' >&2; exit 3` exited 3: first\nno such thing");
  });

  it("reconnects once when the connection drops between commands", async () => {
    const remote = remoteFor(host, join(dir, "known_a"));
    expect(await remote.run("echo one")).toBe("one\n");
    // Kill the session's sshd process on the host: the client's connection is gone.
    await host.sh("pkill -KILL -u deploy -f 'sshd: deploy' || true");
    await new Promise((r) => setTimeout(r, 200));
    expect(await remote.run("echo two")).toBe("two\n");
    await remote.close();
  });
});
