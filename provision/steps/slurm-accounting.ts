// Step `slurm-accounting`: Slurm's accounting on the controller when lab.slurm.accounting is on:
// Debian's MariaDB with the accounting database and its `slurm` user, slurmdbd under its
// slurmdbd.conf (0600 slurm:slurm), the cluster registered, and the controller's SSH user made a
// Slurm operator so that the dispatcher (which logs in as that user) can add an account for each
// person whose job it submits. It runs before slurm-controller, whose slurmctld then stores jobs
// there and ranks them by fair share between accounts.
//
// The database password is derived from the cluster's munge key (read back to this machine by the
// munge step), so it is the same on every run, kept nowhere else, and in no plan or log: the file's
// change carries only its SHA-256 and the SQL reaches mysql on its stdin.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { LabrigError } from "../../core/errors.js";
import { shq } from "../../core/shell.js";
import type { Change } from "../change.js";
import { type FileState, fileStates } from "../facts/files.js";
import { installedPackages, missingPackages } from "../facts/packages.js";
import { type UnitState, unitStates } from "../facts/systemd.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import type { Step, StepContext } from "../step.js";
import { savedMungeKeyFile } from "./munge.js";
import { renderSlurmConf, renderSlurmdbdConf, slurmAccountingDatabase, slurmConfDir, type SlurmClusterSpec } from "./slurm-conf.js";
import { clusterSpecOf, waitForDaemon } from "./slurm-daemon.js";

export const slurmdbdConfPath = `${slurmConfDir}/slurmdbd.conf`;
const packages = ["mariadb-server", "slurmdbd", "slurm-client"];

const createDatabase = "create the accounting database and its slurm user in MariaDB (with the password slurmdbd.conf holds)";
const registerCluster = (name: string) => `register cluster ${name} in the accounting database`;
const makeOperator = (user: string) => `make ${user} a Slurm operator (the dispatcher adds each person's account as this user)`;
const noKeyYet = "write slurmdbd.conf once the cluster's munge key is read back (its database password derives from it)";

/** The accounting database's password: from the cluster's munge key, never stored apart from slurmdbd.conf. */
export function databasePassword(mungeKey: Buffer): string {
  return createHash("sha256").update("labrig slurmdbd database password\0").update(mungeKey).digest("base64url");
}

export interface SlurmAccountingFacts {
  clusterName: string;
  /** The controller's SSH user: the dispatcher's. */
  user: string;
  missing: string[];
  mariadb: UnitState;
  slurmdbd: UnitState;
  conf: FileState;
  /** slurmdbd.conf as it should be; undefined while the munge key is not on this machine yet. */
  desiredConf?: DesiredFile;
  /** Whether MariaDB has the slurm user (false when MariaDB is not running). */
  databaseUser: boolean;
  /** Clusters slurmdbd knows, and the operators (undefined when slurmdbd is not running). */
  clusters?: string[];
  operators?: string[];
}

/** The step's plan, pure: packages, MariaDB up, the database and user, slurmdbd.conf, slurmdbd up, the cluster and the operator. */
export function planSlurmAccounting(f: SlurmAccountingFacts): Change[] {
  const changes: Change[] = [];
  const after = f.missing.length ? "after install" : undefined;
  if (f.missing.length) changes.push({ kind: "install-packages", packages: f.missing, reason: "not installed" });
  if (f.mariadb.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: "mariadb.service", reason: after ?? `is ${f.mariadb.enabled}` });
  if (f.mariadb.active !== "active") changes.push({ kind: "start-unit", unit: "mariadb.service", reason: after ?? `is ${f.mariadb.active}` });
  const write = f.desiredConf ? planFile(f.conf, f.desiredConf, "slurmdbd.conf") : undefined;
  const confChanges = f.desiredConf ? (write ? [write] : []) : [{ kind: "run", what: noKeyYet, reason: "the munge step has not read the key back yet" } as Change];
  const passwordMayChange = confChanges.some((c) => c.kind === "write-file" || c.kind === "run");
  if (!f.databaseUser || passwordMayChange) changes.push({ kind: "run", what: createDatabase, reason: f.databaseUser ? "slurmdbd.conf's password is new" : "no slurm user in MariaDB yet" });
  changes.push(...confChanges);
  if (f.slurmdbd.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: "slurmdbd.service", reason: after ?? `is ${f.slurmdbd.enabled}` });
  if (f.slurmdbd.active !== "active") changes.push({ kind: "start-unit", unit: "slurmdbd.service", reason: after ?? `is ${f.slurmdbd.active}` });
  else if (passwordMayChange) changes.push({ kind: "restart-unit", unit: "slurmdbd.service", reason: "its configuration changed" });
  if (!f.clusters?.includes(f.clusterName)) changes.push({ kind: "run", what: registerCluster(f.clusterName), reason: f.clusters ? "not registered" : "slurmdbd is not running yet" });
  if (!f.operators?.includes(f.user)) changes.push({ kind: "run", what: makeOperator(f.user), reason: f.operators ? "not an operator" : "slurmdbd is not running yet" });
  return changes;
}

