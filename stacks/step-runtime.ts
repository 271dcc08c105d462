// What a step resource's dynamic provider does, run in Pulumi's provider process: connect to the
// host over SSH (through its proxyJump hosts, with the stack's sudo password when its sudo asks
// for one: the same target and Remote as `labrig provision`), then check (the plan becomes the
// resource's `plan` input, so a preview lists it), apply and re-check, or tear down. esbuild
// bundles this file (bundle.ts) because the provider runs as text that Pulumi serialised, in
// another process and folder, where it can only load a file by its absolute path. Everything it
// needs comes in the resource's inputs and the provider's session (the sudo password from the
// stack's config); nothing is kept between calls.
//
// Agents join as `labrig provision` has them join: the dispatcher's URL and lab join token come in
// as inputs (the dispatcher-container resource's outputs), and a host not registered yet gets a
// single-use join token made for it at the dispatcher (join-tokens.ts) with the admin token that
// resource read back into LABRIG_HOME. That token goes only into the host's env file, never into
// the resource's state.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LabrigError } from "../core/errors.js";
import { type Change, describeChange } from "../provision/change.js";
import { hostSupport, readHostSystem } from "../provision/facts/host-system.js";
import type { HostConfig, Inventory } from "../provision/inventory.js";
import { slurmClusterFacts } from "../provision/slurm-cluster.js";
import { dispatcherJoinTokens, type JoinTokens, wouldMintToken } from "../provision/join-tokens.js";
import { applyChanges } from "../provision/ops.js";
import { SudoPasswordRequiredError } from "../provision/remote.js";
import { readSavedDispatcher } from "../provision/saved-dispatcher.js";
import { stepDecision } from "../provision/runner.js";
import { SshRemote, sshTarget } from "../provision/ssh-remote.js";
import type { CheckResult, Step, StepContext } from "../provision/step.js";
import { allSteps } from "../provision/steps/index.js";
import { type FoundFacts, type StepInputs, sudoPasswordConfigKey } from "./graph.js";
import { readFoundFacts } from "./found-facts.js";
import { leavesAfterDelete, teardownFor } from "./teardown.js";

/** What the provider keeps for its process: the sudo password from the stack's config (provider.ts). */
export interface ProviderSession {
  sudoPassword?: string;
}

/** How Pulumi hands a provider an input that is not known yet (during a preview): its unknown value. */
export const pulumiUnknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** What a dispatcher-container resource outputs for the agents that join it. */
export interface DispatcherOutputs {
  dispatcherUrl: string;
  joinToken: string;
}

/** A resource's state after create/update: its inputs, an empty plan, and what was found. */
export type StepOutputs = StepInputs & { plan: string[]; applied: string[]; found: FoundFacts; leavesOnDelete: string } & Partial<DispatcherOutputs>;

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
 * `mode` says whether the agent step may make a join token (apply) or only say it would (check).
 */
