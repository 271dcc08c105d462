// Entry of the bundled agent (dist/agent/labrig-agent.mjs): the same options as `labrig agent`,
// as the whole command, so systemd runs `node labrig-agent.mjs` with its env file and no flags.
import { Command, CommanderError } from "commander";
import { LabrigError } from "../core/errors.js";
import { defineAgentOptions } from "./command.js";
import { runAgent } from "./main.js";
import type { AgentFlags } from "./options.js";
import { agentVersion } from "./version.js";

const program = defineAgentOptions(
  new Command("labrig-agent").description("the labrig GPU host agent: registers with the dispatcher, heartbeats, runs jobs, syncs their outputs").version(agentVersion),
);
program.exitOverride();
try {
  program.parse(process.argv);
  process.exitCode = await runAgent(program.opts<AgentFlags>());
  process.exit();
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`labrig-agent: ${err instanceof LabrigError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
}
