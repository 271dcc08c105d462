// The Pulumi program under pulumi.runtime.setMocks (the engine cannot run here): the exact
// resources it declares for the worked example inventory and for a one-host inventory, the
// dependencies it sends the engine (every agent after the dispatcher container whose URL and join
// token it takes), the stack outputs, and the secrets sent as secrets. Mocked: the Pulumi engine
// only; the program, its config and the provider's serialisation are real.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory } from "../../provision/inventory.js";
import { allSteps } from "../../provision/steps/index.js";
import { hostUrns } from "../../stacks/command.js";
import { planLab, renderGraph, stepInputs } from "../../stacks/graph.js";
import labProgram from "../../stacks/index.js";
import { parseInventory } from "../../provision/inventory.js";
import type { HostFacts } from "../../stacks/program.js";

const repoRoot = resolve(import.meta.dirname, "../..");
const exampleInventory = join(repoRoot, "inventory.yaml");
const secretSig = "4dabf18193072939515e22adb298388d";

interface Registered {
  type: string;
  name: string;
  parent: string;
  dependencies: string[];
  /** Per input property, the resources its value came from. */
  propertyDependencies: Record<string, string[]>;
  object: Record<string, unknown>;
  additionalSecretOutputs: string[];
}

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "labrig-stack-prog-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const dispatcherJoinToken = "lrj-from-the-dispatcher-789";
/** Unlike the inventory's lab.dispatcher.url, so a test tells where a URL came from. */
const dispatcherOutputUrl = "http://nas-as-its-container-says:8000";
const found: Record<string, Record<string, unknown>> = {
  base: { os: "Debian GNU/Linux 12 (bookworm)" },
  docker: { docker: "20.10.24+dfsg1" },
  "nvidia-toolkit": { driver: "550.54.15", gpus: ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"] },
};

/** Runs stacks/index.ts under mocks with this config and returns what reached the engine and the stack outputs. */
async function runProgram(config: Record<string, string>, secretKeys: string[]) {
  const registered: Registered[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const step = args.name.split("/")[1] ?? "";
        // What the provider outputs for a dispatcher container after create: the URL and the token it read back.
        const dispatcher = step === "dispatcher-container" ? { dispatcherUrl: dispatcherOutputUrl, joinToken: dispatcherJoinToken } : {};
        return { id: args.custom ? `${args.name}-id` : undefined, state: args.custom ? { ...args.inputs, plan: [], found: found[step] ?? {}, ...dispatcher } : {} };
      },
      call: () => ({}),
    },
    "labrig",
    "test",
    false,
  );
  // Read what the program sends the engine (parents, dependencies, secrets) from the monitor's requests.
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource: (req: RegisterRequest, cb: unknown) => Promise<void> };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    registered.push({
      type: req.getType(),
      name: req.getName(),
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      propertyDependencies: Object.fromEntries([...req.getPropertydependenciesMap().entries()].map(([k, v]) => [k, v.getUrnsList()])),
      object: req.getObject().toJavaScript(),
      additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
    });
    return original(req, cb);
  };
  pulumi.runtime.setAllConfig(config, secretKeys);
  const outputs = await labProgram();
  const hosts: Record<string, HostFacts> = {};
  for (const [name, out] of Object.entries(outputs.hosts)) hosts[name] = await valueOf(out);
  const dispatcherUrl = pulumi.Output.isInstance(outputs.dispatcherUrl) ? await valueOf(outputs.dispatcherUrl) : await outputs.dispatcherUrl;
  return { registered, outputs: { dispatcherUrl, hosts } };
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): { entries(): Iterable<[string, { getUrnsList(): string[] }]> };
  getObject(): { toJavaScript(): Record<string, unknown> };
  getAdditionalsecretoutputsList(): string[];
}

function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

const stepType = "pulumi-nodejs:dynamic/host:Step";
const urn = (host: string, step?: string) =>
  step ? `urn:pulumi:test::labrig::labrig:host:Host$${stepType}::${host}/${step}` : `urn:pulumi:test::labrig::labrig:host:Host::${host}`;

function graphOf(registered: Registered[]): Record<string, string[]> {
  return Object.fromEntries(registered.filter((r) => r.type === stepType).map((r) => [r.name, r.dependencies.map((d) => d.split("::").pop()!).sort()]));
}

