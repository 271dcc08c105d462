// The serialised step provider (serialised-provider.ts: plain `node`, another folder, one process
// per call) reaching hosts as `labrig provision` does: a host whose SSH port answers only its jump
// host converges through the inventory's proxyJump, and a host whose sudo asks for a password
// converges with the stack's labrig:sudoPassword secret, which Pulumi hands the provider's
// configure, and which appears in no call's output. Real systemd + sshd test hosts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory } from "../../provision/inventory.js";
import { type StepInputs, stepInputs, sudoPasswordConfigKey } from "../../stacks/graph.js";
import type { StepOutputs } from "../../stacks/step-runtime.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { type ProviderCall, type SerialisedProvider, serialisedProvider } from "./serialised-provider.js";

const sudoPassword = "stk-Sud0-pass-7f3";
let dir: string;
let net: TestNetwork;
let jump: TestHost;
let behind: TestHost;
let asks: TestHost;
let provider: SerialisedProvider;
const calls: ProviderCall[] = [];

type Checked = { inputs: StepInputs; failures: unknown[] };

function inputsFor(name: "stk-behind" | "stk-asks", step: string, opts: { withoutJump?: boolean } = {}): StepInputs {
  const file = join(dir, "inventory.yaml");
  writeFileSync(
    file,
    `lab: {name: stk-reach, dispatcher: {url: "http://10.0.0.1:8000"}}
defaults: {identityFile: ${join(dir, "id_ed25519")}, gpu: none}
hosts:
  stk-behind: {address: ${behind.ip}, roles: [gpu]${opts.withoutJump ? "" : `, proxyJump: ${jump.ip}`}}
  stk-asks: {address: ${asks.ip}, roles: [gpu]}
`,
  );
  const inventory = loadInventory(file);
  return stepInputs(inventory, inventory.hosts.find((h) => h.name === name)!, step, { knownHostsFile: join(dir, "known_hosts") });
}

/** A call as Pulumi's provider process makes it, the stack's config handed to configure; kept for the leak check. */
async function run(method: "check" | "diff" | "create", args: unknown[], config: Record<string, string> = {}): Promise<ProviderCall> {
  const res = await provider.run(method, args, { config, env: { LABRIG_HOME: join(dir, "labrig-home") } });
  calls.push(res);
  return res;
}

async function ok<T>(method: "check" | "diff" | "create", args: unknown[], config: Record<string, string> = {}): Promise<T> {
  const res = await run(method, args, config);
  if (res.exitCode !== 0) throw new Error(`provider ${method} failed (exit ${res.exitCode}):\n${res.stderr}`);
  return JSON.parse(res.stdout) as T;
}

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-stack-reach-"));
  net = await createTestNetwork("stkr");
  const key = createSshKey(dir);
  [jump, behind, asks, provider] = await Promise.all([
    startTestHost({ name: "stk-jump", network: net, publicKey: key.publicKey }),
    startTestHost({ name: "stk-behind", network: net, publicKey: key.publicKey }),
    startTestHost({ name: "stk-asks", network: net, publicKey: key.publicKey, sudo: "password", sudoPassword }),
    serialisedProvider(dir),
  ]);
  await behind.closeSshExceptFrom([jump.ip]);
}, 600_000);

afterAll(async () => {
  await Promise.all([jump?.stop(), behind?.stop(), asks?.stop()]);
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the serialised step provider reaching hosts as labrig provision does", { timeout: 900_000 }, () => {
  it("converges a host reached only through its jump host", async () => {
    // Without the jump host the host cannot be reached at all: the jump is what gets the provider there.
    const direct = await run("check", [{}, inputsFor("stk-behind", "base", { withoutJump: true })]);
    expect(direct.exitCode).not.toBe(0);
    expect(direct.stderr).toContain(`cannot connect to stk-behind (deploy@${behind.ip}:22)`);

    const checked = await ok<Checked>("check", [{}, inputsFor("stk-behind", "base")]);
    expect(checked.failures).toEqual([]);
    expect(checked.inputs.plan!.join("\n")).toContain("jq");
    const created = await ok<{ id: string; outs: StepOutputs }>("create", [checked.inputs]);
    expect(created.id).toBe("stk-behind/base");
    expect(created.outs.found.os).toBe((await behind.sh(`. /etc/os-release && printf '%s' "$PRETTY_NAME"`)).trim());
    expect((await behind.exec("command -v jq")).exitCode).toBe(0);
    // Both hops' keys were pinned, the jump host's under its own label.
    const known = readFileSync(join(dir, "known_hosts"), "utf8");
    expect(known).toContain(jump.ip);
    expect(known).toContain(behind.ip);

    const again = await ok<Checked>("check", [created.outs, inputsFor("stk-behind", "base")]);
    expect(again.inputs.plan).toEqual([]);
    expect(await ok("diff", ["stk-behind/base", created.outs, again.inputs])).toEqual({ changes: false, replaces: [] });
  });

  it("says what to set when sudo asks for a password the stack does not have, and changes nothing", async () => {
    const checked = await ok<Checked>("check", [{}, inputsFor("stk-asks", "base")]).catch((err: Error) => err);
    // Reading facts needs no root for every step; applying does. Either way the message names the way out.
    const failed = checked instanceof Error ? checked.message : (await run("create", [checked.inputs])).stderr;
    expect(failed).toContain("sudo asks deploy for a password: run again with --ask-sudo-pass");
    expect(failed).toContain("pulumi config set --secret labrig:sudoPassword");
    expect((await asks.exec("command -v jq")).exitCode).not.toBe(0);
  });

  it("converges a host whose sudo asks for a password with the stack's sudoPassword secret, which is in no output", async () => {
    const config = { [sudoPasswordConfigKey]: sudoPassword };
    const checked = await ok<Checked>("check", [{}, inputsFor("stk-asks", "base")], config);
    expect(checked.failures).toEqual([]);
    const created = await ok<{ id: string; outs: StepOutputs }>("create", [checked.inputs], config);
    expect(created.outs.plan).toEqual([]);
    expect(created.outs.applied.join("\n")).toContain("jq");
    expect((await asks.exec("command -v jq")).exitCode).toBe(0);
    const again = await ok<Checked>("check", [created.outs, inputsFor("stk-asks", "base")], config);
    expect(await ok("diff", ["stk-asks/base", created.outs, again.inputs])).toEqual({ changes: false, replaces: [] });
    // Not in any call's result (what Pulumi would keep in state) nor in anything the provider printed.
    expect(calls.length).toBeGreaterThan(5);
    for (const c of calls) {
      expect(c.stdout).not.toContain(sudoPassword);
      expect(c.stderr).not.toContain(sudoPassword);
    }
  });
});
