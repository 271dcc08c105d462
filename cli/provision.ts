// Registers `labrig provision`: turns the inventory's hosts into lab workers over SSH.
//   labrig provision --host gpu-a100 [--dry-run] [--json] [--only docker,firewall] [--skip ...] [--ask-sudo-pass]
import type { Command } from "commander";
import { InputError } from "../core/errors.js";

interface ProvisionFlags {
  host: string;
  inventory: string;
  only?: string;
  skip?: string;
  dryRun?: boolean;
  json?: boolean;
  concurrency: number;
  knownHosts?: string;
  agentBundle?: string;
  nodeRuntime?: string;
  askSudoPass?: boolean;
}

export function registerProvisionCommands(program: Command): void {
  program
    .command("provision")
    .description("provision hosts over SSH, idempotently: docker, NVIDIA toolkit, agent, firewall, backups; Slurm (munge, slurmctld, slurmd; slurmdbd with lab.slurm.accounting) when lab.scheduler is slurm")
    .requiredOption("--host <names>", "a host from the inventory, several separated by commas, or 'all'")
    .option("--inventory <path>", "the inventory file", "inventory.yaml")
    .option("--only <steps>", "run only these steps (comma-separated)")
    .option("--skip <steps>", "skip these steps (comma-separated)")
    .option("--dry-run", "check only: print every change it would make, touch nothing")
    .option("--json", "print one JSON document {hosts:[...]} on stdout (progress stays on stderr)")
    .option("--concurrency <n>", "hosts provisioned at once", parseConcurrency, 8)
    .option("--known-hosts <path>", "pinned SSH host keys (default ~/.labrig/known_hosts)")
    .option("--agent-bundle <path>", "the bundled agent to install (default dist/agent/labrig-agent.mjs)")
    .option("--node-runtime <path>", "the Node.js binary the agent runs on, for the GPU hosts' architecture (default: npm's node-linux-<arch> at the version package.json pins, from node_modules or fetched once into ~/.cache/labrig)")
    .option("--ask-sudo-pass", "ask once for the login user's sudo password (hosts without passwordless sudo, e.g. a Synology); held in memory only, read from stdin when it is not a terminal")
    .action(async (flags: ProvisionFlags) => {
      const { runProvisionCommand } = await import("../provision/command.js");
      const { askSecret } = await import("./ask-secret.js");
      const failed = await runProvisionCommand({
        hostSpec: flags.host,
        inventoryFile: flags.inventory,
        only: splitList(flags.only),
        skip: splitList(flags.skip),
        dryRun: !!flags.dryRun,
        json: !!flags.json,
        concurrency: flags.concurrency,
        knownHostsFile: flags.knownHosts,
        agentBundle: flags.agentBundle,
        nodeRuntime: flags.nodeRuntime,
        askSudoPassword: flags.askSudoPass ? () => askSecret("sudo password for the hosts' login user: ", "--ask-sudo-pass") : undefined,
      });
      if (failed) process.exitCode = 1;
    });
}

function splitList(v: string | undefined): string[] | undefined {
  return v?.split(",").map((s) => s.trim()).filter(Boolean);
}

function parseConcurrency(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InputError("--concurrency", `expected a whole number >= 1, got '${v}'`);
  return n;
}
