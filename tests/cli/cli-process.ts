// Runs the real `labrig` CLI as a process (node + tsx, as `pnpm labrig` does) for the CLI tests.
import { join } from "node:path";
import { execa, type Options } from "execa";
import { repoRoot } from "../helpers/dispatcher-process.js";

// tsx and cli/main.ts by absolute location, so a test may run the CLI from any folder (cwd).
const cliCommand = [process.execPath, "--import", import.meta.resolve("tsx"), join(repoRoot, "cli/main.ts")] as const;

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout exactly as written, for byte-for-byte checks. */
  stdoutBytes: Buffer;
}

/** The environment a test's CLI sees: only what it is given, plus PATH and HOME. */
export function cliEnv(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...extra };
}

export async function runCli(args: string[], env: Record<string, string>, opts: Omit<Options, "encoding"> = {}): Promise<CliResult> {
  const r = await execa(cliCommand[0], [...cliCommand.slice(1), ...args], {
    cwd: repoRoot,
    env,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    timeout: 60_000,
    ...opts,
    encoding: "buffer",
  });
  const stdoutBytes = Buffer.from(r.stdout as Uint8Array);
  return { exitCode: r.exitCode ?? -1, stdout: stdoutBytes.toString("utf8"), stderr: Buffer.from(r.stderr as Uint8Array).toString("utf8"), stdoutBytes };
}

/** Starts the CLI without waiting, for commands that run until something happens (logs -f, submit --wait). */
export function spawnCli(args: string[], env: Record<string, string>) {
  return execa(cliCommand[0], [...cliCommand.slice(1), ...args], {
    cwd: repoRoot,
    env,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    timeout: 60_000,
  });
}
