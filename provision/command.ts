// What `labrig provision` does, apart from parsing flags: load the inventory, connect over SSH,
// run the steps with live progress on stderr, then print the summary or the JSON report on stdout.
import { defaultKnownHostsFile } from "./known-hosts.js";
import { type HostConfig, type Inventory, loadInventory, selectHosts } from "./inventory.js";
import { listrProgress } from "./progress.js";
import { anyFailed, provision, selectSteps, type ProvisionReport } from "./runner.js";
import { shq } from "./remote.js";
import { readSavedDispatcher } from "./saved-dispatcher.js";
import { parseProxyJump } from "./proxy-jump.js";
import { SshRemote, type SshTarget } from "./ssh-remote.js";
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
  /** --ask-sudo-pass: asked once, after the inventory and flags are checked; used for every host whose sudo asks, held in memory only. */
  askSudoPassword?: () => Promise<string>;
}

export function sshTarget(host: HostConfig): SshTarget {
  const target: SshTarget = { host: host.name, address: host.address, port: host.port, user: host.user, identityFile: host.identityFile };
  if (host.proxyJump) target.jumps = parseProxyJump(host.proxyJump);
  return target;
}

/** Runs it and returns whether any step failed. */
export async function runProvisionCommand(opts: ProvisionCommandOptions): Promise<boolean> {
  const inventory = loadInventory(opts.inventoryFile);
  const hosts = selectHosts(inventory, opts.hostSpec);
  selectSteps(allSteps, opts.only, opts.skip); // flag errors before connecting anywhere
  const knownHostsFile = opts.knownHostsFile ?? defaultKnownHostsFile();
  const sudoPassword = await opts.askSudoPassword?.();
  const progress = listrProgress(hosts.map((h) => h.name));
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
      new SshRemote(sshTarget(host), { knownHostsFile, onNotice: (m) => process.stderr.write(`${m}\n`), sudoPassword }),
    onEvent: progress.onEvent,
  });
  await progress.done;
  const next = nextCommands(report, inventory, opts.inventoryFile);
  process.stdout.write(opts.json ? JSON.stringify({ ...report, next }, null, 2) + "\n" : formatSummary(report) + formatNext(next));
  return anyFailed(report);
}

/** What to run after this run: the failed hosts again, or the lab's dashboard and a first job. */
export function nextCommands(report: ProvisionReport, inventory: Inventory, inventoryFile: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const inv = inventoryFile === "inventory.yaml" ? "" : ` --inventory ${shq(inventoryFile)}`;
  const failed = report.hosts.filter((h) => h.steps.some((s) => s.status === "failed")).map((h) => h.host);
  if (report.dryRun) return [`apply these changes: labrig provision --host ${report.hosts.map((h) => h.host).join(",")}${inv}`];
  const next: string[] = [];
  if (failed.length) next.push(`fix what failed above, then run again (what converged stays as it is): labrig provision --host ${failed.join(",")}${inv}`);
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

export function formatSummary(report: ProvisionReport): string {
  const lines: string[] = [];
  for (const host of report.hosts) {
    lines.push(`${host.host}:`);
    for (const s of host.steps) {
      const status = report.dryRun && s.status === "changed" ? "would change" : s.status;
      lines.push(`  ${s.id.padEnd(15)} ${status}${s.reason && s.status !== "changed" ? `: ${s.reason}` : ""}`);
      for (const c of s.changes) lines.push(`      ${report.dryRun ? "would " : ""}${c.line}`);
    }
  }
  return lines.join("\n") + "\n";
}
