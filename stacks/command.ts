// What `pnpm preview`, `pnpm run up` and `pnpm destroy` do: run the program in stacks/ through
// Pulumi's Automation API (LocalWorkspace) with the state in a local file backend under
// LABRIG_HOME and secrets encrypted by a passphrase, so no Pulumi Cloud account is needed. The
// stack's config is set from the flags and the inventory; the secrets too, from the inventory's
// files, when the stack has none yet. With --ask-sudo-pass the sudo password is asked once and set
// as the secret labrig:sudoPassword for this run only (removed after it, unless the stack already
// kept one). Pulumi's own progress streams to stdout as it prints it.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { labrigHome } from "../core/config.js";
import { errorMessage, InputError, LabrigError } from "../core/errors.js";
import { type HostConfig, type Inventory, loadInventory, readJoinToken, selectHosts } from "../provision/inventory.js";
import { allSteps } from "../provision/steps/index.js";
import { neededSecrets, type PlannedResource, planLab, sudoPasswordConfigKey } from "./graph.js";
import { findPulumiCli, missingCliExitCode, PulumiCliMissingError } from "./pulumi-cli.js";

export type StackAction = "preview" | "up" | "destroy";

export interface StackCommandOptions {
  stack?: string;
  inventory: string;
  host?: string;
  knownHosts?: string;
  yes?: boolean;
  /** --ask-sudo-pass: asked once, after the inventory and flags are checked. */
  askSudoPassword?: () => Promise<string>;
}

export const projectName = "labrig";
const projectDir = resolve(import.meta.dirname);

/** Where a lab's Pulumi state and passphrase live on this machine. */
export function pulumiPaths(env: NodeJS.ProcessEnv = process.env) {
  const dir = join(labrigHome(env), "pulumi");
  return { dir, backend: join(dir, "state"), passphraseFile: join(dir, "passphrase") };
}

/** The URNs of one host's resources (its component and its steps), for `--host`. */
export function hostUrns(stack: string, resources: PlannedResource[], host: string): string[] {
  const parent = `urn:pulumi:${stack}::${projectName}::labrig:host:Host`;
  return [`${parent}::${host}`, ...resources.filter((r) => r.host === host).map((r) => `${parent}$pulumi-nodejs:dynamic/host:Step::${r.name}`)];
}

/** Runs the action and returns the exit status (0, 1 on failure, 2 without the Pulumi CLI). */
export async function runStackCommand(action: StackAction, opts: StackCommandOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const cli = findPulumiCli(env);
  if (!cli) {
    process.stderr.write(`labrig: ${new PulumiCliMissingError(action === "up" ? "run up" : action).message}\n`);
    return missingCliExitCode;
  }
  const inventory = loadInventory(resolve(opts.inventory));
  const targets = opts.host ? selectHosts(inventory, opts.host) : undefined;
  if (action === "destroy" && !opts.yes) {
    throw new InputError("--yes", `destroy stops labrig's agents, timers, firewall rules and dispatcher container on ${targets ? targets.map((h) => h.name).join(", ") : "every host"}; run pnpm preview first, then again with --yes`);
  }
  const stackName = opts.stack ?? inventory.lab.name;
  const resources = planLab(inventory, allSteps);
  const sudoPassword = await opts.askSudoPassword?.();

  const { LocalWorkspace, PulumiCommand } = await import("@pulumi/pulumi/automation/index.js");
  const paths = pulumiPaths(env);
  mkdirSync(paths.backend, { recursive: true, mode: 0o700 });
  const envVars: Record<string, string> = { PULUMI_BACKEND_URL: `file://${paths.backend}`, PULUMI_SKIP_UPDATE_CHECK: "true" };
  if (!env.PULUMI_CONFIG_PASSPHRASE && !env.PULUMI_CONFIG_PASSPHRASE_FILE) {
    if (!existsSync(paths.passphraseFile)) writeFileSync(paths.passphraseFile, randomBytes(24).toString("base64url") + "\n", { mode: 0o600 });
    envVars.PULUMI_CONFIG_PASSPHRASE_FILE = paths.passphraseFile;
  }
  const pulumiCommand = await PulumiCommand.get({ root: resolve(cli, "../..") }).catch(() => PulumiCommand.get());
  const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir: projectDir }, { workDir: projectDir, envVars, secretsProvider: "passphrase", pulumiCommand });

  await stack.setConfig("labrig:inventory", { value: inventory.file });
  if (opts.knownHosts) await stack.setConfig("labrig:knownHosts", { value: resolve(opts.knownHosts) });
  const config = await stack.getAllConfig();
  for (const [key, read] of secretSources(inventory, resources)) {
    if (!config[key]) await stack.setConfig(key, { value: read(), secret: true });
  }
  const sudoPasswordKept = config[sudoPasswordConfigKey] !== undefined;
  if (sudoPassword !== undefined) await stack.setConfig(sudoPasswordConfigKey, { value: sudoPassword, secret: true });

  const target = targets?.flatMap((h) => hostUrns(stackName, resources, h.name));
  const common = { onOutput: (out: string) => process.stdout.write(out), color: "auto" as const, ...(target ? { target, targetDependents: true } : {}) };
  try {
    if (action === "preview") await stack.preview({ ...common, diff: true });
    else if (action === "up") await stack.up({ ...common, diff: true });
    else await stack.destroy(common);
  } catch (err) {
    process.stderr.write(`labrig: pulumi ${action === "up" ? "up" : action} on stack ${stackName} failed: ${firstLines(errorMessage(err))}\n`);
    return 1;
  } finally {
    if (sudoPassword !== undefined && !sudoPasswordKept) await stack.removeConfig(sudoPasswordConfigKey);
  }
  if (action !== "preview") process.stdout.write(`state: ${paths.backend} (stack ${stackName}); secrets are encrypted with the passphrase in ${envVars.PULUMI_CONFIG_PASSPHRASE_FILE ?? "PULUMI_CONFIG_PASSPHRASE(_FILE)"}\n`);
  return 0;
}

/** For each secret a declared step needs, where the inventory keeps it (as `pnpm provision` reads it). */
function secretSources(inventory: Inventory, resources: PlannedResource[]): [string, () => string][] {
  const out: [string, () => string][] = [];
  // Agents joining a declared dispatcher container take its join token from that resource instead.
  if (neededSecrets(resources).includes("joinToken")) out.push(["labrig:joinToken", () => readJoinToken(inventory)]);
  const withBackup = inventory.hosts.filter((h) => resources.some((r) => r.host === h.name && r.step === "backup-timer"));
  if (withBackup.length) out.push(["labrig:resticPassword", () => readResticPassword(inventory, withBackup)]);
  return out;
}

/** The stack holds one restic password: the hosts' password files must agree. */
function readResticPassword(inventory: Inventory, hosts: HostConfig[]): string {
  const values = new Map<string, string>();
  for (const h of hosts) {
    const file = h.backup!.passwordFile;
    try {
      values.set(file, readFileSync(file, "utf8").trim());
    } catch (err) {
      throw new InputError(`${inventory.file}: host '${h.name}', field 'backup.passwordFile'`, `cannot read the restic password from ${file}, or set it with: pulumi config set --secret labrig:resticPassword`, { cause: err });
    }
  }
  if (new Set(values.values()).size > 1) throw new LabrigError(`the hosts' backup.passwordFile files (${[...values.keys()].join(", ")}) hold different passwords; a stack keeps one resticPassword`);
  return [...values.values()][0]!;
}

function firstLines(text: string): string {
  return text.split("\n").filter((l) => l.trim()).slice(0, 6).join("\n");
}
