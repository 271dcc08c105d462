// Registers `labrig preview`, `labrig up`, `labrig destroy`: the lab declared with Pulumi (stacks/).
// pnpm scripts: `pnpm preview`, `pnpm run up` (plain `pnpm up` is pnpm's own update), `pnpm destroy`.
import type { Command } from "commander";

interface StackFlags {
  stack?: string;
  inventory: string;
  host?: string;
  knownHosts?: string;
  yes?: boolean;
  askSudoPass?: boolean;
}

const actions = [
  ["preview", "show what Pulumi would change on the hosts (each step's planned changes), changing nothing"],
  ["up", "bring the hosts to the inventory's state with Pulumi: each step's changes, then a re-check"],
  ["destroy", "undo what labrig set up where that is safe (agents, timers, firewall rules, dispatcher container); Docker and NVIDIA packages stay"],
] as const;

export function registerStackCommands(program: Command): void {
  for (const [action, description] of actions) {
    const cmd = program
      .command(action)
      .description(`${description} (needs the Pulumi CLI; state under LABRIG_HOME/pulumi)`)
      .option("--stack <name>", "the stack (default: the inventory's lab.name)")
      .option("--inventory <path>", "the inventory file", "inventory.yaml")
      .option("--host <names>", "only this host's resources (several separated by commas)")
      .option("--known-hosts <path>", "pinned SSH host keys (default ~/.labrig/known_hosts)")
      .option("--ask-sudo-pass", "ask once for the login user's sudo password (hosts without passwordless sudo); set as the stack secret labrig:sudoPassword for this run only, read from stdin when it is not a terminal");
    if (action === "destroy") cmd.option("--yes", "really destroy (run pnpm preview first)");
    cmd.action(async ({ askSudoPass, ...flags }: StackFlags) => {
      const { runStackCommand } = await import("../stacks/command.js");
      const { askSecret } = await import("./ask-secret.js");
      const askSudoPassword = askSudoPass ? () => askSecret("sudo password for the hosts' login user: ", "--ask-sudo-pass") : undefined;
      process.exitCode = await runStackCommand(action, { ...flags, ...(askSudoPassword ? { askSudoPassword } : {}) });
    });
  }
}
