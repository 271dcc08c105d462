// `pnpm preview` / `pnpm run up` / `pnpm destroy` as the processes a user runs. Without a Pulumi
// CLI on PATH they exit 2 with one message; with one, `pnpm preview` runs for real against a test
// host (skipped here when no `pulumi` is on PATH, and the skip says so).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPulumiCli } from "../../stacks/pulumi-cli.js";
import { repoRoot } from "../helpers/dispatcher-process.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";

let home: string;
beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "labrig-stack-cmd-"));
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

/** A PATH with node and pnpm but certainly no pulumi. */
function pathWithoutPulumi(): string {
  return [...new Set([dirname(process.execPath), "/usr/bin", "/bin"])].filter((d) => !findPulumiCli({ PATH: d })).join(":");
}

describe("the stack commands without the Pulumi CLI", { timeout: 120_000 }, () => {
  // --ask-sudo-pass: the missing CLI is told before any password is asked (stdin is empty here, so asking would fail otherwise).
  for (const [script, args] of [["preview", []], ["up", []], ["up", ["--ask-sudo-pass"]], ["destroy", ["--yes"]]] as const) {
    it(`pnpm run ${script} ${args.join(" ")} exits 2 saying what is needed, how to install it, and that pnpm provision does the same`.replace("  ", " "), async () => {
      const res = await execa("pnpm", ["--silent", "run", script, ...args], { cwd: repoRoot, reject: false, env: { PATH: pathWithoutPulumi(), LABRIG_HOME: home, HOME: home } });
      expect(res.exitCode).toBe(2);
      expect(res.stdout).toBe("");
      const lines = res.stderr.trim().split("\n");
      expect(lines, res.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/needs the Pulumi CLI \(`pulumi`\), and there is none on PATH/);
      expect(lines[0]).toContain("https://www.pulumi.com/docs/install/");
      expect(lines[0]).toContain("`pnpm provision --host all` runs the same steps");
    });
  }
});

const pulumi = findPulumiCli();

describe.skipIf(!pulumi)("pnpm preview with a real Pulumi CLI (skipped: no `pulumi` on PATH here)", { timeout: 600_000 }, () => {
  let net: TestNetwork;
  let host: TestHost;
  let dir: string;

  beforeAll(async () => {
    await requireDocker();
    dir = mkdtempSync(join(tmpdir(), "labrig-stack-preview-"));
    net = await createTestNetwork("stkp");
    const key = createSshKey(dir);
    host = await startTestHost({ name: "stk-p", network: net, publicKey: key.publicKey });
    writeFileSync(join(dir, "join-token"), "preview-join-token\n");
    writeFileSync(
      join(dir, "inventory.yaml"),
      `lab: {name: preview, dispatcher: {url: "http://${net.gateway}:8000", joinTokenFile: ${join(dir, "join-token")}}}
hosts:
  stk-p: {address: ${host.ip}, roles: [gpu], gpu: none, identityFile: ${join(dir, "id_ed25519")}, firewall: {allowFrom: [${net.subnet}]}}
`,
    );
  }, 600_000);

  afterAll(async () => {
    await host?.stop();
    await net?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lists each step's planned changes for a bare host and changes nothing", async () => {
    const res = await execa("pnpm", ["--silent", "run", "preview", "--inventory", join(dir, "inventory.yaml"), "--known-hosts", join(dir, "known_hosts")], {
      cwd: repoRoot,
      reject: false,
      env: { LABRIG_HOME: join(dir, "labrig-home"), PULUMI_CONFIG_PASSPHRASE: "test-passphrase" },
    });
    expect(res.exitCode, `${res.stdout}\n${res.stderr}`).toBe(0);
    for (const step of ["base", "docker", "agent", "firewall"]) expect(res.stdout).toContain(`stk-p/${step}`);
    expect(res.stdout).toContain("ufw allow 22/tcp (SSH, before enabling)");
    expect(res.stdout).not.toContain("preview-join-token");
    expect((await host.exec("command -v ufw")).exitCode).not.toBe(0);
  });
});
