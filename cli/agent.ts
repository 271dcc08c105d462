// Registers `labrig agent`: the GPU host agent (agent/), loaded only when the command runs, and
// `labrig agent bundle`, which builds the single-file agent GPU hosts run under systemd.
import type { Command } from "commander";
import { defineAgentOptions } from "../agent/command.js";
import type { AgentFlags } from "../agent/options.js";
import { errorMessage } from "../core/errors.js";

export function registerAgentCommands(program: Command): void {
  const agent = defineAgentOptions(
    program
      .command("agent")
      .description("run the GPU host agent: register with the dispatcher, heartbeat, run jobs, sync their outputs")
      .enablePositionalOptions(),
  ).action(async (flags: AgentFlags) => {
    const { runAgent } = await import("../agent/main.js");
    try {
      process.exitCode = await runAgent(flags);
    } catch (err) {
      process.stderr.write(`labrig: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    }
    // Idle keep-alive sockets of fetch would hold the process a few seconds more.
    process.exit();
  });

  agent
    .command("bundle")
    .description("bundle the agent into one file for Node >= 18 (esbuild), default dist/agent/labrig-agent.mjs")
    .option("--out <file>", "where to write the bundle")
    .action(async (opts: { out?: string }) => {
      const { bundleAgent, defaultBundlePath } = await import("../agent/bundle.js");
      const r = await bundleAgent(opts.out ?? defaultBundlePath);
      process.stdout.write(`wrote ${r.path} (${Math.round(r.bytes / 1024)} KiB)\n`);
    });
}
