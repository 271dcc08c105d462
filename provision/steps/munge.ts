// Step `munge`: MUNGE, which Slurm authenticates with, with one key for the whole cluster. On the
// controller (role slurm-controller) the key is the one Debian's package made there (made with
// mungekey if missing), 0400 munge:munge, and is read back to this machine into
// LABRIG_HOME/labs/<lab>/munge.key (0600); on every compute node (role gpu) that copy is written
// to /etc/munge/munge.key, 0400 munge:munge, and munged restarted. The runner provisions the
// controller before the nodes, so `--host all` needs no second run. The key's bytes are never
// logged or put in a change (a write-file change carries only its SHA-256).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { LabrigError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { type FileState, fileStates } from "../facts/files.js";
import { installedPackages, missingPackages } from "../facts/packages.js";
import { type UnitState, unitStates } from "../facts/systemd.js";
import type { Inventory } from "../inventory.js";
import { applyChanges, type DesiredFile, planFile, sha256 } from "../ops.js";
import { savedDispatcherDir } from "../saved-dispatcher.js";
import type { Step, StepContext } from "../step.js";

export const mungeKeyPath = "/etc/munge/munge.key";

/** Where this machine keeps the lab's munge key once the controller's step read it back. */
export function savedMungeKeyFile(lab: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(savedDispatcherDir(lab, env), "munge.key");
}

function controllerOf(inv: Inventory): string {
  return inv.hosts.find((h) => h.roles.includes("slurm-controller"))?.name ?? "(no slurm-controller host)";
}

const secureKey = "make the munge key 0400 munge:munge, creating it with mungekey if missing";
const readBack = (file: string) => `read the munge key back to ${file} (0600)`;
const noKeyYet = "write the munge key read back from the controller";

export const mungeStep: Step = {
  id: "munge",
  description: "MUNGE for Slurm: one key, made on the controller, read back here, the same on every node",
  roles: ["slurm-controller", "gpu"],
  async check(ctx) {
    const { remote, host, inventory } = ctx;
    if (inventory.lab.scheduler !== "slurm") return { facts: {}, changes: [], skip: "lab.scheduler is labrig" };
    const isController = host.roles.includes("slurm-controller");
    const [installed, states, units] = await Promise.all([installedPackages(remote, ["munge"]), fileStates(remote, [mungeKeyPath]), unitStates(remote, ["munge.service"])]);
    const missing = missingPackages(installed);
    const key = states.get(mungeKeyPath)!;
    const unit = units.get("munge.service")!;
    const localFile = savedMungeKeyFile(inventory.lab.name);
    const localKey = existsSync(localFile) ? readFileSync(localFile) : undefined;
    const localSha = localKey && sha256(localKey);
    const changes = planMunge({ isController, controller: controllerOf(inventory), missing, key, unit, localFile, localKey });
    return { facts: { role: isController ? "controller" : "node", installed: Object.fromEntries(installed), keySha256: key.sha256 ?? null, savedKey: localSha ? localFile : null, unit }, changes };
  },
  async apply(ctx, changes) {
    const local = savedMungeKeyFile(ctx.inventory.lab.name);
    const files = new Map<string, DesiredFile>();
    if (existsSync(local)) files.set(mungeKeyPath, nodeKeyFile(readFileSync(local)));
    await applyChanges(ctx, changes, {
      files,
      runs: {
        [noKeyYet]: async () => {
          throw new LabrigError(`no munge key for lab ${ctx.inventory.lab.name} at ${local}: provision the Slurm controller first (labrig provision --host ${controllerOf(ctx.inventory)}; --host all does it first)`);
        },
        [secureKey]: async () => {
          await ctx.remote.run(`test -s ${mungeKeyPath} || mungekey --create --keyfile=${mungeKeyPath}; chown munge:munge ${mungeKeyPath} && chmod 0400 ${mungeKeyPath}`, { sudo: true });
        },
        [readBack(local)]: async () => saveKey(ctx, local),
      },
    });
  },
};

export interface MungeFacts {
  isController: boolean;
  /** The controller's host name, for messages. */
  controller: string;
  /** munge, when not installed. */
  missing: string[];
  key: FileState;
  unit: UnitState;
  localFile: string;
  /** The copy on this machine (read back from the controller), if any. */
  localKey?: Buffer;
}

/** The munge step's plan, pure: the controller keeps its key and this machine copies it; a node gets this machine's copy. */
export function planMunge(f: MungeFacts): Change[] {
  const { key, unit, missing } = f;
  const changes: Change[] = [];
  let keyChanged = false;
  if (f.isController) {
    if (missing.length) changes.push({ kind: "install-packages", packages: missing, reason: "not installed (its package makes a key)" });
    if (missing.length || !key.exists || key.mode !== "0400" || key.owner !== "munge" || key.group !== "munge") {
      changes.push({ kind: "run", what: secureKey, reason: key.exists ? `is ${key.mode} ${key.owner}:${key.group}` : "no key yet" });
    }
    const localSha = f.localKey && sha256(f.localKey);
    if (missing.length || !key.exists || localSha !== key.sha256) {
      changes.push({ kind: "run", what: readBack(f.localFile), reason: localSha ? "this machine's copy differs from the controller's" : "not read back yet" });
    }
  } else {
    // A dry run of a bare lab plans this before the controller's key exists; a real run fails here, before installing.
    if (!f.localKey) changes.push({ kind: "run", what: noKeyYet, reason: `not read back yet from ${f.controller} (${f.localFile})` });
    if (missing.length) changes.push({ kind: "install-packages", packages: missing, reason: "not installed" });
    const write = f.localKey && planFile(key, nodeKeyFile(f.localKey), "munge key");
    if (write) changes.push(write.kind === "write-file" ? { ...write, reason: key.exists ? "differs from the controller's" : "missing" } : write);
    keyChanged = !f.localKey || write?.kind === "write-file";
  }
  if (missing.length || unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: "munge.service", reason: missing.length ? "after install" : `is ${unit.enabled}` });
  // A node's munged, started by the package with a key of its own, is restarted with the cluster's.
  if (keyChanged) changes.push({ kind: "restart-unit", unit: "munge.service", reason: "to use the cluster's key" });
  else if (missing.length || unit.active !== "active") changes.push({ kind: "start-unit", unit: "munge.service", reason: missing.length ? "after install" : `is ${unit.active}` });
  return changes;
}

function nodeKeyFile(content: Buffer): DesiredFile {
  return { path: mungeKeyPath, content, mode: 0o400, owner: "munge", group: "munge" };
}

async function saveKey(ctx: StepContext, local: string): Promise<void> {
  const key = await ctx.remote.readFile(mungeKeyPath);
  if (!key?.length) throw new LabrigError(`on ${ctx.host.name}: ${mungeKeyPath} is missing or empty after munge was installed`);
  mkdirSync(dirname(local), { recursive: true, mode: 0o700 });
  writeFileSync(local, key, { mode: 0o600 });
  chmodSync(local, 0o600);
}