function desiredConf(ctx: StepContext, spec: SlurmClusterSpec): DesiredFile | undefined {
  const keyFile = savedMungeKeyFile(ctx.inventory.lab.name);
  if (!existsSync(keyFile)) return undefined;
  return { path: slurmdbdConfPath, content: renderSlurmdbdConf(spec, databasePassword(readFileSync(keyFile))), mode: 0o600, owner: "slurm", group: "slurm" };
}

/** The users sacctmgr lists (`user|adminlevel`) as Operator or Administrator. */
export function operatorsOf(lines: string[] | undefined): string[] | undefined {
  return lines?.map((l) => l.split("|")).filter(([, level]) => /^(operator|administrator)$/i.test(level ?? "")).map(([user]) => user!);
}

/**
 * sacctmgr under the cluster's slurm.conf as rendered, handed to it on stdin into a file of its own:
 * this step runs before slurm-controller installs /etc/slurm/slurm.conf, and sacctmgr finds slurmdbd there.
 */
const sacctmgrCommand = (args: string) => `c=$(mktemp) && cat > "$c" && SLURM_CONF="$c" sacctmgr ${args}; r=$?; rm -f "$c"; exit $r`;

async function sacctmgr(ctx: StepContext, spec: SlurmClusterSpec, args: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return ctx.remote.exec(sacctmgrCommand(args), { sudo: true, input: renderSlurmConf(spec), timeoutMs: 60_000 });
}

/** Lines of sacctmgr's answer, or undefined when it failed (slurmdbd is not up). */
async function listed(ctx: StepContext, spec: SlurmClusterSpec, args: string): Promise<string[] | undefined> {
  const r = await sacctmgr(ctx, spec, args);
  return r.exitCode === 0 ? r.stdout.split("\n").map((l) => l.trim()).filter(Boolean) : undefined;
}

/** Waits until slurmdbd answers sacctmgr, else throws with its journal's end. */
const slurmdbdReady = (ctx: StepContext, spec: SlurmClusterSpec) =>
  waitForDaemon(ctx, "slurmdbd.service", sacctmgrCommand("-n show cluster"), "slurmdbd did not answer `sacctmgr show cluster`", 60_000, renderSlurmConf(spec));

