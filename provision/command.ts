// What `labrig provision` does, apart from parsing flags: load the inventory, connect over SSH,
// run the steps with live progress on stderr, then print the summary or the JSON report on stdout.
import { defaultKnownHostsFile } from "./known-hosts.js";
import { type HostConfig, type Inventory, loadInventory, selectHosts } from "./inventory.js";
import { dispatcherJoinTokens } from "./join-tokens.js";
import { describeStepEnd, type HostPlan, provisionProgress } from "./progress.js";
import { shq } from "./remote.js";
import { anyFailed, provision, selectSteps, stepAppliesTo, type ProvisionReport } from "./runner.js";
import { readSavedDispatcher } from "./saved-dispatcher.js";
import { slurmClusterFacts } from "./slurm-cluster.js";
import type { Step } from "./step.js";
import { SshRemote, sshTarget } from "./ssh-remote.js";
import { labSteps } from "./steps/index.js";

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
  nodeRuntime?: string;
  /** --ask-sudo-pass: asked once, after the inventory and flags are checked; used for every host whose sudo asks, held in memory only. */
  askSudoPassword?: () => Promise<string>;
}

/** Runs it and returns whether any step failed. */
export async function runProvisionCommand(opts: ProvisionCommandOptions): Promise<boolean> {
  const inventory = loadInventory(opts.inventoryFile);
  const hosts = selectHosts(inventory, opts.hostSpec);
  const steps = labSteps(inventory);
  const selected = selectSteps(steps, opts.only, opts.skip); // flag errors before connecting anywhere
  const knownHostsFile = opts.knownHostsFile ?? defaultKnownHostsFile();
  const sudoPassword = await opts.askSudoPassword?.();
  const plans = hostPlans(hosts, selected);
  const connect = (host: HostConfig) => new SshRemote(sshTarget(host), { knownHostsFile, onNotice: (m) => process.stderr.write(`${m}\n`), sudoPassword });
  // listr2's terminal renderer draws only where both streams are a terminal; elsewhere plain lines.
  const progress = provisionProgress(plans, { dryRun: opts.dryRun, tty: !!process.stderr.isTTY && !!process.stdout.isTTY });
  const report = await provision({
    inventory,
    hosts,
    steps,
    dryRun: opts.dryRun,
    concurrency: opts.concurrency,
    only: opts.only,
    skip: opts.skip,
    assets: { agentBundle: opts.agentBundle, nodeRuntime: opts.nodeRuntime },
    joinTokens: dispatcherJoinTokens({ inventory, dryRun: opts.dryRun }),
    slurm: slurmClusterFacts({ inventory, connect }),
    connect,
    onEvent: progress.onEvent,
  });
  await progress.done;
  const next = nextCommands(report, inventory, opts.inventoryFile);
  process.stdout.write(opts.json ? JSON.stringify({ ...report, next }, null, 2) + "\n" : formatSummary(report, plans) + formatNext(next));
  return anyFailed(report);
}

/** What to run after this run: the failed hosts again, or the lab's dashboard and a first job. */
export function nextCommands(report: ProvisionReport, inventory: Inventory, inventoryFile: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const inv = inventoryFile === "inventory.yaml" ? "" : ` --inventory ${shq(inventoryFile)}`;
  const failed = report.hosts.filter((h) => h.steps.some((s) => s.status === "failed")).map((h) => h.host);
  const next: string[] = [];
  if (failed.length) next.push(`fix what failed above, then run again (what converged stays as it is): labrig provision --host ${failed.join(",")}${inv}`);
  if (report.dryRun) {
    const fine = report.hosts.map((h) => h.host).filter((h) => !failed.includes(h));
    if (fine.length) next.push(`apply these changes: labrig provision --host ${fine.join(",")}${inv}`);
    return next;
  }
  const saved = readSavedDispatcher(inventory.lab.name, env);
  const url = inventory.lab.dispatcher?.url ?? saved?.url;
  if (url && saved) {
    const target = `LABRIG_URL=${url} LABRIG_TOKEN=$(cat ${shq(saved.adminTokenFile)})`;
    next.push(`watch the lab: ${target} labrig tui --inventory ${shq(inventoryFile)}`);
    next.push(`run a first job: ${target} labrig submit --gpus 1 --wait -- nvidia-smi`);
  } else if (!url) {
    next.push(`no dispatcher yet: give one host roles: [dispatcher] (or set lab.dispatcher.url) and run labrig provision --host all${inv}`);
  }
  return next;
}

function formatNext(next: string[]): string {
  return next.length ? `\nNext:\n${next.map((n) => `  ${n}`).join("\n")}\n` : "";
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
