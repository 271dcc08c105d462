// What a step resource's dynamic provider does, run in Pulumi's provider process: connect to the
// host over SSH, then check (the plan becomes the resource's `plan` input, so a preview lists it),
// apply and re-check, or tear down. esbuild bundles this file (bundle.ts) because the provider runs
// as text that Pulumi serialised, in another process and folder, where it can only load a file by
// its absolute path. Everything it needs comes in the resource's inputs; nothing is kept between calls.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LabrigError } from "../core/errors.js";
import { type Change, describeChange } from "../provision/change.js";
import type { Inventory } from "../provision/inventory.js";
import { applyChanges } from "../provision/ops.js";
import { SshRemote } from "../provision/ssh-remote.js";
import type { CheckResult, Step, StepContext } from "../provision/step.js";
import { allSteps } from "../provision/steps/index.js";
import type { FoundFacts, StepInputs } from "./graph.js";
import { readFoundFacts } from "./found-facts.js";
import { leavesAfterDelete, teardownFor } from "./teardown.js";

/** A resource's state after create/update: its inputs, an empty plan, and what was found. */
export type StepOutputs = StepInputs & { plan: string[]; applied: string[]; found: FoundFacts; leavesOnDelete: string };

export interface CheckOutcome {
  inputs: StepInputs;
  failures: { property: string; reason: string }[];
}

export interface DiffOutcome {
  changes: boolean;
  replaces: string[];
}

function log(host: string, step: string, message: string) {
  process.stderr.write(`${host}/${step}: ${message}\n`);
}

function findStep(id: string): Step {
  const step = allSteps.find((s) => s.id === id);
  if (!step) throw new LabrigError(`the stack names step '${id}', which this labrig does not have (steps: ${allSteps.map((s) => s.id).join(", ")})`);
  return step;
}

/**
 * Runs `fn` with a step context for the resource's host: secrets written to a private temporary
 * folder for the length of the call (the steps read the join token and restic password from files).
 */
