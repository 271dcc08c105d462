// Reaching hosts as real labs have them, against real test hosts: a host behind two jump hosts
// (SSH's ProxyJump; its SSH port closed to all but the last hop), every hop's key pinned; and a
// login user whose sudo asks for a password, given once with --ask-sudo-pass on stdin and found in
// no report, log or process list.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SudoPasswordWrongError } from "../../provision/remote.js";
import { SshRemote, type SshTarget } from "../../provision/ssh-remote.js";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import { startTestBed, type TestBed, type TestHost, type TestSshKey } from "../infra/index.js";
import type { ProvisionReport } from "../../provision/runner.js";

const password = "Tr0ub4dor-i20-sudo-pw";
let bed: TestBed;
let dir: string;
let key: TestSshKey;
let jump1: TestHost;
let jump2: TestHost;
let inner: TestHost;

beforeAll(async () => {
  bed = await startTestBed("reach", [{ name: "jump1" }, { name: "jump2" }, { name: "inner", sudo: "password", sudoPassword: password }]);
  ({ dir, key } = bed);
  [jump1, jump2, inner] = bed.hosts as [TestHost, TestHost, TestHost];
  // inner takes SSH only from jump2, jump2 only from jump1: this machine must go jump1 → jump2 → inner.
  await Promise.all([inner.closeSshExceptFrom([jump2.ip]), jump2.closeSshExceptFrom([jump1.ip])]);
}, 600_000);

afterAll(() => bed?.stop());

const innerTarget = (): SshTarget => ({ host: "inner", address: inner.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile, jumps: [{ address: jump1.ip, port: 22 }, { address: jump2.ip, port: 22, user: "deploy" }] });

describe("proxyJump", () => {
  it("reaches a host only its jump hosts can reach, through two hops, pinning each hop's key", async () => {
    const known = join(dir, "known_jump");
    const direct = new SshRemote({ host: "inner", address: inner.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile }, { knownHostsFile: join(dir, "known_direct"), connectTimeoutMs: 3000 });
    await expect(direct.run("true")).rejects.toThrow(/cannot connect to inner/);
    const notices: string[] = [];
    const remote = new SshRemote(innerTarget(), { knownHostsFile: known, onNotice: (m) => notices.push(m) });
    expect(await remote.run("hostname")).toBe("inner\n");
    await remote.close();
    expect(notices.map((n) => n.split(":")[0])).toEqual([`recorded the host key of jump host ${jump1.ip} (${jump1.ip})`, `recorded the host key of jump host ${jump2.ip} (${jump2.ip})`, `recorded the host key of inner (${inner.ip})`]);
    const pinned = readFileSync(known, "utf8").trim().split("\n").map((l) => l.split(" ")[0]);
    expect(pinned).toEqual([jump1.ip, jump2.ip, inner.ip]);
    // A second connection checks the pinned keys and records nothing new.
    const again = new SshRemote(innerTarget(), { knownHostsFile: known, onNotice: (m) => notices.push(m) });
    expect(await again.run("hostname")).toBe("inner\n");
    await again.close();
    expect(notices).toHaveLength(3);
  });

  it("refuses a jump host whose key changed, naming it", async () => {
    const known = join(dir, "known_changed");
    writeFileSync(known, `${jump2.ip} ${key.publicKey.split(" ").slice(0, 2).join(" ")} jump2\n`);
    const remote = new SshRemote(innerTarget(), { knownHostsFile: known });
    await expect(remote.run("true")).rejects.toThrow(`the SSH host key of jump host ${jump2.ip} (${jump2.ip}) has changed`);
  });
});

describe("sudo with a password", () => {
  it("runs as root with the password given, and refuses a wrong one once with what to do", async () => {
    const remote = new SshRemote(innerTarget(), { knownHostsFile: join(dir, "known_sudo"), sudoPassword: password });
    expect(await remote.run("id -u", { sudo: true })).toBe("0\n");
    // stdin still reaches the command, after the password line sudo took.
    expect(await remote.run("cat", { sudo: true, input: "payload\n" })).toBe("payload\n");
    await remote.writeFile("/etc/labrig-test", "written as root\n", { mode: 0o600 });
    expect(await inner.sh("stat -c '%a %U' /etc/labrig-test; cat /etc/labrig-test")).toBe("600 root\nwritten as root");
    await remote.close();
    const wrong = new SshRemote(innerTarget(), { knownHostsFile: join(dir, "known_sudo"), sudoPassword: "not-it" });
    const err = await wrong.run("true", { sudo: true }).catch((e: unknown) => e);
    await wrong.close();
    expect(err).toBeInstanceOf(SudoPasswordWrongError);
    expect((err as Error).message).toBe("on inner: sudo refused the password given with --ask-sudo-pass for deploy; run again and type deploy's login password on that host");
  });

  it("without --ask-sudo-pass, the error names the flag; with it (stdin) the host converges, and the password shows up nowhere", async () => {
    const inv = join(dir, "inv.yaml");
    writeFileSync(inv, `defaults: {identityFile: ${key.privateKeyFile}}\nhosts:\n  inner: {address: ${inner.ip}, roles: [gpu], proxyJump: "${jump1.ip},deploy@${jump2.ip}:22"}\n`);
    const args = [...nodeWithTsx.slice(1), "cli/main.ts", "provision", "--host", "inner", "--inventory", inv, "--known-hosts", join(dir, "known_cli"), "--only", "base", "--json"];
    const without = await execa(nodeWithTsx[0], args, { cwd: repoRoot, reject: false, env: { CI: "1" } });
    expect(without.exitCode).toBe(1);
    expect((JSON.parse(without.stdout) as ProvisionReport).hosts[0]!.steps[0]!.reason).toContain("sudo asks deploy for a password: run again with --ask-sudo-pass");

    const run = execa(nodeWithTsx[0], [...args, "--ask-sudo-pass"], { cwd: repoRoot, reject: false, env: { CI: "1" }, input: `${password}\n` });
    // While it runs: no process here or on the host carries the password in its command line.
    const seen: string[] = [];
    let finished = false;
    void run.finally(() => (finished = true));
    const watch = (async () => {
      while (!finished) {
        const [here, there] = await Promise.all([execa("ps", ["-eo", "args"], { reject: false }), inner.exec("ps -eo args")]);
        seen.push(String(here.stdout), there.stdout);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const res = await run;
    await watch;
    expect(res.exitCode, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout) as ProvisionReport;
    expect(report.hosts[0]!.steps[0]).toMatchObject({ id: "base", status: "changed" });
    expect(await inner.sh("jq --version")).toMatch(/^jq-/);
    expect(seen.length).toBeGreaterThan(3);
    const logs = await inner.sh("journalctl --no-pager -o cat; cat /var/log/auth.log 2>/dev/null || true");
    expect(logs).toContain("sudo");
    for (const [where, text] of [["stdout", res.stdout], ["stderr", res.stderr], ["process lists", seen.join("\n")], ["host's logs", logs]] as const) {
      expect(text.includes(password), `the password appears in ${where}`).toBe(false);
    }
  }, 300_000);
});
