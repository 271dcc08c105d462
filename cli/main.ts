#!/usr/bin/env node
// The `labrig` command: one entry, a subcommand per part. Each part registers its own commands and
// loads its implementation lazily, so `labrig --help` and small commands start fast.
import "./quiet-sqlite-warning.js";
import { Command, CommanderError } from "commander";
import { LabrigError } from "../core/errors.js";
import { visibleText } from "../core/visible.js";
import { registerAgentCommands } from "./agent.js";
import { registerBackupCommands } from "./backup.js";
import { registerCodeCommands } from "./code.js";
import { registerDispatcherCommands } from "./dispatcher.js";
import { registerImageCommands } from "./image.js";
import { registerImportCommands } from "./import.js";
import { registerJobCommands } from "./jobs.js";
import { registerLabCommands } from "./lab.js";
import { registerPeopleCommands } from "./people.js";
import { registerProvisionCommands } from "./provision.js";
import { registerStackCommands } from "./stack.js";
import { registerTuiCommands } from "./tui.js";

export function buildProgram(): Command {
  const program = new Command("labrig")
    .description("Run a small ML lab: provision GPU hosts, dispatch experiments, watch the lab, back it up.")
    .showHelpAfterError("(run with --help for usage)")
    .enablePositionalOptions();
  registerLabCommands(program);
  registerDispatcherCommands(program);
  registerAgentCommands(program);
  registerJobCommands(program);
  registerCodeCommands(program);
  registerPeopleCommands(program);
  registerProvisionCommands(program);
  registerImageCommands(program);
  registerStackCommands(program);
  registerTuiCommands(program);
  registerBackupCommands(program);
  registerImportCommands(program);
  return program;
}

/** node:sqlite (the dispatcher's database) is unflagged from Node 22.13; the agent keeps Node 18. */
const MIN_NODE = [22, 13] as const;

function nodeTooOld(version = process.versions.node): boolean {
  const [major, minor] = version.split(".").map(Number);
  return major! < MIN_NODE[0] || (major === MIN_NODE[0] && minor! < MIN_NODE[1]);
}

async function main(argv: string[]) {
  if (nodeTooOld() && argv[2] !== "agent") {
    process.stderr.write(
      `labrig: needs Node.js >= ${MIN_NODE.join(".")} (the dispatcher uses node:sqlite); this is ${process.version}.\n` +
        "  Run it through the project's scripts (pnpm start, pnpm labrig …): `pnpm install` brings the Node 24 they use.\n" +
        "  Or install Node.js 24 LTS. (`labrig agent` alone still runs on Node >= 18.)\n",
    );
    process.exitCode = 1;
    return;
  }
  // pnpm passes a lone "--" through when a script is called as `pnpm submit -- cmd`; commander
  // treats it as the end of options, which is what we want, so nothing to strip here.
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof LabrigError) {
      // Messages may carry what the API said: control characters are made visible.
      process.stderr.write(`labrig: ${visibleText(err.message)}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

await main(process.argv);
