// What the `slurm-controller` and `slurm-node` steps share: Debian's packages for a Slurm daemon,
// the cluster's three config files (slurm-conf.ts, the same on every host) plus the host's own
// files, and the daemon enabled and running. A changed file under a running daemon restarts it
// (jobs survive: slurmctld keeps its state in StateSaveLocation, each job step has its own
// slurmstepd); the controller's restart also covers what `scontrol reconfigure` cannot, such as an
// added node. Nothing changed, nothing is restarted.
import { errorMessage, LabrigError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { type FileState, fileStates } from "../facts/files.js";
import { installedPackages, missingPackages } from "../facts/packages.js";
import { type UnitState, unitStates } from "../facts/systemd.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import type { CheckResult, StepContext } from "../step.js";
import { slurmClusterSpec, slurmConfigFiles, type SlurmClusterSpec } from "./slurm-conf.js";

export interface SlurmDaemon {
  unit: string;
  packages: string[];
  /** Files of this host's own, beside the cluster's config (slurmd's -N). */
  ownFiles(ctx: StepContext, spec: SlurmClusterSpec): DesiredFile[];
  /** Other Slurm daemons on this host that read the same files (slurmd on a controller that is a node too). */
  sharesFilesWith?(ctx: StepContext): string[];
  /** After the daemon was (re)started: wait until it answers, or throw saying why. */
  ready(ctx: StepContext): Promise<void>;
}

/** The cluster as slurm.conf describes it, from the facts of every Slurm host (read once per run). */
export async function clusterSpecOf(ctx: StepContext): Promise<SlurmClusterSpec> {
  if (!ctx.slurm) throw new LabrigError("internal: no Slurm cluster facts were handed to the step (ProvisionOptions.slurm)");
  return slurmClusterSpec(ctx.inventory, await ctx.slurm.facts());
}

async function desiredFiles(ctx: StepContext, daemon: SlurmDaemon): Promise<{ spec: SlurmClusterSpec; files: DesiredFile[] }> {
  const spec = await clusterSpecOf(ctx);
  return { spec, files: [...slurmConfigFiles(spec), ...daemon.ownFiles(ctx, spec)] };
}

export async function checkSlurmDaemon(ctx: StepContext, daemon: SlurmDaemon): Promise<CheckResult> {
  if (ctx.inventory.lab.scheduler !== "slurm") return { facts: {}, changes: [], skip: "lab.scheduler is labrig" };
  let planned: { spec: SlurmClusterSpec; files: DesiredFile[] };
  try {
    planned = await desiredFiles(ctx, daemon);
  } catch (err) {
    return { facts: {}, changes: [], fail: errorMessage(err) };
  }
  const { remote } = ctx;
  const sharing = daemon.sharesFilesWith?.(ctx) ?? [];
  const [installed, states, units] = await Promise.all([
    installedPackages(remote, daemon.packages),
    fileStates(remote, planned.files.map((f) => f.path)),
    unitStates(remote, [daemon.unit, ...sharing]),
  ]);
  const missing = missingPackages(installed);
  const unit = units.get(daemon.unit)!;
  const others = sharing.map((u) => ({ unit: u, state: units.get(u)! }));
  const changes = planSlurmDaemon({ unit: daemon.unit, missing, unitState: unit, files: planned.files, states, sharing: others });
  const spec = planned.spec;
  return {
    facts: {
      installed: Object.fromEntries(installed),
      unit,
      clusterName: spec.clusterName,
      nodes: spec.nodes.map((n) => `${n.name}: ${n.cpus} CPUs, ${n.realMemoryMiB} MiB${n.gpus ? `, gpu${n.gpus.type ? `:${n.gpus.type}` : ""}:${n.gpus.files.length}` : ""}`),
    },
    changes,
  };
}

/** A Slurm daemon's plan, pure: packages, then the files that differ, then enabled and running, restarted when a file's content changed. */
export function planSlurmDaemon(f: {
  unit: string;
  missing: string[];
  unitState: UnitState;
  files: DesiredFile[];
  states: Map<string, FileState>;
  /** Running daemons that read the same files are restarted with it. */
  sharing?: { unit: string; state: UnitState }[];
}): Change[] {
  const changes: Change[] = [];
  if (f.missing.length) changes.push({ kind: "install-packages", packages: f.missing, reason: "not installed" });
  const fileChanges = f.files.flatMap((file) => planFile(f.states.get(file.path), file, file.path.split("/").pop()) ?? []);
  changes.push(...fileChanges);
  const after = f.missing.length ? "after install" : undefined;
  if (f.unitState.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: f.unit, reason: after ?? `is ${f.unitState.enabled}` });
  if (f.unitState.active !== "active") changes.push({ kind: "start-unit", unit: f.unit, reason: after ?? `is ${f.unitState.active}` });
  else if (fileChanges.some((c) => c.kind === "write-file")) changes.push({ kind: "restart-unit", unit: f.unit, reason: "its configuration changed" });
  if (fileChanges.some((c) => c.kind === "write-file")) {
    for (const other of f.sharing ?? []) if (other.state.active === "active") changes.push({ kind: "restart-unit", unit: other.unit, reason: "it reads the same configuration" });
  }
  return changes;
}

export async function applySlurmDaemon(ctx: StepContext, daemon: SlurmDaemon, changes: Change[]): Promise<void> {
  const { files } = await desiredFiles(ctx, daemon);
  await applyChanges(ctx, changes, { files: new Map(files.map((f) => [f.path, f])) });
  if (changes.some((c) => (c.kind === "start-unit" || c.kind === "restart-unit") && c.unit === daemon.unit)) await daemon.ready(ctx);
}

/** Polls `probe` (a command, given `input` on its stdin) until it exits 0, else throws with the unit's journal tail. */
export async function waitForDaemon(ctx: StepContext, unit: string, probe: string, what: string, timeoutMs = 30_000, input?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await ctx.remote.exec(probe, { sudo: true, timeoutMs: 15_000, ...(input !== undefined ? { input } : {}) });
    if (res.exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  const journal = await ctx.remote.exec(`journalctl -u ${unit} --no-pager -n 15; tail -n 15 /var/log/slurm/*.log 2>/dev/null`, { sudo: true });
  throw new LabrigError(`on ${ctx.host.name}: ${what} within ${timeoutMs / 1000} s of starting ${unit}; its journal and log end:\n${journal.stdout.trim()}`);
}
