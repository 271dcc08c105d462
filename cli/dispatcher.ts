// Registers the dispatcher subcommands of `labrig`.
import type { Command } from "commander";

export function registerDispatcherCommands(_program: Command): void {}