describe("the stack program under mocks (engine mocked)", { timeout: 120_000 }, () => {
  it("declares every host's steps for the worked example, each after the host's earlier steps and every agent after the dispatcher container", async () => {
    const { registered, outputs } = await runProgram(
      { "labrig:inventory": exampleInventory, "labrig:resticPassword": "restic-secret-456", "labrig:knownHosts": join(dir, "known_hosts") },
      ["labrig:resticPassword"],
    );
    expect(registered.filter((r) => r.type === "labrig:host:Host").map((r) => r.name)).toEqual(["nas", "gpu-a100", "gpu-3090"]);
    const gpuSteps = ["base", "docker", "nvidia-toolkit", "agent", "firewall", "gpu-firewall", "backup-timer"];
    const nasSteps = ["base", "docker", "firewall", "dispatcher-container", "dispatcher-firewall", "backup-timer"];
    const expected: Record<string, string[]> = {};
    for (const [host, steps] of [["nas", nasSteps], ["gpu-a100", gpuSteps], ["gpu-3090", gpuSteps]] as const) {
      steps.forEach((s, i) => (expected[`${host}/${s}`] = steps.slice(0, i).map((e) => `${host}/${e}`).sort()));
    }
    // A bare lab comes up in one run: each agent waits for the dispatcher container it joins.
    for (const host of ["gpu-a100", "gpu-3090"]) expected[`${host}/agent`] = [...expected[`${host}/agent`]!, "nas/dispatcher-container"].sort();
    expect(graphOf(registered)).toEqual(expected);
    const agent = registered.find((r) => r.name === "gpu-a100/agent")!;
    expect(agent.propertyDependencies.dispatcherUrl).toEqual([urn("nas", "dispatcher-container")]);
    expect(agent.propertyDependencies.joinToken).toEqual([urn("nas", "dispatcher-container")]);
    expect(agent.object.dispatcherUrl).toBe(dispatcherOutputUrl);
    for (const r of registered.filter((x) => x.type === stepType)) {
      expect(r.parent, r.name).toBe(urn(r.name.split("/")[0]!));
      expect(r.additionalSecretOutputs).toEqual(["joinToken", "resticPassword"]);
    }
    // --host targets exactly one host's component and steps, by the URNs the engine gives them.
    const seen = new Set(registered.flatMap((r) => [r.parent, ...r.dependencies]));
    const a100 = hostUrns("test", planLab(loadInventory(exampleInventory), allSteps), "gpu-a100");
    expect(a100).toHaveLength(8);
    expect(a100[0]).toBe(urn("gpu-a100"));
    // Every one but the host's last step is some resource's parent or dependency.
    expect(seen).toContain(urn("nas", "dispatcher-container"));
    for (const u of a100.slice(0, -1)) expect(seen, u).toContain(u);
    expect(a100.at(-1)).toBe(urn("gpu-a100", "backup-timer"));
    // The dispatcher's URL (as its container resource outputs it) and, per host, what the steps found.
    expect(outputs.dispatcherUrl).toBe(dispatcherOutputUrl);
    expect(outputs.hosts["gpu-a100"]).toEqual({ os: "Debian GNU/Linux 12 (bookworm)", docker: "20.10.24+dfsg1", driver: "550.54.15", gpus: ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"] });
    expect(outputs.hosts.nas).toEqual({ os: "Debian GNU/Linux 12 (bookworm)", docker: "20.10.24+dfsg1", driver: null, gpus: [] });
    expect(Object.keys(outputs.hosts)).toEqual(["nas", "gpu-a100", "gpu-3090"]);
  });

  it("sends the dispatcher's join token only to the agents and the restic password only to the backups, only as secrets, and the sudo password to none", async () => {
    const sudoPassword = "sudo-secret-000";
    const { registered } = await runProgram(
      { "labrig:inventory": exampleInventory, "labrig:resticPassword": "restic-secret-456", "labrig:sudoPassword": sudoPassword },
      ["labrig:resticPassword", "labrig:sudoPassword"],
    );
    const steps = registered.filter((r) => r.type === stepType);
    const wrapped = (value: string) => ({ [secretSig]: "1b47061264138c4ac30d75fd1eb44270", value });
    for (const r of steps) {
      const step = r.name.split("/")[1];
      const text = JSON.stringify(r.object);
      // Each secret travels wrapped in Pulumi's secret signature, never as a bare string.
      expect(text.replace(/\{"4dabf18193072939515e22adb298388d":"1b47061264138c4ac30d75fd1eb44270","value":"[^"]*"\}/g, "SECRET"), r.name).not.toMatch(new RegExp(`${dispatcherJoinToken}|restic-secret-456`));
      // The provider reads the sudo password from the stack's config; no resource carries it.
      expect(text, r.name).not.toContain(sudoPassword);
      if (step === "agent") expect(r.object.joinToken).toEqual(wrapped(dispatcherJoinToken));
      else expect(r.object.joinToken, r.name).toBeUndefined();
      if (step === "backup-timer") expect(r.object.resticPassword).toEqual(wrapped("restic-secret-456"));
      else expect(r.object.resticPassword, r.name).toBeUndefined();
      // The token is an output of the dispatcher container, and every step resource marks it secret in its state.
      expect(r.additionalSecretOutputs, r.name).toEqual(["joinToken", "resticPassword"]);
    }
    // The password file's path on this machine is not an input: the secret replaces it.
    const backup = steps.find((r) => r.name === "gpu-a100/backup-timer")!.object.host as { backup: { passwordFile: string } };
    expect(backup.backup.passwordFile).toBe("(the stack's resticPassword secret)");
  });

  it("declares a one-host inventory's steps from what the inventory rules in or out", async () => {
    const file = join(dir, "one-host.yaml");
    writeFileSync(
      file,
      `lab: {name: solo, dispatcher: {url: "http://10.0.0.5:8000"}}
hosts:
  box: {address: 10.0.0.9, roles: [gpu], gpu: none, firewall: {allowFrom: [10.0.0.0/24]}}
`,
    );
    const { registered, outputs } = await runProgram({ "labrig:inventory": file, "labrig:joinToken": "tok" }, ["labrig:joinToken"]);
    // gpu: none and no backup settings: no nvidia-toolkit or backup-timer resource, and no restic secret asked for.
    expect(graphOf(registered)).toEqual({
      "box/base": [],
      "box/docker": ["box/base"],
      "box/agent": ["box/base", "box/docker"],
      "box/firewall": ["box/agent", "box/base", "box/docker"],
      "box/gpu-firewall": ["box/agent", "box/base", "box/docker", "box/firewall"],
    });
    const agent = registered.find((r) => r.name === "box/agent")!.object as { host: { address: string }; lab: unknown; step: string; dispatcherUrl: string; joinToken: unknown };
    expect(agent.step).toBe("agent");
    expect(agent.host.address).toBe("10.0.0.9");
    expect(agent.lab).toEqual({ name: "solo", dispatcher: { url: "http://10.0.0.5:8000" } });
    // No dispatcher host in the inventory: the agent joins lab.dispatcher.url with the config's join token.
    expect(agent.dispatcherUrl).toBe("http://10.0.0.5:8000");
    expect(agent.joinToken).toEqual({ [secretSig]: "1b47061264138c4ac30d75fd1eb44270", value: "tok" });
    expect(outputs).toEqual({ dispatcherUrl: "http://10.0.0.5:8000", hosts: { box: { os: "Debian GNU/Linux 12 (bookworm)", docker: "20.10.24+dfsg1", driver: null, gpus: [] } } });
  });

  it("fails with the config key to set when a needed secret is missing", async () => {
    await expect(runProgram({ "labrig:inventory": exampleInventory }, [])).rejects.toThrow(/labrig:resticPassword/);
    const file = join(dir, "external.yaml");
    writeFileSync(file, `lab: {name: ext, dispatcher: {url: "http://10.0.0.5:8000"}}\nhosts:\n  box: {address: 10.0.0.9, roles: [gpu], gpu: none}\n`);
    await expect(runProgram({ "labrig:inventory": file }, [])).rejects.toThrow(/labrig:joinToken/);
  });

  it("declares the dispatcher host first when the inventory lists it after the GPU hosts that join it", async () => {
    const file = join(dir, "dispatcher-last.yaml");
    writeFileSync(file, `lab: {name: last}\nhosts:\n  gpu: {address: 10.0.0.9, roles: [gpu], gpu: none, firewall: {enabled: false}}\n  nas: {address: 10.0.0.2, roles: [dispatcher], firewall: {enabled: false}}\n`);
    const { registered, outputs } = await runProgram({ "labrig:inventory": file }, []);
    expect(registered.filter((r) => r.type === "labrig:host:Host").map((r) => r.name)).toEqual(["nas", "gpu"]);
    expect(graphOf(registered)["gpu/agent"]).toEqual(["gpu/base", "gpu/docker", "nas/dispatcher-container"]);
    expect(outputs.dispatcherUrl).toBe(dispatcherOutputUrl);
    expect(Object.keys(outputs.hosts)).toEqual(["nas", "gpu"]);
  });

  it("puts the agent of a host that is also the dispatcher host after its own dispatcher container", () => {
    const inv = parseInventory(`lab: {name: one}\nhosts:\n  box: {address: 10.0.0.9, roles: [dispatcher, gpu], gpu: none, firewall: {enabled: false}}\n`, "one.yaml");
    expect(renderGraph(planLab(inv, allSteps)).split("\n")).toEqual([
      "box/base",
      "box/docker  <- box/base",
      "box/dispatcher-container  <- box/docker",
      "box/agent  <- box/dispatcher-container, box/dispatcher-container (URL, join token)",
    ]);
  });

  it("prints the example's resource graph as the README shows it", () => {
    const graph = renderGraph(planLab(loadInventory(exampleInventory), allSteps));
    expect(graph.split("\n")).toHaveLength(20);
    expect(graph).toContain("gpu-a100/agent  <- gpu-a100/nvidia-toolkit, nas/dispatcher-container (URL, join token)");
    expect(graph).toContain("nas/dispatcher-firewall  <- nas/dispatcher-container");
  });
});

describe("a Slurm lab's graph (pure)", () => {
  const slurmLab = (accounting: boolean) =>
    parseInventory(
      `lab: {name: sl, scheduler: slurm, slurm: {accounting: ${accounting}}}
defaults: {firewall: {allowFrom: [10.0.0.0/24]}, gpu: none}
hosts:
  gpu-a: {address: 10.0.0.21, roles: [gpu]}
  ctl: {address: 10.0.0.2, roles: [slurm-controller]}
`,
      "sl.yaml",
      {},
    );

  it("declares munge and the Slurm daemons, slurm-accounting only when asked, the node's after the controller's whatever the inventory order", () => {
    const names = (inv: ReturnType<typeof slurmLab>) => planLab(inv, allSteps).map((r) => r.name);
    expect(names(slurmLab(false))).toEqual(["gpu-a/base", "gpu-a/docker", "gpu-a/agent", "gpu-a/firewall", "gpu-a/gpu-firewall", "gpu-a/munge", "gpu-a/slurm-node", "ctl/base", "ctl/firewall", "ctl/munge", "ctl/slurm-controller"]);
    expect(names(slurmLab(true))).toContain("ctl/slurm-accounting");
    const graph = planLab(slurmLab(false), allSteps);
    expect(graph.find((r) => r.name === "gpu-a/munge")!.dependsOn).toContain("ctl/munge");
    expect(graph.find((r) => r.name === "gpu-a/slurm-node")!.dependsOn).toContain("ctl/slurm-controller");
    expect(graph.find((r) => r.name === "ctl/munge")!.dependsOn).toEqual(["ctl/base", "ctl/firewall"]);
  });

  it("declares no Slurm step in a lab labrig schedules", () => {
    const inv = loadInventory(exampleInventory);
    expect(planLab(inv, allSteps).filter((r) => ["munge", "slurm-accounting", "slurm-controller", "slurm-node"].includes(r.step))).toEqual([]);
  });

  it("hands a Slurm step the cluster's other hosts and lab.slurm, and every step of the lab the scheduler", () => {
    const inv = slurmLab(true);
    const where = { knownHostsFile: "/k" };
    const ctl = inv.hosts.find((h) => h.name === "ctl")!;
    const gpu = inv.hosts.find((h) => h.name === "gpu-a")!;
    expect(stepInputs(inv, ctl, "slurm-controller", where)).toMatchObject({ lab: { name: "sl", scheduler: "slurm", slurm: { accounting: true } }, slurmHosts: [{ name: "gpu-a", address: "10.0.0.21" }] });
    const firewall = stepInputs(inv, gpu, "firewall", where);
    expect(firewall.lab.scheduler).toBe("slurm");
    expect(firewall.slurmHosts).toBeUndefined();
    expect(stepInputs(loadInventory(exampleInventory), loadInventory(exampleInventory).hosts[0]!, "base", where).lab.scheduler).toBeUndefined();
  });
});
