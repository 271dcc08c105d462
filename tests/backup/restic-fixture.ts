// Temp folders with a real restic repository, its password file, and helpers to run the backup and
// restore scripts as the processes a timer would start, and to read the repository with restic.
import { execa } from "execa";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../helpers/dispatcher-process.js";

export interface ResticFixture {
  dir: string;
  repo: string;
  passwordFile: string;
  cacheDir: string;
  /** `restic ARGS` against this repository; throws on a non-zero exit. */
  restic(args: string[]): Promise<string>;
  snapshots(): Promise<{ id: string; time: string; tags?: string[]; hostname: string }[]>;
  /** Every pack file under the repository's data/ folder. */
  packFiles(): string[];
  cleanup(): void;
}

export function makeResticFixture(): ResticFixture {
  const dir = mkdtempSync(join(tmpdir(), "labrig-backup-test-"));
  const repo = join(dir, "repo");
  const passwordFile = join(dir, "restic-password");
  const cacheDir = join(dir, "cache");
  writeFileSync(passwordFile, "correct horse battery staple\n", { mode: 0o600 });
  const env = { RESTIC_REPOSITORY: repo, RESTIC_PASSWORD_FILE: passwordFile, RESTIC_CACHE_DIR: cacheDir };
  const restic = async (args: string[]) => (await execa("restic", args, { env })).stdout;
  return {
    dir,
    repo,
    passwordFile,
    cacheDir,
    restic,
    snapshots: async () => JSON.parse(await restic(["snapshots", "--json"])),
    packFiles: () => {
      const data = join(repo, "data");
      return readdirSync(data).flatMap((sub) => readdirSync(join(data, sub)).map((f) => join(data, sub, f)));
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface ScriptResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs scripts/backup.mjs or scripts/restore.mjs with plain node, as the labrig-backup timer does. */
export async function runScript(script: "backup" | "restore", args: string[], fx: ResticFixture, env: Record<string, string> = {}): Promise<ScriptResult> {
  const r = await execa(process.execPath, [join(repoRoot, "scripts", `${script}.mjs`), "--repo", fx.repo, "--password-file", fx.passwordFile, ...args], {
    reject: false,
    env: { RESTIC_CACHE_DIR: fx.cacheDir, ...env },
  });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Parses the one JSON document a script prints with --json, with its output in the error if it is not there. */
export function jsonOutput<T>(r: ScriptResult): T {
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch {
    throw new Error(`no JSON from the script (exit ${r.exitCode}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

export function sizeOf(file: string): number {
  return statSync(file).size;
}
