// What `labrig provision` does, apart from parsing flags: load the inventory, connect over SSH,
// run the steps with live progress on stderr, then print the summary or the JSON report on stdout.
import { defaultKnownHostsFile } from "./known-hosts.js";
import { loadInventory, selectHosts } from "./inventory.js";
import { listrProgress } from "./progress.js";
import { anyFailed, provision, selectSteps, type ProvisionReport } from "./runner.js";
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
  selectSteps(allSteps, opts.only, opts.skip); // flag errors before connecting anywhere
  const knownHostsFile = opts.knownHostsFile ?? defaultKnownHostsFile();
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
      new SshRemote(
        { host: host.name, address: host.address, port: host.port, user: host.user, identityFile: host.identityFile },
        { knownHostsFile, onNotice: (m) => process.stderr.write(`${m}\n`) },
      ),
    onEvent: progress.onEvent,
  });
  await progress.done;
  process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + "\n" : formatSummary(report));
  return anyFailed(report);
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
