// Fact: whether a command is there and what it says about itself.
//   await commandOutput(remote, "node --version")  // "v18.19.0" or undefined when missing or failing
import type { Remote } from "../remote.js";

export async function commandOutput(remote: Remote, command: string, opts: { sudo?: boolean } = {}): Promise<string | undefined> {
  const res = await remote.exec(`${command} 2>&1`, { sudo: opts.sudo, timeoutMs: 30_000 });
  return res.exitCode === 0 ? res.stdout.trim() : undefined;
}
