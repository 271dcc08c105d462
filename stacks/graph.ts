// The lab as Pulumi sees it, as plain data: one resource per host and provisioning step, named
// `host/step`, each depending on the host's earlier steps; every agent also takes the dispatcher's
// URL and join token from the dispatcher host's `dispatcher-container` resource (its outputs), so
// one `up` brings a bare lab up in the order `labrig provision --host all` does. And the inputs
// each resource carries. Pure (no Pulumi, no host), so the graph is tested and printed without an engine.
//
//   planLab(loadInventory("inventory.yaml"))
//   // [{name: "nas/base", host: "nas", step: "base", dependsOn: []}, ...,
//   //  {name: "gpu-a100/agent", ..., dependsOn: ["gpu-a100/base", ...], dispatcherFrom: "nas/dispatcher-container"}, ...]
import type { HostConfig, Inventory } from "../provision/inventory.js";
import { slurmHosts } from "../provision/slurm-cluster.js";
import { stepAppliesTo } from "../provision/runner.js";
import type { Step } from "../provision/step.js";
import { dispatcherSettings } from "../provision/steps/dispatcher-container-settings.js";
import { slurmStepIds } from "../provision/steps/index.js";

export interface PlannedResource {
  /** `host/step`, the resource's Pulumi name. */
  name: string;
  host: string;
  step: string;
  /** Names of the same host's earlier steps. */
  dependsOn: string[];
  /** An agent's: the dispatcher-container resource whose outputs (URL, join token) it takes as inputs. */
  dispatcherFrom?: string;
}

