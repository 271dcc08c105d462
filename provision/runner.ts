// Runs steps on hosts: hosts in parallel (up to `concurrency`), steps in order on each host;
// check, then apply the changes (unless a dry run), then check again to prove the host converged.
// Hosts with role dispatcher go first, as a wave of their own: the others' agents join the
// dispatcher those hosts bring up, with the URL and join token its step read back. The Slurm
// controller goes next, before the compute nodes: they get the munge key its step read back.
// Each host's system is read first (facts/host-system.ts): one labrig does not provision for the
// host's roles is refused before any step runs, and on a Synology the steps DSM owns are skipped.
// A failed step stops its host's remaining steps and says what it left changed; other hosts go
// on. The runner only produces events and a report: listr2 shows the events, --json prints the
// report, tests read either.
import { errorMessage, InputError } from "../core/errors.js";
import { type Change, describeChange } from "./change.js";
import { type HostSystem, hostSupport, readHostSystem } from "./facts/host-system.js";
import type { HostConfig, Inventory } from "./inventory.js";
import type { Remote } from "./remote.js";
import type { Step, StepContext } from "./step.js";

export type StepStatus = "ok" | "changed" | "skipped" | "failed";

export type ReportedChange = Change & {
  line: string;
  /** When it was done, in ms since its step started (absent in a dry run): where a step's time went. */
  doneAtMs?: number;
};

export interface StepReport {
  id: string;
  status: StepStatus;
  /** Changes made (or, in a dry run, that would be made). */
  changes: ReportedChange[];
  reason?: string;
  durationMs: number;
}

export interface HostReport {
  host: string;
  /** The system read before the steps ("Debian GNU/Linux 12 (bookworm)", "Synology DSM 7.2.1-69057"); absent when it could not be read. */
  system?: string;
  steps: StepReport[];
}

export interface ProvisionReport {
  dryRun: boolean;
  hosts: HostReport[];
}

export type ProvisionEvent =
  | { type: "host-start"; host: string; steps: string[] }
  | { type: "step-start"; host: string; step: string }
  | { type: "step-end"; host: string; report: StepReport }
  | { type: "host-end"; host: string; report: HostReport }
  | { type: "log"; host: string; step?: string; message: string };

export interface ProvisionOptions {
  inventory: Inventory;
  hosts: HostConfig[];
  steps: Step[];
  dryRun?: boolean;
  concurrency?: number;
  only?: string[];
  skip?: string[];
  assets?: StepContext["assets"];
  /** Handed to the steps (the agent step's join tokens); absent, the lab's shared join token. */
  joinTokens?: StepContext["joinTokens"];
  /** Handed to the steps: the facts of every Slurm host, for slurm.conf. */
  slurm?: StepContext["slurm"];
  connect(host: HostConfig, log: (message: string) => void): Remote;
  onEvent?(event: ProvisionEvent): void;
}

/** The steps --only/--skip leave, in order; an unknown id is an input error listing the known ones. */
export function selectSteps(steps: Step[], only?: string[], skip?: string[]): Step[] {
  const known = steps.map((s) => s.id);
  for (const [flag, ids] of [["--only", only], ["--skip", skip]] as const) {
    for (const id of ids ?? []) {
      if (!known.includes(id)) throw new InputError(flag, `unknown step '${id}'; steps: ${known.join(", ")}`);
    }
  }
  return steps.filter((s) => (!only?.length || only.includes(s.id)) && !skip?.includes(s.id));
}

export function stepAppliesTo(step: Step, host: HostConfig): boolean {
  return step.roles === "all" || step.roles.some((r) => host.roles.includes(r));
}

/** Whether a step runs on this host, or the reason it is skipped there: other roles', or what DSM owns (pure). */
export function stepDecision(step: Step, host: HostConfig, system: HostSystem | undefined): { run: true } | { run: false; reason: string } {
  if (!stepAppliesTo(step, host)) return { run: false, reason: `not for roles ${host.roles.join(", ") || "(none)"}` };
  if (system?.kind === "dsm" && step.ownedByDsm) return { run: false, reason: `on DSM: ${step.ownedByDsm}` };
  return { run: true };
}

/** The order hosts are brought up in: dispatcher hosts, the Slurm controller, then every other host; empty waves left out. */
export function provisionWaves(hosts: HostConfig[]): HostConfig[][] {
  const first = hosts.filter((h) => h.roles.includes("dispatcher"));
  const controller = hosts.filter((h) => !first.includes(h) && h.roles.includes("slurm-controller"));
  const then = hosts.filter((h) => !first.includes(h) && !controller.includes(h));
  return [first, controller, then].filter((wave) => wave.length > 0);
}

