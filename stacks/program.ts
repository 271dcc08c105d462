// The Pulumi program's body: the lab from the inventory as resources. Per host a component
// `labrig:host:Host`, and under it one step resource per provisioning step (`gpu-a100/docker`,
// type pulumi-nodejs:dynamic/host:Step, since dynamic resources live in Pulumi's own package),
// each depending on the host's earlier steps. The dispatcher host's `dispatcher-container`
// resource outputs the dispatcher's URL and its join token (a secret), and every agent takes both
// as inputs, so the agents wait for the dispatcher they join. Stack outputs: the dispatcher's URL
// and, per host, what was found there (OS, Docker, NVIDIA driver, GPUs). The restic password (and
// the join token, for a dispatcher outside the inventory) go in as Pulumi secrets, only to the
// steps that use them. The sudo password is no input at all: the provider reads it from the
// stack's config (provider.ts), so it is in no resource's state.
import * as pulumi from "@pulumi/pulumi";
import { LabrigError } from "../core/errors.js";
import type { Inventory } from "../provision/inventory.js";
import type { Step } from "../provision/step.js";
import { dispatcherHostOf, dispatcherUrl, type FoundFacts, neededSecrets, type PlannedResource, planLab, secretInputs, secretsFor, stepInputs } from "./graph.js";
import { stepProvider } from "./provider.js";

export const hostType = "labrig:host:Host";
/** Dynamic resources are `pulumi-nodejs:dynamic/<module>:<type>`; this is module host, type Step. */
export const stepModule = "host";
export const stepTypeName = "Step";

export type SecretName = (typeof secretInputs)[number];

/** How `pulumi config set --secret` names each secret (the project is labrig). */
export const secretConfigKeys: Record<SecretName, string> = { joinToken: "labrig:joinToken", resticPassword: "labrig:resticPassword" };

export class HostStep extends pulumi.dynamic.Resource {
  declare readonly plan: pulumi.Output<string[]>;
  declare readonly skipped: pulumi.Output<string | undefined>;
  declare readonly applied: pulumi.Output<string[]>;
  declare readonly found: pulumi.Output<FoundFacts>;
  declare readonly leavesOnDelete: pulumi.Output<string>;
  /** A dispatcher-container's output (an agent's input): the URL agents join. */
  declare readonly dispatcherUrl: pulumi.Output<string | undefined>;
  /** A dispatcher-container's output (an agent's input): the join token, always secret. */
  declare readonly joinToken: pulumi.Output<string | undefined>;
  declare readonly resticPassword: pulumi.Output<string | undefined>;

  constructor(name: string, provider: pulumi.dynamic.ResourceProvider, inputs: Record<string, pulumi.Input<unknown>>, opts: pulumi.CustomResourceOptions) {
    // Keys set to undefined become outputs the provider fills in.
    const props = { plan: undefined, skipped: undefined, applied: undefined, found: undefined, leavesOnDelete: undefined, dispatcherUrl: undefined, joinToken: undefined, resticPassword: undefined, ...inputs };
    super(provider, name, props, { ...opts, additionalSecretOutputs: [...secretInputs] }, stepModule, stepTypeName);
  }
}

/** One host: the parent of its step resources, with what was found there as its output. */
export class LabHost extends pulumi.ComponentResource {
  constructor(name: string) {
    super(hostType, name, {}, {});
  }

  finish(facts: pulumi.Output<HostFacts>): void {
    this.registerOutputs({ facts });
  }
}

export interface HostFacts {
  os: string | null;
  docker: string | null;
  driver: string | null;
  gpus: string[];
}

export interface LabProgramOptions {
  inventory: Inventory;
  steps: Step[];
  /** file: URL of the bundled step runtime (bundle.ts). */
  runtimeUrl: string;
  knownHostsFile: string;
  agentBundle?: string;
  /** A Node binary for the agents instead of the pinned node-linux-<arch> package. */
  nodeRuntime?: string;
  /** Asked only for the secrets some declared step needs. */
  secret(name: SecretName): pulumi.Input<string>;
}

export interface Lab {
  resources: PlannedResource[];
  steps: Map<string, HostStep>;
  /** dispatcherUrl: the dispatcher-container resource's output, else the inventory's URL. */
  outputs: { dispatcherUrl: pulumi.Input<string | undefined>; hosts: Record<string, pulumi.Output<HostFacts>> };
}

export function declareLab(opts: LabProgramOptions): Lab {
  const resources = planLab(opts.inventory, opts.steps);
  const provider = stepProvider(opts.runtimeUrl);
  const secrets = new Map(neededSecrets(resources).map((name) => [name, pulumi.secret(opts.secret(name))]));
  const steps = new Map<string, HostStep>();
  const hosts: Record<string, pulumi.Output<HostFacts>> = {};
  // The dispatcher host first: its container resource must exist before the agents that join it.
  const first = dispatcherHostOf(opts.inventory, opts.steps)?.name;
  const hostsInOrder = [...opts.inventory.hosts].sort((a, b) => Number(b.name === first) - Number(a.name === first));
  for (const host of hostsInOrder) {
    const component = new LabHost(host.name);
    const mine: HostStep[] = [];
    for (const r of resources.filter((x) => x.host === host.name)) {
      const inputs: Record<string, pulumi.Input<unknown>> = { ...stepInputs(opts.inventory, host, r.step, opts) };
      for (const name of secretsFor(r)) {
        const value = secrets.get(name);
        if (value === undefined) throw new LabrigError(`internal: secret ${name} was not asked for`);
        inputs[name] = value;
      }
      if (r.step === "agent") Object.assign(inputs, agentDispatcherInputs(r, steps, opts.inventory));
      const resource = new HostStep(r.name, provider, inputs, { parent: component, dependsOn: r.dependsOn.map((d) => steps.get(d)!) });
      steps.set(r.name, resource);
      mine.push(resource);
    }
    hosts[host.name] = pulumi.all(mine.map((s) => s.found)).apply((found) => {
      const merged: FoundFacts = Object.assign({}, ...found.filter(Boolean));
      return { os: merged.os ?? null, docker: merged.docker ?? null, driver: merged.driver ?? null, gpus: merged.gpus ?? [] };
    });
    component.finish(hosts[host.name]);
  }
  const dispatcher = first === undefined ? undefined : steps.get(`${first}/dispatcher-container`);
  return { resources, steps, outputs: { dispatcherUrl: dispatcher ? dispatcher.dispatcherUrl : dispatcherUrl(opts.inventory), hosts } };
}

/** An agent's dispatcher URL and join token: the dispatcher container's outputs (so it depends on that resource), else the inventory's URL. */
function agentDispatcherInputs(r: PlannedResource, steps: Map<string, HostStep>, inventory: Inventory): Record<string, pulumi.Input<unknown>> {
  if (!r.dispatcherFrom) {
    const url = dispatcherUrl(inventory);
    return url ? { dispatcherUrl: url } : {};
  }
  const dispatcher = steps.get(r.dispatcherFrom);
  if (!dispatcher) throw new LabrigError(`internal: ${r.name} joins ${r.dispatcherFrom}, which is not declared before it`);
  return { dispatcherUrl: dispatcher.dispatcherUrl, joinToken: pulumi.secret(dispatcher.joinToken) };
}
