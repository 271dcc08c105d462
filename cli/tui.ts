// Registers the tui subcommands of `labrig`.
import type { Command } from "commander";

export function registerTuiCommands(_program: Command): void {}