export async function provision(opts: ProvisionOptions): Promise<ProvisionReport> {
  const steps = selectSteps(opts.steps, opts.only, opts.skip);
  const emit = opts.onEvent ?? (() => undefined);
  const byHost = new Map<HostConfig, HostReport>();
  for (const wave of provisionWaves(opts.hosts)) {
    let next = 0;
    const worker = async () => {
      while (next < wave.length) {
        const host = wave[next++]!;
        byHost.set(host, await provisionHost(opts, host, steps, emit));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 8, wave.length)) }, worker));
  }
  return { dryRun: !!opts.dryRun, hosts: opts.hosts.map((h) => byHost.get(h)!) };
}

async function provisionHost(opts: ProvisionOptions, host: HostConfig, steps: Step[], emit: (e: ProvisionEvent) => void): Promise<HostReport> {
  const report: HostReport = { host: host.name, steps: [] };
  emit({ type: "host-start", host: host.name, steps: steps.map((s) => s.id) });
  const remote = opts.connect(host, (message) => emit({ type: "log", host: host.name, message }));
  let stoppedBy: string | undefined;
  /** Why no step may run on this host (its system is refused, or could not be read); the first step meant for it carries it. */
  let refused: string | undefined;
  let system: HostSystem | undefined;
  try {
    system = await readHostSystem(remote);
    report.system = system.name;
    const verdict = hostSupport(system, host.roles);
    if (!verdict.supported) refused = `refused before any change: ${verdict.reason}`;
  } catch (err) {
    refused = errorMessage(err).replace(/([^.])$/, "$1.");
  }
  try {
    for (const step of steps) {
      emit({ type: "step-start", host: host.name, step: step.id });
      const started = Date.now();
      const doneAt = new Map<Change, number>();
      const done = (status: StepStatus, changes: Change[], reason?: string) => {
        const r: StepReport = {
          id: step.id,
          status,
          changes: changes.map((c) => ({ ...c, line: describeChange(c), ...(doneAt.has(c) ? { doneAtMs: doneAt.get(c)! } : {}) })),
          durationMs: Date.now() - started,
        };
        if (reason !== undefined) r.reason = reason;
        report.steps.push(r);
        emit({ type: "step-end", host: host.name, report: r });
      };
      if (stoppedBy) {
        done("skipped", [], `not run: step ${stoppedBy} failed`);
        continue;
      }
      if (refused && stepAppliesTo(step, host)) {
        stoppedBy = step.id;
        done("failed", [], refused);
        continue;
      }
      const decision = stepDecision(step, host, system);
      if (!decision.run) {
        done("skipped", [], decision.reason);
        continue;
      }
      const applied: Change[] = [];
      const ctx: StepContext = {
        host,
        inventory: opts.inventory,
        remote,
        ...(system ? { system } : {}),
        assets: opts.assets ?? {},
        ...(opts.joinTokens ? { joinTokens: opts.joinTokens } : {}),
        ...(opts.slurm ? { slurm: opts.slurm } : {}),
        applied: (c) => {
          applied.push(c);
          doneAt.set(c, Date.now() - started);
        },
        log: (message) => emit({ type: "log", host: host.name, step: step.id, message }),
      };
      let planned: Change[] = [];
      try {
        const check = await step.check(ctx);
        planned = check.changes;
        if (check.fail) throw new Error(check.fail);
        if (check.skip) {
          done("skipped", [], check.skip);
          continue;
        }
        if (planned.length === 0) {
          done("ok", []);
          continue;
        }
        if (opts.dryRun) {
          done("changed", planned, "dry run: nothing was changed");
          continue;
        }
        await step.apply(ctx, planned);
        const after = await step.check(ctx);
        if (after.changes.length) {
          throw new Error(`still not in the desired state after applying: ${after.changes.map(describeChange).join("; ")}`);
        }
        done("changed", applied);
      } catch (err) {
        stoppedBy = step.id;
        const left = applied.length ? ` It left changed: ${applied.map(describeChange).join("; ")}.` : planned.length && !opts.dryRun ? " Nothing was changed by it." : "";
        const notDone = planned.filter((c) => !applied.includes(c));
        const pending = applied.length && notDone.length ? ` Not done: ${notDone.map(describeChange).join("; ")}.` : "";
        done("failed", applied, `${errorMessage(err).replace(/([^.])$/, "$1.")}${left}${pending}`);
      }
    }
  } finally {
    await remote.close().catch(() => undefined);
  }
  emit({ type: "host-end", host: host.name, report });
  return report;
}

export function anyFailed(report: ProvisionReport): boolean {
  return report.hosts.some((h) => h.steps.some((s) => s.status === "failed"));
}
