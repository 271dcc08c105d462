// The Pulumi program (Pulumi.yaml's main): the lab declared from inventory.yaml. Config (namespace
// labrig): inventory (default ../inventory.yaml), knownHosts, agentBundle, nodeRuntime, and the secrets
// resticPassword and joinToken (the latter only without a dispatcher host in the inventory) when a
// declared step needs them; sudoPassword, read by the provider itself (provider.ts), not here.
// `pnpm preview`/`pnpm run up` set these from the inventory; plain `pulumi up` in this folder reads
// what `pulumi config` holds.
import { resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { loadInventory } from "../provision/inventory.js";
import { defaultKnownHostsFile } from "../provision/known-hosts.js";
import { defaultAgentBundle } from "../provision/steps/agent.js";
import { allSteps } from "../provision/steps/index.js";
import { bundleStepRuntime } from "./bundle.js";
import { declareLab } from "./program.js";

export default async function labProgram() {
  const config = new pulumi.Config("labrig");
  const inventory = loadInventory(resolve(config.get("inventory") ?? resolve(import.meta.dirname, "../inventory.yaml")));
  const lab = declareLab({
    inventory,
    steps: allSteps,
    runtimeUrl: await bundleStepRuntime(),
    knownHostsFile: config.get("knownHosts") ?? defaultKnownHostsFile(),
    agentBundle: config.get("agentBundle") ?? defaultAgentBundle,
    nodeRuntime: config.get("nodeRuntime"),
    secret: (name) => config.requireSecret(name),
  });
  return lab.outputs;
}
