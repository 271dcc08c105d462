// Registers the lab subcommands of `labrig`.
import type { Command } from "commander";

export function registerLabCommands(_program: Command): void {}
