// What `labrig provision` does, apart from parsing flags: load the inventory, connect over SSH,
// run the steps with live progress on stderr, then print the summary or the JSON report on stdout.
import { defaultKnownHostsFile } from "./known-hosts.js";
import { loadInventory, selectHosts } from "./inventory.js";
import type { HostConfig } from "./inventory.js";
import { describeStepEnd, type HostPlan, provisionProgress } from "./progress.js";
import { anyFailed, provision, selectSteps, stepAppliesTo, type ProvisionReport } from "./runner.js";
import type { Step } from "./step.js";
import { SshRemote } from "./ssh-remote.js";
import { allSteps } from "./steps/index.js";

export interface ProvisionCommandOptions {
  hostSpec: string;
  inventoryFile: string;
  only?: string[];
  skip?: string[];
  dryRun: boolean;
  json: boolean;
  concurrency: number;
  knownHostsFile?: string;
  agentBundle?: string;
}

/** Runs it and returns whether any step failed. */
export async function runProvisionCommand(opts: ProvisionCommandOptions): Promise<boolean> {
  const inventory = loadInventory(opts.inventoryFile);
  const hosts = selectHosts(inventory, opts.hostSpec);
  const selected = selectSteps(allSteps, opts.only, opts.skip); // flag errors before connecting anywhere
  const knownHostsFile = opts.knownHostsFile ?? defaultKnownHostsFile();
  const plans = hostPlans(hosts, selected);
  // listr2's terminal renderer draws only where both streams are a terminal; elsewhere plain lines.
  const progress = provisionProgress(plans, { dryRun: opts.dryRun, tty: !!process.stderr.isTTY && !!process.stdout.isTTY });
  const report = await provision({
    inventory,
    hosts,
    steps: allSteps,
    dryRun: opts.dryRun,
    concurrency: opts.concurrency,
    only: opts.only,
    skip: opts.skip,
    assets: { agentBundle: opts.agentBundle },
    connect: (host) =>
      new SshRemote(
        { host: host.name, address: host.address, port: host.port, user: host.user, identityFile: host.identityFile },
        { knownHostsFile, onNotice: (m) => process.stderr.write(`${m}\n`) },
      ),
    onEvent: progress.onEvent,
  });
  await progress.done;
  process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + "\n" : formatSummary(report, plans));
  return anyFailed(report);
}

/** Each host and the steps meant for it: those --only/--skip leave that its roles call for. */
export function hostPlans(hosts: HostConfig[], steps: Step[]): HostPlan[] {
  return hosts.map((h) => ({ host: h.name, steps: steps.filter((s) => stepAppliesTo(s, h)).map((s) => s.id) }));
}

/**
 * The summary on stdout: per host, the steps meant for it and what each did (a dry run: would
 * do). A host whose first step failed (unreachable) is one line; steps left after a failure, and
 * other roles' steps, are named on one line each rather than listed as skipped.
 */
export function formatSummary(report: ProvisionReport, plans: HostPlan[]): string {
  const lines: string[] = [];
  for (const host of report.hosts) {
    const plan = plans.find((p) => p.host === host.host) ?? { host: host.host, steps: host.steps.map((s) => s.id) };
    const mine = host.steps.filter((s) => plan.steps.includes(s.id));
    const others = host.steps.filter((s) => !plan.steps.includes(s.id)).map((s) => s.id);
    if (mine[0]?.status === "failed") {
      lines.push(`${host.host}: failed: ${describeStepEnd(mine[0], report.dryRun)} No step ran.`);
      continue;
    }
    lines.push(`${host.host}:`);
    const failedAt = mine.findIndex((s) => s.status === "failed");
    for (const s of failedAt >= 0 ? mine.slice(0, failedAt + 1) : mine) {
      const status = report.dryRun && s.status === "changed" ? "would change" : s.status;
      lines.push(`  ${s.id.padEnd(15)} ${status}${s.reason && s.status !== "changed" ? `: ${s.reason}` : ""}`);
      for (const c of s.changes) lines.push(`      ${report.dryRun ? "would " : ""}${c.line}`);
    }
    if (failedAt >= 0 && failedAt < mine.length - 1) lines.push(`  not run after ${mine[failedAt]!.id} failed: ${mine.slice(failedAt + 1).map((s) => s.id).join(", ")}`);
    if (others.length) lines.push(`  not for this host's roles: ${others.join(", ")}`);
  }
  return lines.join("\n") + "\n";
}
