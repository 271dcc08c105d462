// The step resources' dynamic provider as Pulumi runs it: serialised, and loaded by plain `node`
// from another folder, one fresh process per call (serialised-provider.ts). Its
// check/diff/create/update/delete then run against a real systemd + sshd test host over SSH; what
// they did is checked inside the host by `docker exec`. This proves the serialised closure carries
// no live connection or native handle. The agent joins a real dispatcher (a process on this
// machine) as it would join the one the dispatcher-container resource brought up: with that
// resource's outputs (URL, join token) as inputs, and the admin token it saved in LABRIG_HOME.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory } from "../../provision/inventory.js";
import { savedDispatcherDir } from "../../provision/saved-dispatcher.js";
import { type StepInputs, stepInputs } from "../../stacks/graph.js";
import { type DispatcherOutputs, readDispatcherOutputs, type StepOutputs } from "../../stacks/step-runtime.js";
import { startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { agentBundle } from "../provision/helpers.js";
import { type ProviderMethod, type SerialisedProvider, serialisedProvider } from "./serialised-provider.js";

const hostName = "stk-a";
const resticPassword = "correct horse battery staple";
let dir: string;
let home: string;
let net: TestNetwork;
let host: TestHost;
let dispatcher: DispatcherProcess;
let dispatcherOutputs: DispatcherOutputs;
let bundle: string;
let provider: SerialisedProvider;

/** One provider call in a fresh `node` process, from a folder outside the project, with this test's LABRIG_HOME. */
function call<T>(method: ProviderMethod, ...args: unknown[]): Promise<T> {
  return provider.call<T>(method, args, { env: { LABRIG_HOME: home } });
}

function writeInventory(allowFrom: string[]): string {
  const file = join(dir, "inventory.yaml");
  writeFileSync(
    file,
    `lab: {name: stk}
defaults:
  identityFile: ${join(dir, "id_ed25519")}
  firewall: {allowFrom: [${allowFrom.join(", ")}]}
  backup: {repository: /var/backups/labrig-restic, passwordFile: /nonexistent/not-read-by-the-stack, schedule: "*-*-* 04:30:00"}
hosts:
  ${hostName}: {address: ${host.ip}, roles: [gpu], gpu: none}
`,
  );
  return file;
}

function inputsFor(step: string, allowFrom: string[]): StepInputs {
  const inventory = loadInventory(writeInventory(allowFrom));
  const inputs = stepInputs(inventory, inventory.hosts[0]!, step, { knownHostsFile: join(dir, "known_hosts"), agentBundle: bundle });
  if (step === "backup-timer") return { ...inputs, resticPassword };
  // What program.ts passes an agent: the dispatcher-container resource's outputs.
  if (step === "agent") return { ...inputs, ...dispatcherOutputs };
  return inputs;
}

/** The dispatcher's join tokens, as its admin lists them. */
async function joinTokensMade(): Promise<{ id: string; uses: number; note?: string }[]> {
  return (await dispatcher.admin().request<{ joinTokens: { id: string; uses: number; note?: string }[] }>("GET", "/api/join-tokens")).body.joinTokens;
}

type Checked = { inputs: StepInputs; failures: unknown[] };

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-stack-host-"));
  home = join(dir, "labrig-home");
  net = await createTestNetwork("stk");
  const key = createSshKey(dir);
  await Promise.all([
    startTestHost({ name: hostName, network: net, publicKey: key.publicKey }).then((h) => (host = h)),
    serialisedProvider(dir).then((p) => (provider = p)),
    agentBundle().then((b) => (bundle = b)),
  ]);
  // Started after the builds above: on a busy machine its 30 s start window is then its own.
  // 0.0.0.0 so the agent inside the test host reaches it at the network's gateway address.
  dispatcher = await startDispatcher({ args: ["--bind", "0.0.0.0"] });
  // What the dispatcher-container step saves on this machine once its container is up (saveTokens).
  const saved = savedDispatcherDir("stk", { LABRIG_HOME: home });
  mkdirSync(saved, { recursive: true });
  writeFileSync(join(saved, "admin-token"), `${dispatcher.adminToken}\n`, { mode: 0o600 });
  writeFileSync(join(saved, "join-token"), `${dispatcher.joinToken}\n`, { mode: 0o600 });
  const url = `http://${net.gateway}:${dispatcher.port}`;
  writeFileSync(join(saved, "dispatcher.json"), JSON.stringify({ host: "nas", url, adminTokenFile: join(saved, "admin-token"), joinTokenFile: join(saved, "join-token") }));
  dispatcherOutputs = readDispatcherOutputs("stk", { LABRIG_HOME: home })!;
}, 600_000);

