// What the provisioning integration tests share: running `labrig provision` as a real process
// (the command a user runs) and reading its --json report, and finding the agent bundle to install.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import type { ProvisionReport, StepStatus } from "../../provision/runner.js";

export interface CliRun {
  exitCode: number;
  report: ProvisionReport & { next?: string[] };
  stderr: string;
  stdout: string;
}

/** `labrig provision ... --json`; the report is parsed from stdout (exactly one JSON document). */
export async function provisionCli(args: string[], env: Record<string, string> = {}, opts: { input?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const res = await execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", "provision", ...args, "--json"], {
    cwd: repoRoot,
    reject: false,
    env: { ...env, CI: "1" },
    timeout: opts.timeoutMs ?? 600_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  let report: ProvisionReport;
  try {
    report = JSON.parse(res.stdout) as ProvisionReport;
  } catch {
    throw new Error(`labrig provision did not print one JSON document (exit ${res.exitCode}):\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  return { exitCode: res.exitCode ?? -1, report, stderr: res.stderr, stdout: res.stdout };
}

/** step id → status for one host, e.g. {base: "ok", docker: "changed"}. */
export function statuses(run: CliRun, host: string): Record<string, StepStatus> {
  const h = run.report.hosts.find((x) => x.host === host);
  if (!h) throw new Error(`no report for ${host}: ${JSON.stringify(run.report)}`);
  return Object.fromEntries(h.steps.map((s) => [s.id, s.status]));
}

export function stepOf(run: CliRun, host: string, id: string) {
  const s = run.report.hosts.find((x) => x.host === host)?.steps.find((x) => x.id === id);
  if (!s) throw new Error(`no step ${id} for ${host}: ${JSON.stringify(run.report)}`);
  return s;
}

/**
 * The agent bundle provisioning installs: dist/agent/labrig-agent.mjs, built with the package's
 * build:agent script when missing. LABRIG_TEST_AGENT_BUNDLE overrides it (for working on
 * provisioning with a stand-in; the agent-health test then fails, as it should).
 */
export async function agentBundle(): Promise<string> {
  if (process.env.LABRIG_TEST_AGENT_BUNDLE) return process.env.LABRIG_TEST_AGENT_BUNDLE;
  const bundle = join(repoRoot, "dist/agent/labrig-agent.mjs");
  if (existsSync(bundle)) return bundle;
  const scripts = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).scripts ?? {};
  if (!scripts["build:agent"]) throw new Error(`no agent bundle at ${bundle} and no build:agent script in package.json to build it`);
  const res = await execa("pnpm", ["run", "build:agent"], { cwd: repoRoot, reject: false, all: true });
  if (res.exitCode !== 0 || !existsSync(bundle)) throw new Error(`pnpm run build:agent did not produce ${bundle}:\n${res.all}`);
  return bundle;
}