async function withContext<T>(
  inputs: StepInputs,
  session: ProviderSession,
  mode: "plan" | "apply",
  fn: (ctx: StepContext, step: Step, applied: Change[]) => Promise<T>,
): Promise<T> {
  const step = findStep(inputs.step);
  const dir = mkdtempSync(join(tmpdir(), "labrig-stack-secrets-"));
  const host = structuredClone(inputs.host);
  // The resource's host, and for a Slurm step the cluster's other hosts whose facts it reads.
  const connect = (h: HostConfig) =>
    new SshRemote(sshTarget(h), {
      knownHostsFile: inputs.knownHostsFile,
      onNotice: (m) => log(host.name, inputs.step, m),
      ...(session.sudoPassword !== undefined ? { sudoPassword: session.sudoPassword } : {}),
    });
  const remote = connect(host);
  try {
    const secretFile = (name: string, value: string) => {
      const file = join(dir, name);
      writeFileSync(file, `${value}\n`, { mode: 0o600 });
      return file;
    };
    if (host.backup && inputs.resticPassword !== undefined) host.backup.passwordFile = secretFile("restic-password", inputs.resticPassword);
    // While the dispatcher container is still to be created (a preview of a bare lab), its URL and token are unknown.
    const pending = inputs.dispatcherUrl === pulumiUnknown || inputs.joinToken === pulumiUnknown;
    const url = pending ? "(the URL of the dispatcher container, once it is up)" : (inputs.dispatcherUrl ?? inputs.lab.dispatcher?.url);
    const token = pending ? undefined : inputs.joinToken;
    const dispatcher = url !== undefined ? { ...inputs.lab.dispatcher, url, ...(token !== undefined ? { joinTokenFile: secretFile("join-token", token) } : {}) } : undefined;
    // One host's view of the lab, and for a Slurm step the cluster's other hosts, whose facts slurm.conf lists.
    const { scheduler, slurm } = inputs.lab;
    const inventory: Inventory = {
      file: inputs.inventoryFile,
      lab: { name: inputs.lab.name, scheduler: scheduler ?? "labrig", ...(slurm ? { slurm } : {}), ...(dispatcher ? { dispatcher } : {}) },
      hosts: [host, ...(inputs.slurmHosts ?? [])],
    };
    // The dispatcher-container step reaches Docker over its own SSH connection and pins keys there too.
    process.env.LABRIG_KNOWN_HOSTS ??= inputs.knownHostsFile;
    const system = await readHostSystem(remote);
    const applied: Change[] = [];
    const joinTokens: JoinTokens = pending ? tokenOfPendingDispatcher : dispatcherJoinTokens({ inventory, dryRun: mode === "plan" });
    const ctx: StepContext = {
      host,
      inventory,
      remote,
      system,
      assets: { ...(inputs.agentBundle ? { agentBundle: inputs.agentBundle } : {}), ...(inputs.nodeRuntime ? { nodeRuntime: inputs.nodeRuntime } : {}) },
      ...(inputs.step === "agent" ? { joinTokens } : {}),
      ...(scheduler === "slurm" ? { slurm: slurmClusterFacts({ inventory, connect }) } : {}),
      applied: (c) => applied.push(c),
      log: (m) => log(host.name, inputs.step, m),
    };
    return await fn(ctx, step, applied);
  } catch (err) {
    const sudo = err instanceof SudoPasswordRequiredError || (err as Error).cause instanceof SudoPasswordRequiredError;
    if (!sudo) throw err;
    throw new LabrigError(`${(err as Error).message.replace(/\.?$/, ".")} For the stack: pnpm run up --ask-sudo-pass, or keep it with: cd stacks && pulumi config set --secret ${sudoPasswordConfigKey}`, { cause: err });
  } finally {
    await remote.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The step's check after the host's system, as `labrig provision` decides: a system labrig does
 * not provision fails the check before anything is planned, and a step DSM owns is skipped there.
 */
async function checkOnHost(ctx: StepContext, step: Step): Promise<CheckResult> {
  const support = hostSupport(ctx.system!, ctx.host.roles);
  if (!support.supported) return { facts: {}, changes: [], fail: support.reason };
  const decision = stepDecision(step, ctx.host, ctx.system);
  if (!decision.run) return { facts: {}, changes: [], skip: decision.reason };
  return step.check(ctx);
}

/** A preview's stand-in while the dispatcher the agent joins does not exist yet. */
const tokenOfPendingDispatcher: JoinTokens = {
  forHost: async () => ({ kind: "would-mint", token: wouldMintToken, why: "a single-use join token from the dispatcher container this run brings up" }),
};

/** The URL and join token the dispatcher-container step read back into LABRIG_HOME, for the agents' inputs. */
export function readDispatcherOutputs(lab: string, env: NodeJS.ProcessEnv = process.env): DispatcherOutputs | undefined {
  const saved = readSavedDispatcher(lab, env);
  if (!saved) return undefined;
  try {
    const joinToken = readFileSync(saved.joinTokenFile, "utf8").trim();
    return joinToken ? { dispatcherUrl: saved.url, joinToken } : undefined;
  } catch {
    return undefined;
  }
}

function withoutProviderFields(inputs: StepInputs): StepInputs {
  const { plan: _plan, skipped: _skipped, ...rest } = inputs as StepInputs & Partial<StepOutputs>;
  const { applied: _a, found: _f, leavesOnDelete: _l, ...clean } = rest as Partial<StepOutputs> & StepInputs;
  // A dispatcher container's outputs are no inputs of its own (an agent's same-named fields are).
  if (clean.step === "dispatcher-container") {
    const { dispatcherUrl: _u, joinToken: _j, ...own } = clean;
    return own;
  }
  return clean;
}

/** Provider check: the step's check on the host; its changes become `plan`, a failure a check failure. */
export async function checkStep(news: StepInputs, session: ProviderSession = {}): Promise<CheckOutcome> {
  const inputs = withoutProviderFields(news);
  return withContext(inputs, session, "plan", async (ctx, step) => {
    const result = await checkOnHost(ctx, step);
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
export async function applyStep(news: StepInputs, session: ProviderSession = {}): Promise<StepOutputs> {
  const inputs = withoutProviderFields(news);
  return withContext(inputs, session, "apply", async (ctx, step, applied) => {
    let result: CheckResult = await checkOnHost(ctx, step);
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
    const outs = await outputsOf(ctx, inputs, result, applied);
    // Converged, the dispatcher container's step has saved its URL and tokens here: the agents' inputs.
    if (step.id === "dispatcher-container" && outs.joinToken === undefined) {
      throw new LabrigError(`${ctx.host.name}/dispatcher-container: the dispatcher is up, but its URL and join token are not saved under LABRIG_HOME (labs/${ctx.inventory.lab.name}), and the agents need them`);
    }
    return outs;
  });
}

/** Provider read (refresh): what the host has now, with the plan that would bring it back. */
export async function readStep(props: StepOutputs, session: ProviderSession = {}): Promise<StepOutputs> {
  const inputs = withoutProviderFields(props);
  return withContext(inputs, session, "plan", async (ctx, step, applied) => {
    const result = await checkOnHost(ctx, step);
    return { ...(await outputsOf(ctx, inputs, result, applied)), plan: result.changes.map(describeChange) };
  });
}

/** Provider delete: the step's safe reverse; says what it leaves. */
export async function deleteStep(props: StepOutputs, session: ProviderSession = {}): Promise<{ removed: string[]; leaves: string }> {
  const inputs = withoutProviderFields(props);
  return withContext(inputs, session, "plan", async (ctx, step, applied) => {
    const decision = stepDecision(step, ctx.host, ctx.system);
    if (!decision.run) return { removed: [], leaves: `everything: the step did not run here (${decision.reason})` };
    const t = await teardownFor(inputs.step, ctx);
    await applyChanges(ctx, t.changes, { runs: t.runs });
    ctx.log(`removed: ${applied.map(describeChange).join("; ") || "nothing"}; left in place: ${t.leaves}`);
    return { removed: applied.map(describeChange), leaves: t.leaves };
  });
}

async function outputsOf(ctx: StepContext, inputs: StepInputs, result: CheckResult, applied: Change[]): Promise<StepOutputs> {
  const dataDir = typeof result.facts.dataDir === "string" ? result.facts.dataDir : undefined;
  return {
    ...inputs,
    plan: [],
    ...(result.skip ? { skipped: result.skip } : {}),
    applied: applied.map(describeChange),
    found: await readFoundFacts(inputs.step, ctx.remote, result.facts),
    leavesOnDelete: leavesAfterDelete(inputs.step, ctx.host, { dataDir }),
    ...(inputs.step === "dispatcher-container" ? (readDispatcherOutputs(ctx.inventory.lab.name) ?? {}) : {}),
  };
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === "object" && !Array.isArray(val) ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : val,
  );
}