afterAll(async () => {
  await host?.stop();
  await dispatcher?.stop();
  dispatcher?.cleanup();
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the serialised step provider against a real host", { timeout: 900_000 }, () => {
  const steps = ["base", "agent", "firewall", "backup-timer"] as const;
  const outs = new Map<string, StepOutputs>();

  it("reads the dispatcher container's outputs (URL, join token) from what its step saved in LABRIG_HOME", () => {
    expect(dispatcherOutputs).toEqual({ dispatcherUrl: `http://${net.gateway}:${dispatcher.port}`, joinToken: dispatcher.joinToken });
    expect(readDispatcherOutputs("another-lab", { LABRIG_HOME: home })).toBeUndefined();
  });

  it("plans on the bare host without changing it, then converges it with create", async () => {
    for (const step of steps) {
      const checked = await call<Checked>("check", {}, inputsFor(step, [net.subnet]));
      expect(checked.failures, step).toEqual([]);
      expect(checked.inputs.plan!.length, step).toBeGreaterThan(0);
      if (step === "agent") {
        // Planning makes no join token; it says one will be made for this host.
        expect(checked.inputs.plan!.find((l) => l.includes("agent.env"))).toContain("a single-use join token made for it: not registered yet");
        expect(await joinTokensMade()).toEqual([]);
      }
      if (step === "firewall") {
        expect(checked.inputs.plan).toContain("ufw allow 22/tcp (SSH, before enabling)");
        // check touched nothing: ufw is not even installed yet.
        expect((await host.exec("command -v ufw")).exitCode).not.toBe(0);
      }
      const created = await call<{ id: string; outs: StepOutputs }>("create", checked.inputs);
      expect(created.id).toBe(`${hostName}/${step}`);
      expect(created.outs.plan).toEqual([]);
      expect(created.outs.applied.length, step).toBeGreaterThan(0);
      outs.set(step, created.outs);
    }
    expect(outs.get("base")!.found.os).toBe((await host.sh(`. /etc/os-release && printf '%s' "$PRETTY_NAME"`)).trim());
    expect(outs.get("backup-timer")!.leavesOnDelete).toContain("/var/backups/labrig-restic");
    // Inside the host, not trusting the provider's word.
    expect(await host.sh("ufw status | head -1")).toContain("Status: active");
    expect(await host.sh("ufw show added")).toContain(`ufw allow from ${net.subnet} to any port 8020 proto tcp comment 'labrig'`);
    expect((await host.sh("systemctl is-enabled labrig-backup.timer")).trim()).toBe("enabled");
    expect((await host.sh("cat /etc/labrig/restic-password")).trim()).toBe(resticPassword);
    expect((await host.sh("stat -c %a /etc/labrig/restic-password")).trim()).toBe("600");
    expect((await host.sh("systemctl is-active labrig-agent.service")).trim()).toBe("active");
    // The agent joined with a single-use token made for it, not the lab's shared one, and that token is in no output.
    const env = await host.sh("cat /etc/labrig/agent.env");
    expect(env).toContain(`LABRIG_URL=${dispatcherOutputs.dispatcherUrl}`);
    expect(env).not.toContain(dispatcher.joinToken);
    const minted = /^LABRIG_JOIN_TOKEN=(.+)$/m.exec(env)![1]!;
    expect(JSON.stringify(outs.get("agent"))).not.toContain(minted);
    const made = await joinTokensMade();
    expect(made).toHaveLength(1);
    expect(made[0]!.note).toBe(`labrig provision: ${hostName}`);
    await expect.poll(async () => (await dispatcher.admin().devices()).map((d) => d.hostId), { timeout: 60_000, interval: 1000 }).toContain(hostName);
    // The temporary secret files lived only for the length of each call.
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith("labrig-stack-secrets-"))).toEqual([]);
  });

  it("a second check plans nothing and diff reports no changes", async () => {
    for (const step of steps) {
      const checked = await call<Checked>("check", outs.get(step)!, inputsFor(step, [net.subnet]));
      expect(checked.inputs.plan, step).toEqual([]);
      expect(await call("diff", `${hostName}/${step}`, outs.get(step)!, checked.inputs), step).toEqual({ changes: false, replaces: [] });
    }
    // The registered agent keeps the token its env file holds: no second token was made.
    expect(await joinTokensMade()).toHaveLength(1);
  });

  it("plans an agent whose dispatcher container is not up yet (a bare lab's preview) with its URL and token unknown, making no token", async () => {
    // Pulumi's own unknown value, as its provider process passes an input not known yet.
    const pending = { ...inputsFor("agent", [net.subnet]), dispatcherUrl: pulumi.runtime.unknownValue, joinToken: pulumi.runtime.unknownValue };
    const checked = await call<Checked>("check", outs.get("agent")!, pending);
    expect(checked.failures).toEqual([]);
    expect(checked.inputs.plan!.find((l) => l.includes("agent.env"))).toContain("a single-use join token from the dispatcher container this run brings up");
    expect(await joinTokensMade()).toHaveLength(1);
    expect(await host.sh("cat /etc/labrig/agent.env")).toContain(`LABRIG_URL=${dispatcherOutputs.dispatcherUrl}`);
  });

  it("an inventory change shows as an update that lists the changes, and update applies them", async () => {
    const wider = [net.subnet, "10.99.0.0/16"];
    const checked = await call<Checked>("check", outs.get("firewall")!, inputsFor("firewall", wider));
    expect(checked.inputs.plan).toEqual(["ufw allow from 10.99.0.0/16 to any port 8020 proto tcp (from firewall.allowFrom)"]);
    expect(await call("diff", `${hostName}/firewall`, outs.get("firewall")!, checked.inputs)).toEqual({ changes: true, replaces: [] });
    const updated = await call<{ outs: StepOutputs }>("update", `${hostName}/firewall`, outs.get("firewall")!, checked.inputs);
    expect(updated.outs.plan).toEqual([]);
    expect(updated.outs.applied).toEqual(checked.inputs.plan);
    expect(await host.sh("ufw show added")).toContain("ufw allow from 10.99.0.0/16 to any port 8020 proto tcp comment 'labrig'");
    outs.set("firewall", updated.outs);
    const again = await call<Checked>("check", updated.outs, inputsFor("firewall", wider));
    expect(await call("diff", `${hostName}/firewall`, updated.outs, again.inputs)).toEqual({ changes: false, replaces: [] });
  });

  it("delete removes what it promised and leaves what it said it leaves", async () => {
    await host.sh("ufw allow 9999/tcp comment admin-rule");
    await call("delete", `${hostName}/firewall`, outs.get("firewall")!);
    const added = await host.sh("ufw show added");
    expect(added).not.toContain("port 8020");
    // SSH stays open and the admin's own rule is kept; ufw stays enabled.
    expect(added).toContain("ufw allow 22/tcp comment 'labrig'");
    expect(added).toContain("ufw allow 9999/tcp comment 'admin-rule'");
    expect(await host.sh("ufw status | head -1")).toContain("Status: active");

    await call("delete", `${hostName}/backup-timer`, outs.get("backup-timer")!);
    expect((await host.exec("systemctl is-enabled labrig-backup.timer")).exitCode).not.toBe(0);
    expect(await host.sh("ls /etc/systemd/system /etc/labrig")).not.toMatch(/labrig-backup|restic-password|backup\.env/);
    expect((await host.exec("command -v restic && test -f /var/backups/labrig-restic/config")).exitCode).toBe(0);

    await call("delete", `${hostName}/agent`, outs.get("agent")!);
    expect((await host.exec("systemctl is-enabled labrig-agent.service")).exitCode).not.toBe(0);
    expect((await host.exec("systemctl is-active labrig-agent.service")).exitCode).not.toBe(0);
    expect(await host.sh("ls -d /etc/labrig/agent.env /etc/systemd/system/labrig-agent.service /opt/labrig/agent/labrig-agent.mjs /opt/labrig/node/bin/node 2>/dev/null; true"), "every one of them removed").toBe("");
    expect((await host.exec("id -u labrig-agent && test -d /var/lib/labrig/agent")).exitCode).toBe(0);

    await call("delete", `${hostName}/base`, outs.get("base")!);
    expect((await host.exec("command -v jq")).exitCode).toBe(0);
  });
});
