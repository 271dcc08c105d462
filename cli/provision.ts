// Registers the provision subcommands of `labrig`.
import type { Command } from "commander";

export function registerProvisionCommands(_program: Command): void {}
