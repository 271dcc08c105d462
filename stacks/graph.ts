// The lab as Pulumi sees it, as plain data: one resource per host and provisioning step, named
// `host/step`, each depending on the host's earlier steps; and the inputs each resource carries.
// Pure (no Pulumi, no host), so the graph is tested and printed without an engine.
//
//   planLab(loadInventory("inventory.yaml"))
//   // [{name: "nas/base", host: "nas", step: "base", dependsOn: []}, {name: "nas/docker", ..., dependsOn: ["nas/base"]}, ...]
import type { HostConfig, Inventory } from "../provision/inventory.js";
import { stepAppliesTo } from "../provision/runner.js";
import type { Step } from "../provision/step.js";
import { dispatcherSettings } from "../provision/steps/dispatcher-container.js";

export interface PlannedResource {
  /** `host/step`, the resource's Pulumi name. */
  name: string;
  host: string;
  step: string;
  /** Names of the same host's earlier steps. */
  dependsOn: string[];
}

/** What each step resource is given. Secrets are present only on the steps that use them. */
export interface StepInputs {
  step: string;
  /** The host's inventory entry, with backup.passwordFile replaced by the resticPassword secret. */
  host: HostConfig;
  lab: { name: string; dispatcher?: { host?: string; url: string } };
  inventoryFile: string;
  knownHostsFile: string;
  agentBundle?: string;
  joinToken?: string;
  resticPassword?: string;
  /** Filled by the provider's check: the changes the step's check plans, one line each. */
  plan?: string[];
  /** Filled by the provider's check when the step does not apply to the host now (e.g. no NVIDIA driver). */
  skipped?: string;
}

/** What the provider found on the host after applying, per step (facts the stack exports per host). */
export interface FoundFacts {
  os?: string;
  docker?: string;
  driver?: string;
  gpus?: string[];
}

export const secretInputs = ["joinToken", "resticPassword"] as const;

/**
 * Whether a step is declared for a host at all: its roles match, and the inventory does not rule
 * it out already (no backup settings, firewall disabled, gpu: none). Steps that can only tell on
 * the host (a missing NVIDIA driver) are declared and report `skipped`.
 */
export function stepDeclaredFor(step: Step, host: HostConfig): boolean {
  if (!stepAppliesTo(step, host)) return false;
  if (step.id === "backup-timer") return host.backup !== undefined;
  if (["firewall", "dispatcher-firewall", "gpu-firewall"].includes(step.id)) return host.firewall.enabled;
  if (step.id === "nvidia-toolkit") return host.gpu !== "none";
  // The stacks do not provision Slurm (yet): `labrig provision` does (docs/slurm.md).
  if (["munge", "slurm-controller", "slurm-node"].includes(step.id)) return false;
  return true;
}

export function planLab(inventory: Inventory, steps: Step[]): PlannedResource[] {
  const out: PlannedResource[] = [];
  for (const host of inventory.hosts) {
    const earlier: string[] = [];
    for (const step of steps) {
      if (!stepDeclaredFor(step, host)) continue;
      const name = `${host.name}/${step.id}`;
      out.push({ name, host: host.name, step: step.id, dependsOn: [...earlier] });
      earlier.push(name);
    }
  }
  return out;
}

/** The inputs of one step resource, without secrets (the program adds those as Pulumi secrets). */
export function stepInputs(inventory: Inventory, host: HostConfig, step: string, where: { knownHostsFile: string; agentBundle?: string }): StepInputs {
  const dispatcher = inventory.lab.dispatcher;
  const hostInput: HostConfig = structuredClone(host);
  if (hostInput.backup) hostInput.backup.passwordFile = "(the stack's resticPassword secret)";
  const inputs: StepInputs = {
    step,
    host: hostInput,
    lab: { name: inventory.lab.name, ...(dispatcher ? { dispatcher: { url: dispatcher.url, ...(dispatcher.host ? { host: dispatcher.host } : {}) } } : {}) },
    inventoryFile: inventory.file,
    knownHostsFile: where.knownHostsFile,
  };
  if (step === "agent" && where.agentBundle) inputs.agentBundle = where.agentBundle;
  return inputs;
}

/** Which secrets a step needs. */
export function secretsFor(step: string): (typeof secretInputs)[number][] {
  if (step === "agent") return ["joinToken"];
  if (step === "backup-timer") return ["resticPassword"];
  return [];
}

/** The dispatcher's URL as agents reach it: lab.dispatcher.url, else the dispatcher host's address and port. */
export function dispatcherUrl(inventory: Inventory): string | undefined {
  if (inventory.lab.dispatcher?.url) return inventory.lab.dispatcher.url;
  const host = inventory.hosts.find((h) => h.roles.includes("dispatcher"));
  return host ? `http://${host.address}:${dispatcherSettings(host).port}` : undefined;
}

/** The graph as text, one resource a line with the step just before it (it depends on every earlier step of its host). */
export function renderGraph(resources: PlannedResource[]): string {
  return resources.map((r) => `${r.name}${r.dependsOn.length ? `  <- ${r.dependsOn[r.dependsOn.length - 1]}` : ""}`).join("\n");
}