/** What each step resource is given. Secrets are present only on the steps that use them. */
export interface StepInputs {
  step: string;
  /** The host's inventory entry, with backup.passwordFile replaced by the resticPassword secret. */
  host: HostConfig;
  lab: { name: string; dispatcher?: { host?: string; url: string }; scheduler?: "slurm"; slurm?: Inventory["lab"]["slurm"] };
  /** A Slurm step's: the cluster's other hosts (slurm.conf lists them all, from their facts). */
  slurmHosts?: HostConfig[];
  inventoryFile: string;
  knownHostsFile: string;
  agentBundle?: string;
  nodeRuntime?: string;
  /**
   * The agent's: the URL it joins, from the dispatcher-container resource's output (or
   * lab.dispatcher.url when the inventory has no dispatcher host); its join token likewise, a secret.
   */
  dispatcherUrl?: string;
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
 * The stack config secret with the login user's sudo password (hosts whose sudo asks for one).
 * No resource takes it as an input: the provider reads it from the stack's config when Pulumi
 * configures it, so it is in no resource's state.
 */
export const sudoPasswordConfigKey = "labrig:sudoPassword";

/**
 * Whether a step is declared for a host at all: its roles match, and the inventory does not rule
 * it out already (no backup settings, firewall disabled, gpu: none). Steps that can only tell on
 * the host (a missing NVIDIA driver) are declared and report `skipped`.
 */
export function stepDeclaredFor(step: Step, host: HostConfig, inventory: Pick<Inventory, "lab">): boolean {
  if (!stepAppliesTo(step, host)) return false;
  if (step.id === "backup-timer") return host.backup !== undefined;
  if (["firewall", "dispatcher-firewall", "gpu-firewall"].includes(step.id)) return host.firewall.enabled;
  if (step.id === "nvidia-toolkit") return host.gpu !== "none";
  if (slurmStepIds.includes(step.id)) return inventory.lab.scheduler === "slurm" && (step.id !== "slurm-accounting" || inventory.lab.slurm?.accounting === true);
  return true;
}

/**
 * What a Slurm host's step waits for on the controller, as `labrig provision` runs the controller
 * first: a node's munge the controller's (whose key it copies), a node's slurmd the controller's slurmctld.
 */
const onController: Record<string, string> = { munge: "munge", "slurm-node": "slurm-controller" };

/** The host whose dispatcher-container resource the agents join: lab.dispatcher.host, else the first with role dispatcher. */
export function dispatcherHostOf(inventory: Inventory, steps: Step[]): HostConfig | undefined {
  const step = steps.find((s) => s.id === "dispatcher-container");
  if (!step) return undefined;
  const named = inventory.lab.dispatcher?.host;
  const candidates = inventory.hosts.filter((h) => (named ? h.name === named : true) && stepDeclaredFor(step, h, inventory));
  return candidates[0];
}

/**
 * A host's declared steps in order. On a host that is both dispatcher and GPU host, the agent
 * comes right after the dispatcher container it joins (it takes that resource's outputs).
 */
function hostSteps(host: HostConfig, steps: Step[], isDispatcherHost: boolean, inventory: Inventory): Step[] {
  const declared = steps.filter((s) => stepDeclaredFor(s, host, inventory));
  const agent = declared.find((s) => s.id === "agent");
  const at = declared.findIndex((s) => s.id === "dispatcher-container");
  if (!isDispatcherHost || !agent || at < 0 || declared.indexOf(agent) > at) return declared;
  const rest = declared.filter((s) => s !== agent);
  rest.splice(rest.findIndex((s) => s.id === "dispatcher-container") + 1, 0, agent);
  return rest;
}

export function planLab(inventory: Inventory, steps: Step[]): PlannedResource[] {
  const dispatcherHost = dispatcherHostOf(inventory, steps);
  const dispatcherFrom = dispatcherHost && `${dispatcherHost.name}/dispatcher-container`;
  const out: PlannedResource[] = [];
  for (const host of inventory.hosts) {
    const earlier: string[] = [];
    for (const step of hostSteps(host, steps, host === dispatcherHost, inventory)) {
      const name = `${host.name}/${step.id}`;
      out.push({ name, host: host.name, step: step.id, dependsOn: [...earlier], ...(step.id === "agent" && dispatcherFrom ? { dispatcherFrom } : {}) });
      earlier.push(name);
    }
  }
  const controller = inventory.lab.scheduler === "slurm" ? inventory.hosts.find((h) => h.roles.includes("slurm-controller")) : undefined;
  const names = new Set(out.map((r) => r.name));
  for (const r of out) {
    const waitsFor = controller && r.host !== controller.name && onController[r.step] ? `${controller.name}/${onController[r.step]}` : undefined;
    if (waitsFor && names.has(waitsFor)) r.dependsOn.push(waitsFor);
  }
  return out;
}

/** A host's inventory entry as a resource input: a copy, with backup.passwordFile standing for the resticPassword secret. */
function hostAsInput(host: HostConfig): HostConfig {
  const copy = structuredClone(host);
  if (copy.backup) copy.backup.passwordFile = "(the stack's resticPassword secret)";
  return copy;
}

/** The inputs of one step resource, without secrets (the program adds those as Pulumi secrets). */
export function stepInputs(inventory: Inventory, host: HostConfig, step: string, where: { knownHostsFile: string; agentBundle?: string; nodeRuntime?: string }): StepInputs {
  const dispatcher = inventory.lab.dispatcher;
  const hostInput = hostAsInput(host);
  const inputs: StepInputs = {
    step,
    host: hostInput,
    lab: { name: inventory.lab.name, ...(dispatcher ? { dispatcher: { url: dispatcher.url, ...(dispatcher.host ? { host: dispatcher.host } : {}) } } : {}) },
    inventoryFile: inventory.file,
    knownHostsFile: where.knownHostsFile,
  };
  // A Slurm lab's hosts know it (a GPU host's firewall opens slurmd's port); its Slurm steps know the cluster.
  if (inventory.lab.scheduler === "slurm") inputs.lab.scheduler = "slurm";
  if (inventory.lab.scheduler === "slurm" && slurmStepIds.includes(step)) {
    if (inventory.lab.slurm) inputs.lab.slurm = structuredClone(inventory.lab.slurm);
    inputs.slurmHosts = slurmHosts(inventory)
      .filter((h) => h.name !== host.name)
      .map(hostAsInput);
  }
  if (step === "agent" && where.agentBundle) inputs.agentBundle = where.agentBundle;
  if (step === "agent" && where.nodeRuntime) inputs.nodeRuntime = where.nodeRuntime;
  return inputs;
}

/**
 * Which config secrets a step resource needs: an agent the join token only when no declared
 * dispatcher container hands it one (a dispatcher outside the inventory); a backup the restic password.
 */
export function secretsFor(r: Pick<PlannedResource, "step" | "dispatcherFrom">): (typeof secretInputs)[number][] {
  if (r.step === "agent") return r.dispatcherFrom ? [] : ["joinToken"];
  if (r.step === "backup-timer") return ["resticPassword"];
  return [];
}

/** The config secrets the declared steps need, in a stable order. */
export function neededSecrets(resources: PlannedResource[]): (typeof secretInputs)[number][] {
  return secretInputs.filter((s) => resources.some((r) => secretsFor(r).includes(s)));
}

/** The dispatcher's URL as agents reach it: lab.dispatcher.url, else the dispatcher host's address and port. */
export function dispatcherUrl(inventory: Inventory): string | undefined {
  if (inventory.lab.dispatcher?.url) return inventory.lab.dispatcher.url;
  const host = inventory.hosts.find((h) => h.roles.includes("dispatcher"));
  return host ? `http://${host.address}:${dispatcherSettings(host).port}` : undefined;
}

/**
 * The graph as text, one resource a line with the step just before it (it depends on every earlier
 * step of its host) and, for an agent, the dispatcher container whose URL and join token it takes.
 */
export function renderGraph(resources: PlannedResource[]): string {
  return resources
    .map((r) => {
      const from = [r.dependsOn.at(-1), r.dispatcherFrom && `${r.dispatcherFrom} (URL, join token)`].filter(Boolean);
      return `${r.name}${from.length ? `  <- ${from.join(", ")}` : ""}`;
    })
    .join("\n");
}