export const slurmAccountingStep: Step = {
  id: "slurm-accounting",
  description: "Slurm accounting on the controller: MariaDB, slurmdbd, the cluster registered, the dispatcher's user an operator",
  roles: ["slurm-controller"],
  async check(ctx) {
    const { remote, inventory, host } = ctx;
    if (inventory.lab.scheduler !== "slurm") return { facts: {}, changes: [], skip: "lab.scheduler is labrig" };
    if (!inventory.lab.slurm?.accounting) return { facts: {}, changes: [], skip: "lab.slurm.accounting is off" };
    const cluster = await clusterSpecOf(ctx);
    const [installed, units, states] = await Promise.all([installedPackages(remote, packages), unitStates(remote, ["mariadb.service", "slurmdbd.service"]), fileStates(remote, [slurmdbdConfPath])]);
    const mariadb = units.get("mariadb.service")!;
    const slurmdbd = units.get("slurmdbd.service")!;
    const users = mariadb.active === "active" ? await remote.exec("mysql -N -B -e \"SELECT User FROM mysql.user WHERE User='slurm' AND Host='localhost'\"", { sudo: true, timeoutMs: 30_000 }) : undefined;
    const up = slurmdbd.active === "active";
    const [clusters, operators] = up
      ? await Promise.all([listed(ctx, cluster, "-n -P show cluster format=cluster"), listed(ctx, cluster, "-n -P show user format=user,adminlevel").then(operatorsOf)])
      : [undefined, undefined];
    const desired = desiredConf(ctx, cluster);
    const facts: SlurmAccountingFacts = {
      clusterName: cluster.clusterName,
      user: host.user,
      missing: missingPackages(installed),
      mariadb,
      slurmdbd,
      conf: states.get(slurmdbdConfPath)!,
      ...(desired ? { desiredConf: desired } : {}),
      databaseUser: users?.exitCode === 0 && users.stdout.split("\n").some((l) => l.trim() === "slurm"),
      ...(clusters ? { clusters } : {}),
      ...(operators ? { operators } : {}),
    };
    const { desiredConf: _secret, ...shown } = facts;
    return { facts: { ...shown, installed: Object.fromEntries(installed) }, changes: planSlurmAccounting(facts) };
  },
  async apply(ctx, changes) {
    const cluster = await clusterSpecOf(ctx);
    const conf = desiredConf(ctx, cluster);
    const password = () => {
      if (!conf) throw new LabrigError(`no munge key for lab ${ctx.inventory.lab.name} at ${savedMungeKeyFile(ctx.inventory.lab.name)}: the munge step reads it back from this controller first (run with --only including munge)`);
      return databasePassword(readFileSync(savedMungeKeyFile(ctx.inventory.lab.name)));
    };
    await applyChanges(ctx, changes, {
      files: new Map(conf ? [[conf.path, conf]] : []),
      runs: {
        [noKeyYet]: async () => void password(),
        [createDatabase]: async () => {
          const sql = [
            `CREATE DATABASE IF NOT EXISTS ${slurmAccountingDatabase};`,
            `CREATE USER IF NOT EXISTS 'slurm'@'localhost';`,
            `ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${password()}';`,
            `GRANT ALL ON ${slurmAccountingDatabase}.* TO 'slurm'@'localhost';`,
            "FLUSH PRIVILEGES;",
          ].join("\n");
          await ctx.remote.run("mysql -B", { sudo: true, input: sql, timeoutMs: 60_000 });
        },
        [registerCluster(cluster.clusterName)]: async () => {
          await slurmdbdReady(ctx, cluster);
          const r = await sacctmgr(ctx, cluster, `-i add cluster ${shq(cluster.clusterName)}`);
          if (r.exitCode !== 0 && !(await listed(ctx, cluster, "-n -P show cluster format=cluster"))?.includes(cluster.clusterName)) {
            throw new LabrigError(`on ${ctx.host.name}: sacctmgr add cluster ${cluster.clusterName} failed: ${(r.stderr || r.stdout).trim()}`);
          }
        },
        [makeOperator(ctx.host.user)]: async () => {
          await slurmdbdReady(ctx, cluster);
          const u = shq(ctx.host.user);
          const added = await sacctmgr(ctx, cluster, `-i add user ${u} account=root adminlevel=operator`);
          if (added.exitCode !== 0) {
            const r = await sacctmgr(ctx, cluster, `-i modify user where name=${u} set adminlevel=operator`);
            if (r.exitCode !== 0 && !operatorsOf(await listed(ctx, cluster, "-n -P show user format=user,adminlevel"))?.includes(ctx.host.user)) {
              throw new LabrigError(`on ${ctx.host.name}: could not make ${ctx.host.user} a Slurm operator: ${(added.stderr || added.stdout).trim()}; ${(r.stderr || r.stdout).trim()}`);
            }
          }
        },
      },
    });
    if (changes.some((c) => (c.kind === "start-unit" || c.kind === "restart-unit") && c.unit === "slurmdbd.service")) await slurmdbdReady(ctx, cluster);
  },
};
