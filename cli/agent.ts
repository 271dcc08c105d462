// Registers the agent subcommands of `labrig`.
import type { Command } from "commander";

export function registerAgentCommands(_program: Command): void {}
