// Runs the agent as a process: resolves its options, starts it, and on SIGTERM/SIGINT stops it
// cleanly (jobs stopped and reported, or left running with --keep-jobs) and exits.
import { Agent } from "./agent.js";
import { type AgentFlags, resolveAgentOptions } from "./options.js";

export async function runAgent(flags: AgentFlags): Promise<number> {
  const opts = resolveAgentOptions(flags);
  const agent = new Agent(opts);
  let stopRequested: (() => void) | undefined;
  const stopped = new Promise<void>((r) => (stopRequested = r));
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`agent: second ${sig}, exiting now\n`);
      process.exit(130);
    }
    process.stderr.write(`agent: ${sig}, stopping\n`);
    stopRequested!();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const starting = agent.start();
  starting.catch(() => undefined); // a start cut short by a signal ends quietly; a failed one is thrown below
  const info = await Promise.race([starting, stopped.then(() => undefined)]);
  if (info) process.stderr.write(`agent ${info.hostId} running (pid ${info.pid}${info.url ? `, local server ${info.url}` : ""})\n`);
  await stopped;
  await agent.stop();
  return 0;
}
