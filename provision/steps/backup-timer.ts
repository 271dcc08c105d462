// Step `backup-timer`: nightly restic backups, labrig-backup.service run by labrig-backup.timer at
// the inventory's schedule, in one of two kinds:
//   - on a host with role dispatcher, the service runs `labrig backup` inside the dispatcher
//     container (`docker exec`): an online copy of its SQLite database, never the live database and
//     WAL files mid-write, then restic with the image's own restic. The password lives in the
//     container's config folder (<dataDir>/config/restic-password, 0400, the container's user;
//     /etc/labrig/restic-password inside it) and /etc/labrig/backup.env (0600 root) names the
//     repository and that file as the container sees them; it goes in with `docker exec --env-file`,
//     so neither is on a command line;
//   - on any other host, restic on the host over `backup.paths`, the password in
//     /etc/labrig/restic-password (0600 root).
// On a Synology (DSM has no systemd timers) the first kind has no units: the dispatcher container
// keeps the schedule itself (dispatcher-container sets LABRIG_BACKUP_SCHEDULE on it), and this
// step writes the settings it reads into its config folder (<dataDir>/config/backup.env, 0400,
// the container's user) and makes the repository.
// Both prune by the same policy. The repository is initialised when it is new, inside the
// container for the first kind, so its files belong to the container's user.
//
//   hosts: { nas: { roles: [dispatcher], backup: { repository: /srv/labrig/backup/restic, passwordFile: ~/.config/labrig/restic-pass } } }
import { readFileSync } from "node:fs";
import { posix } from "node:path";
import { backupRetention } from "../../core/backup-schedule.js";
import { InputError, LabrigError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { containerState, dockerCli } from "../facts/docker.js";
import { type HostSystem, hostSystemOf } from "../facts/host-system.js";
import { type FileState, fileStates } from "../facts/files.js";
import { installedPackages } from "../facts/packages.js";
import { type UnitState, unitStates } from "../facts/systemd.js";
import type { HostConfig } from "../inventory.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import { shq } from "../remote.js";
import type { Step, StepContext } from "../step.js";
import { checkOwnBackupSchedule, containerBackupEnvFile, containerPaths, dataFolders, dispatcherDataDir, dispatcherSettings } from "./dispatcher-container-settings.js";

export const backupPasswordFile = "/etc/labrig/restic-password";

/** Where the restic password goes on a dispatcher host: the container's config folder. */
export function dispatcherPasswordFile(dataDir: string): string {
  return `${dataFolders(dataDir).config}/restic-password`;
}
export const backupEnvFile = "/etc/labrig/backup.env";
export const backupServiceFile = "/etc/systemd/system/labrig-backup.service";
export const backupTimerFile = "/etc/systemd/system/labrig-backup.timer";
const timer = "labrig-backup.timer";
const initRepository = "restic init";
const withEnv = `set -a; . ${backupEnvFile}; set +a;`;
/** The retention both kinds prune by: restic forget's --keep-* counts. */
export const retention = backupRetention;
const keepFlags = Object.entries(retention)
  .map(([name, n]) => `--keep-${name} ${n}`)
  .join(" ");

type Backup = NonNullable<HostConfig["backup"]>;

/** What labrig-backup.service runs on a host. */
export type BackupKind =
  | { kind: "host-restic"; repository: string; paths: string[] }
  | {
      kind: "dispatcher-container";
      /** The inventory's name for the host, recorded on the snapshots (the container's own hostname changes with each container). */
      host: string;
      container: string;
      /** What runs it: labrig-backup.timer on the host, or the container's own schedule (DSM). */
      timer: "systemd" | "container";
      /** The repository settings' file on the host (for docker exec --env-file; in the config folder the container reads when it keeps the schedule). */
      envFile: string;
      /** The repository as the container reaches it. */
      repository: string;
      /** The password file on the host: in the config folder the container mounts. */
      passwordFile: string;
      uid: number;
      gid: number;
    };

/** Repository kinds restic reaches from inside the container with nothing but its own binary (sftp: wants ssh, rclone: rclone). */
const selfContainedBackends = ["rest:", "s3:", "b2:", "azure:", "gs:", "swift:"];

/** The repository as the dispatcher container reaches it, or why it cannot. */
export function containerRepository(repository: string, dataDir: string): { repository: string } | { fail: string } {
  const backupDir = posix.normalize(dataFolders(dataDir).backup);
  const alternatives = `a folder under ${backupDir} (the container's ${containerPaths.backup}), e.g. ${backupDir}/restic, or a ${selfContainedBackends.join(" ")} repository`;
  if (selfContainedBackends.some((b) => repository.startsWith(b))) return { repository };
  const local = /^local:/i.test(repository) ? repository.slice("local:".length) : repository;
  if (local.startsWith("/")) {
    const path = posix.normalize(local).replace(/\/+$/, "");
    if (path === backupDir) return { repository: containerPaths.backup };
    if (path.startsWith(`${backupDir}/`)) return { repository: containerPaths.backup + path.slice(backupDir.length) };
    return { fail: `backup.repository ${repository} is a folder the dispatcher container does not see; on a dispatcher host the backup runs inside that container (for a consistent copy of its database), so use ${alternatives}` };
  }
  const scheme = /^([a-z0-9]+):/i.exec(repository)?.[1];
  return {
    fail: `backup.repository ${repository} ${scheme ? `needs what the dispatcher image lacks (restic's ${scheme} backend runs ${scheme === "sftp" ? "ssh, with a key" : scheme})` : "is not an absolute folder or a repository URL"}; on a dispatcher host the backup runs inside the dispatcher container (for a consistent copy of its database), so use ${alternatives}`,
  };
}

/**
 * The kind for this host: inside the dispatcher container on a dispatcher host (its data folders at
 * dataDir; on DSM on the container's own schedule), else restic on the host.
 */
export function backupKind(host: HostConfig, backup: Backup, dataDir?: string, system?: HostSystem): BackupKind | { fail: string } {
  if (!host.roles.includes("dispatcher")) return { kind: "host-restic", repository: backup.repository, paths: backup.paths };
  if (!dataDir) throw new LabrigError(`internal: no data folder for the dispatcher host ${host.name}`);
  const s = dispatcherSettings(host);
  const repo = containerRepository(backup.repository, dataDir);
  if ("fail" in repo) return repo;
  const onDsm = system?.kind === "dsm";
  return {
    kind: "dispatcher-container",
    host: host.name,
    container: s.containerName,
    timer: onDsm ? "container" : "systemd",
    envFile: onDsm ? `${dataFolders(dataDir).config}/backup.env` : backupEnvFile,
    repository: repo.repository,
    passwordFile: dispatcherPasswordFile(dataDir),
    uid: s.uid,
    gid: s.gid,
  };
}

/** One line for --json (the step's `runs` fact): what the service runs, and where to. */
export function describeBackupKind(kind: BackupKind): string {
  return kind.kind === "dispatcher-container"
    ? `labrig backup inside container ${kind.container} (online copy of its database, then restic) to ${kind.repository}${kind.timer === "container" ? ", on the container's own schedule" : ""}`
    : `restic on the host over ${kind.paths.join(" ")} to ${kind.repository}`;
}

export function renderBackupService(kind: BackupKind): string {
  if (kind.kind === "host-restic") {
    return `# Written by labrig provision.
[Unit]
Description=labrig backup of ${kind.paths.join(" ")} with restic
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
EnvironmentFile=${backupEnvFile}
ExecStart=/usr/bin/restic backup --tag labrig ${kind.paths.map(shq).join(" ")}
ExecStartPost=/usr/bin/restic forget --tag labrig ${keepFlags} --prune
Nice=10
IOSchedulingClass=idle
`;
  }
  const c = kind.container;
  const missing = `labrig-backup: the dispatcher container ${c} is not running on ${kind.host}, and the backup runs inside it. Start it with: docker start ${c} (on ${kind.host}), or bring it back from the control machine with: labrig provision --host ${kind.host}`;
  return `# Written by labrig provision.
[Unit]
Description=labrig backup of the dispatcher, from inside its container ${c}, with restic
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=oneshot
# labrig backup copies the live SQLite database online (never its WAL files mid-write), then backs
# that copy, the tokens, config and runs up with the image's restic, prunes and checks. ${backupEnvFile}
# names the repository and password file as the container sees them.
ExecStartPre=/bin/sh -c 'docker container inspect --format {{.State.Running}} ${c} 2>/dev/null | grep -qx true || { echo "${missing}" >&2; exit 1; }'
ExecStart=docker exec --env-file ${backupEnvFile} ${c} labrig backup --state ${containerPaths.state} --config ${containerPaths.config} --host ${kind.host} ${keepFlags}
`;
}

export function renderBackupTimer(backup: Backup): string {
  return `# Written by labrig provision.
[Unit]
Description=labrig backup schedule

[Timer]
OnCalendar=${backup.schedule}
Persistent=true
RandomizedDelaySec=5min

[Install]
WantedBy=timers.target
`;
}

/** The files the kind needs, given the password's text. */
export function backupFiles(kind: BackupKind, backup: Backup, password: string): DesiredFile[] {
  const units: DesiredFile[] = [
    { path: backupServiceFile, content: renderBackupService(kind), mode: 0o644 },
    { path: backupTimerFile, content: renderBackupTimer(backup), mode: 0o644 },
  ];
  if (kind.kind === "host-restic") {
    return [
      { path: backupPasswordFile, content: `${password}\n`, mode: 0o600 },
      { path: backupEnvFile, content: `RESTIC_REPOSITORY=${kind.repository}\nRESTIC_PASSWORD_FILE=${backupPasswordFile}\n`, mode: 0o600 },
      ...units,
    ];
  }
  if (kind.timer === "container") {
    return [
      { path: kind.passwordFile, content: `${password}\n`, mode: 0o400, owner: String(kind.uid), group: String(kind.gid) },
      {
        path: kind.envFile,
        content: `# Read by the dispatcher container ${kind.container} at each backup its own schedule (backup.schedule) runs, as ${containerBackupEnvFile}.\nRESTIC_REPOSITORY=${kind.repository}\nRESTIC_PASSWORD_FILE=${containerPaths.config}/restic-password\n`,
        mode: 0o400,
        owner: String(kind.uid),
        group: String(kind.gid),
      },
    ];
  }
  return [
    { path: kind.passwordFile, content: `${password}\n`, mode: 0o400, owner: String(kind.uid), group: String(kind.gid) },
    {
      path: backupEnvFile,
      content: `# For docker exec --env-file (labrig-backup.service): paths as the container ${kind.container} sees them.\nRESTIC_REPOSITORY=${kind.repository}\nRESTIC_PASSWORD_FILE=${containerPaths.config}/restic-password\n`,
      mode: 0o600,
    },
    ...units,
  ];
}

/** What the step read from the host. */
export interface BackupFacts {
  /** restic's version on the host (needed by host-restic only). */
  restic?: string;
  files: Map<string, FileState>;
  /** The repository answered `restic cat config` with the settings as planned. */
  initialised: boolean;
  /** dispatcher-container: the container's state (running, exited, missing, …). */
  container?: string;
  /** labrig-backup.timer; absent where the container keeps the schedule. */
  timer?: UnitState;
}

function initChange(kind: BackupKind): string {
  return kind.kind === "dispatcher-container" ? `restic init inside container ${kind.container}` : initRepository;
}

/** Facts in, changes out: what the host needs for this kind of backup, in the order apply makes them. */
export function planBackupTimer(kind: BackupKind, files: DesiredFile[], facts: BackupFacts): Change[] {
  const changes: Change[] = [];
  if (kind.kind === "host-restic" && !facts.restic) changes.push({ kind: "install-packages", packages: ["restic"], reason: "not installed" });
  const runs = kind.kind === "dispatcher-container" ? `labrig backup inside container ${kind.container}` : `restic over ${kind.paths.join(" ")}`;
  const fileChanges = files
    .map((f) => planFile(facts.files.get(f.path), f))
    .filter((c) => c !== undefined)
    .map((c) => (c.kind === "write-file" && c.path === backupServiceFile ? { ...c, reason: `${c.reason}; it runs ${runs}` } : c));
  changes.push(...fileChanges);
  const written = (path: string) => fileChanges.some((c) => c.kind === "write-file" && c.path === path);
  if (written(backupServiceFile) || written(backupTimerFile)) changes.push({ kind: "daemon-reload", reason: "backup units changed" });
  if (!facts.initialised) {
    const settingsChange = fileChanges.some((c) => "path" in c && c.path !== backupServiceFile && c.path !== backupTimerFile);
    const reason =
      kind.kind === "dispatcher-container" && facts.container !== "running"
        ? `if ${kind.repository} has no repository; not asked: container ${kind.container} is ${facts.container ?? "missing"} now, the dispatcher-container step starts it`
        : settingsChange
          ? `if ${kind.repository} has no repository; not asked: its settings are new or change`
          : `no repository at ${kind.repository} yet`;
    changes.push({ kind: "run", what: initChange(kind), reason });
  }
  if (kind.kind === "dispatcher-container" && kind.timer === "container") return changes;
  const t = facts.timer ?? { enabled: "not-found", active: "inactive" };
  if (t.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: timer, reason: `is ${t.enabled}` });
  if (t.active !== "active") changes.push({ kind: "start-unit", unit: timer, reason: `is ${t.active}` });
  else if (written(backupTimerFile)) changes.push({ kind: "restart-unit", unit: timer, reason: "the schedule changed" });
  return changes;
}

function readPassword(ctx: StepContext, backup: Backup): string {
  try {
    return readFileSync(backup.passwordFile, "utf8").trim();
  } catch {
    throw new InputError(`${ctx.inventory.file}: host '${ctx.host.name}', field 'backup.passwordFile'`, `cannot read the restic password from ${backup.passwordFile}`);
  }
}

async function kindOn(ctx: StepContext, backup: Backup): Promise<BackupKind | { fail: string }> {
  const system = await hostSystemOf(ctx);
  const dataDir = ctx.host.roles.includes("dispatcher") ? await dispatcherDataDir(ctx.remote, dispatcherSettings(ctx.host), system) : undefined;
  return backupKind(ctx.host, backup, dataDir, system);
}

/** `docker exec` with the repository's settings from the env file, as the service runs it. */
function inContainer(kind: Extract<BackupKind, { kind: "dispatcher-container" }>, command: string): string {
  return `${dockerCli} exec --env-file ${shq(kind.envFile)} ${shq(kind.container)} ${command}`;
}

export const backupTimerStep: Step = {
  id: "backup-timer",
  description: "restic backups on a systemd timer (on a dispatcher host, labrig backup inside its container; on DSM on the container's own schedule)",
  roles: ["gpu", "dispatcher"],
  async check(ctx) {
    const backup = ctx.host.backup;
    if (!backup) return { facts: {}, changes: [], skip: "no backup settings in the inventory" };
    const kind = await kindOn(ctx, backup);
    if ("fail" in kind) return { facts: {}, changes: [], fail: kind.fail };
    const ownSchedule = kind.kind === "dispatcher-container" && kind.timer === "container";
    if (ownSchedule) {
      try {
        checkOwnBackupSchedule(ctx.host, backup.schedule);
      } catch (err) {
        return { facts: {}, changes: [], fail: (err as Error).message };
      }
    }
    const files = backupFiles(kind, backup, readPassword(ctx, backup));
    const [installed, states, units, container] = await Promise.all([
      kind.kind === "host-restic" ? installedPackages(ctx.remote, ["restic"]) : undefined,
      fileStates(ctx.remote, files.map((f) => f.path)),
      ownSchedule ? undefined : unitStates(ctx.remote, [timer]),
      kind.kind === "dispatcher-container" ? containerState(ctx.remote, kind.container) : undefined,
    ]);
    const restic = installed?.get("restic");
    const unitsChange = !ownSchedule && [backupServiceFile, backupTimerFile].some((p) => planFile(states.get(p), files.find((f) => f.path === p)!) !== undefined);
    if (unitsChange) {
      const valid = await ctx.remote.exec(`systemd-analyze calendar ${shq(backup.schedule)}`);
      if (valid.exitCode !== 0) return { facts: {}, changes: [], fail: `backup.schedule '${backup.schedule}' is not a systemd calendar expression (systemd-analyze calendar says: ${valid.stderr.trim()})` };
    }
    // The repository is asked only with the settings as planned (a stale env file could name another one).
    const settingsCurrent = files.filter((f) => f.path !== backupServiceFile && f.path !== backupTimerFile).every((f) => planFile(states.get(f.path), f) === undefined);
    let initialised = false;
    if (settingsCurrent && kind.kind === "host-restic" && restic) {
      initialised = (await ctx.remote.exec(`${withEnv} restic cat config >/dev/null`, { sudo: true, timeoutMs: 60_000 })).exitCode === 0;
    } else if (settingsCurrent && kind.kind === "dispatcher-container" && container === "running") {
      initialised = (await ctx.remote.exec(`${inContainer(kind, "restic cat config")} >/dev/null`, { sudo: true, timeoutMs: 60_000 })).exitCode === 0;
    }
    const facts: BackupFacts = { restic, files: states, initialised, container, ...(units ? { timer: units.get(timer)! } : {}) };
    return {
      facts: {
        kind: kind.kind,
        runs: describeBackupKind(kind),
        ...(kind.kind === "host-restic" ? { restic: restic ?? null } : { container: container ?? null }),
        repository: backup.repository,
        initialised,
        timer: facts.timer ?? `the container's own schedule (${backup.schedule})`,
      },
      changes: planBackupTimer(kind, files, facts),
    };
  },
  async apply(ctx, changes) {
    const backup = ctx.host.backup!;
    const kind = await kindOn(ctx, backup);
    if ("fail" in kind) throw new LabrigError(kind.fail);
    const runs: Record<string, () => Promise<void>> =
      kind.kind === "host-restic"
        ? {
            // `cat config` again: a repository that exists but was unreachable at check time is not re-initialised.
            [initRepository]: async () => {
              await ctx.remote.run(`${withEnv} restic cat config >/dev/null 2>&1 || restic init`, { sudo: true, timeoutMs: 120_000 });
            },
          }
        : {
            // Inside the container, so the repository's files belong to the user that backs up into it.
            [initChange(kind)]: async () => {
              const state = await containerState(ctx.remote, kind.container);
              if (state !== "running") {
                throw new LabrigError(
                  `on ${ctx.host.name}: the dispatcher container ${kind.container} is ${state}, and the backup repository is made inside it; bring it up with \`labrig provision --host ${ctx.host.name}\` (its dispatcher-container step), then run this again`,
                );
              }
              await ctx.remote.run(`${inContainer(kind, "restic cat config")} >/dev/null 2>&1 || ${inContainer(kind, "restic init")}`, { sudo: true, timeoutMs: 120_000 });
            },
          };
    await applyChanges(ctx, changes, { files: new Map(backupFiles(kind, backup, readPassword(ctx, backup)).map((f) => [f.path, f])), runs });
  },
};