async function withContext<T>(inputs: StepInputs, fn: (ctx: StepContext, step: Step, applied: Change[]) => Promise<T>): Promise<T> {
  const step = findStep(inputs.step);
  const dir = mkdtempSync(join(tmpdir(), "labrig-stack-secrets-"));
  const host = structuredClone(inputs.host);
  const remote = new SshRemote(
    { host: host.name, address: host.address, port: host.port, user: host.user, identityFile: host.identityFile },
    { knownHostsFile: inputs.knownHostsFile, onNotice: (m) => log(host.name, inputs.step, m) },
  );
  try {
    const secretFile = (name: string, value: string) => {
      const file = join(dir, name);
      writeFileSync(file, `${value}\n`, { mode: 0o600 });
      return file;
    };
    if (host.backup && inputs.resticPassword !== undefined) host.backup.passwordFile = secretFile("restic-password", inputs.resticPassword);
    const dispatcher = inputs.lab.dispatcher && { ...inputs.lab.dispatcher, ...(inputs.joinToken !== undefined ? { joinTokenFile: secretFile("join-token", inputs.joinToken) } : {}) };
    // The stacks do not provision Slurm (yet): their hosts run under labrig's own queue.
    const inventory: Inventory = { file: inputs.inventoryFile, lab: { name: inputs.lab.name, scheduler: "labrig", ...(dispatcher ? { dispatcher } : {}) }, hosts: [host] };
    // The dispatcher-container step reaches Docker over its own SSH connection and pins keys there too.
    process.env.LABRIG_KNOWN_HOSTS ??= inputs.knownHostsFile;
    const applied: Change[] = [];
    const ctx: StepContext = {
      host,
      inventory,
      remote,
      assets: inputs.agentBundle ? { agentBundle: inputs.agentBundle } : {},
      applied: (c) => applied.push(c),
      log: (m) => log(host.name, inputs.step, m),
    };
    return await fn(ctx, step, applied);
  } finally {
    await remote.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function withoutProviderFields(inputs: StepInputs): StepInputs {
  const { plan: _plan, skipped: _skipped, ...rest } = inputs as StepInputs & Partial<StepOutputs>;
  const { applied: _a, found: _f, leavesOnDelete: _l, ...clean } = rest as Partial<StepOutputs> & StepInputs;
  return clean;
}

/** Provider check: the step's check on the host; its changes become `plan`, a failure a check failure. */
export async function checkStep(news: StepInputs): Promise<CheckOutcome> {
  const inputs = withoutProviderFields(news);
  return withContext(inputs, async (ctx, step) => {
    const result = await step.check(ctx);
    if (result.fail) return { inputs, failures: [{ property: "host", reason: `${inputs.host.name}/${inputs.step}: ${result.fail}` }] };
    return { inputs: { ...inputs, plan: result.changes.map(describeChange), ...(result.skip ? { skipped: result.skip } : {}) }, failures: [] };
  });
}

/**
 * Provider diff: an update when the check planned changes or the declared inputs changed; never a
 * replacement. The serialised provider itself (`__provider`) is no input: a new labrig is no change.
 */
export function diffStep(olds: Partial<StepOutputs>, news: StepInputs): DiffOutcome {
  const planned = (news.plan ?? []).length > 0;
  const declared = (v: StepInputs) => {
    const { __provider: _p, ...rest } = withoutProviderFields(v) as StepInputs & { __provider?: unknown };
    return stableJson(rest);
  };
  const changedInputs = declared(olds as StepInputs) !== declared(news);
  return { changes: planned || changedInputs, replaces: [] };
}

/** Provider create and update: check, apply exactly those changes, check again (it must plan nothing). */
export async function applyStep(news: StepInputs): Promise<StepOutputs> {
  const inputs = withoutProviderFields(news);
  return withContext(inputs, async (ctx, step, applied) => {
    let result: CheckResult = await step.check(ctx);
    if (result.fail) throw new LabrigError(`${ctx.host.name}/${step.id}: ${result.fail}`);
    if (!result.skip && result.changes.length) {
      try {
        await step.apply(ctx, result.changes);
        result = await step.check(ctx);
        if (result.changes.length) throw new LabrigError(`still not in the desired state after applying: ${result.changes.map(describeChange).join("; ")}`);
      } catch (err) {
        const left = applied.length ? ` It left changed: ${applied.map(describeChange).join("; ")}.` : " Nothing was changed.";
        throw new LabrigError(`${ctx.host.name}/${step.id}: ${(err as Error).message}.${left}`.replace(/\.\./g, "."), { cause: err });
      }
    }
    return outputsOf(ctx, inputs, result, applied);
  });
}

/** Provider read (refresh): what the host has now, with the plan that would bring it back. */
export async function readStep(props: StepOutputs): Promise<StepOutputs> {
  const inputs = withoutProviderFields(props);
  return withContext(inputs, async (ctx, step, applied) => {
    const result = await step.check(ctx);
    return { ...(await outputsOf(ctx, inputs, result, applied)), plan: result.changes.map(describeChange) };
  });
}

/** Provider delete: the step's safe reverse; says what it leaves. */
export async function deleteStep(props: StepOutputs): Promise<{ removed: string[]; leaves: string }> {
  const inputs = withoutProviderFields(props);
  return withContext(inputs, async (ctx, _step, applied) => {
    const t = await teardownFor(inputs.step, ctx);
    await applyChanges(ctx, t.changes, { runs: t.runs });
    ctx.log(`removed: ${applied.map(describeChange).join("; ") || "nothing"}; left in place: ${t.leaves}`);
    return { removed: applied.map(describeChange), leaves: t.leaves };
  });
}

async function outputsOf(ctx: StepContext, inputs: StepInputs, result: CheckResult, applied: Change[]): Promise<StepOutputs> {
  return {
    ...inputs,
    plan: [],
    ...(result.skip ? { skipped: result.skip } : {}),
    applied: applied.map(describeChange),
    found: await readFoundFacts(inputs.step, ctx.remote, result.facts),
    leavesOnDelete: leavesAfterDelete(inputs.step, ctx.host),
  };
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === "object" && !Array.isArray(val) ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : val,
  );
}
