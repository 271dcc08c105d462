// How a Slurm step on one host learns the facts of the others. slurm.conf must be the same file on
// every host of the cluster and lists every node's CPUs, memory and GPUs, so the controller's step
// needs the nodes' facts before the nodes are provisioned. A pre-pass: the first Slurm step of a run
// to ask connects to every Slurm host of the inventory (the controller and every role-gpu host, not
// only those --host names), reads `slurmHostFacts`, and closes; every later step of the run, the
// check after apply included, gets the same answer. A host it cannot read fails the Slurm steps
// that asked, naming the host (its node line cannot be written without its facts).
//
//   const cluster = slurmClusterFacts({ inventory, connect });
//   const facts = await cluster.facts();   // Map { "ctl" => {...}, "gpu-a" => {...} }
import { errorMessage, LabrigError } from "../core/errors.js";
import { type SlurmHostFacts, slurmHostFacts } from "./facts/slurm-host.js";
import type { HostConfig, Inventory } from "./inventory.js";
import type { Remote } from "./remote.js";

export interface SlurmCluster {
  /** The facts of every Slurm host of the inventory, by host name; read once per run. */
  facts(): Promise<Map<string, SlurmHostFacts>>;
}

/** The hosts slurm.conf names: the controller, then the compute nodes (role gpu), in inventory order. */
export function slurmHosts(inv: Inventory): HostConfig[] {
  if (inv.lab.scheduler !== "slurm") return [];
  return inv.hosts.filter((h) => h.roles.includes("slurm-controller") || h.roles.includes("gpu"));
}

export function slurmClusterFacts(opts: { inventory: Inventory; connect(host: HostConfig): Remote }): SlurmCluster {
  let read: Promise<Map<string, SlurmHostFacts>> | undefined;
  const readOne = async (host: HostConfig): Promise<[string, SlurmHostFacts]> => {
    const remote = opts.connect(host);
    try {
      return [host.name, await slurmHostFacts(remote)];
    } catch (err) {
      throw new LabrigError(`cannot read ${host.name}'s CPUs, memory and GPUs, which slurm.conf lists on every Slurm host: ${errorMessage(err)}`, { cause: err });
    } finally {
      await remote.close().catch(() => undefined);
    }
  };
  return {
    facts() {
      read ??= Promise.all(slurmHosts(opts.inventory).map(readOne)).then((pairs) => new Map(pairs));
      return read;
    },
  };
}
