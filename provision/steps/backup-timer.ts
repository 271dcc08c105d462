// Step `backup-timer`: restic, its repository and password (0600 root), labrig-backup.service
// backing up the host's chosen paths, and labrig-backup.timer at the inventory's schedule; the
// repository is initialised when it is new.
import { readFileSync } from "node:fs";
import { InputError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { fileStates } from "../facts/files.js";
import { installedPackages } from "../facts/packages.js";
import { unitStates } from "../facts/systemd.js";
import type { HostConfig } from "../inventory.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import { shq } from "../remote.js";
import type { Step, StepContext } from "../step.js";

export const backupPasswordFile = "/etc/labrig/restic-password";
export const backupEnvFile = "/etc/labrig/backup.env";
export const backupServiceFile = "/etc/systemd/system/labrig-backup.service";
export const backupTimerFile = "/etc/systemd/system/labrig-backup.timer";
const timer = "labrig-backup.timer";
const initRepository = "restic init";
const withEnv = `set -a; . ${backupEnvFile}; set +a;`;

type Backup = NonNullable<HostConfig["backup"]>;

export function renderBackupService(backup: Backup): string {
  return `# Written by labrig provision.
[Unit]
Description=labrig backup of ${backup.paths.join(" ")} with restic
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
EnvironmentFile=${backupEnvFile}
ExecStart=/usr/bin/restic backup --tag labrig ${backup.paths.map(shq).join(" ")}
ExecStartPost=/usr/bin/restic forget --tag labrig --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --prune
Nice=10
IOSchedulingClass=idle
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

function desiredFiles(ctx: StepContext, backup: Backup): DesiredFile[] {
  let password: string;
  try {
    password = readFileSync(backup.passwordFile, "utf8").trim();
  } catch {
    throw new InputError(`${ctx.inventory.file}: host '${ctx.host.name}', field 'backup.passwordFile'`, `cannot read the restic password from ${backup.passwordFile}`);
  }
  return [
    { path: backupPasswordFile, content: password + "\n", mode: 0o600 },
    { path: backupEnvFile, content: `RESTIC_REPOSITORY=${backup.repository}\nRESTIC_PASSWORD_FILE=${backupPasswordFile}\n`, mode: 0o600 },
    { path: backupServiceFile, content: renderBackupService(backup), mode: 0o644 },
    { path: backupTimerFile, content: renderBackupTimer(backup), mode: 0o644 },
  ];
}

export const backupTimerStep: Step = {
  id: "backup-timer",
  description: "restic backups on a systemd timer",
  roles: ["gpu", "dispatcher"],
  async check(ctx) {
    const backup = ctx.host.backup;
    if (!backup) return { facts: {}, changes: [], skip: "no backup settings in the inventory" };
    const files = desiredFiles(ctx, backup);
    const [installed, states, units] = await Promise.all([
      installedPackages(ctx.remote, ["restic"]),
      fileStates(ctx.remote, files.map((f) => f.path)),
      unitStates(ctx.remote, [timer]),
    ]);
    const changes: Change[] = [];
    const restic = installed.get("restic");
    if (!restic) changes.push({ kind: "install-packages", packages: ["restic"], reason: "not installed" });
    const fileChanges = files.map((f) => planFile(states.get(f.path), f)).filter((c) => c !== undefined);
    changes.push(...fileChanges);
    if (fileChanges.some((c) => c.kind === "write-file" && (c.path === backupTimerFile || c.path === backupServiceFile))) {
      const valid = await ctx.remote.exec(`systemd-analyze calendar ${shq(backup.schedule)}`);
      if (valid.exitCode !== 0) return { facts: {}, changes: [], fail: `backup.schedule '${backup.schedule}' is not a systemd calendar expression (systemd-analyze calendar says: ${valid.stderr.trim()})` };
      changes.push({ kind: "daemon-reload", reason: "backup units changed" });
    }
    const initialised = restic && states.get(backupEnvFile)!.exists
      ? (await ctx.remote.exec(`${withEnv} restic cat config >/dev/null`, { sudo: true, timeoutMs: 60_000 })).exitCode === 0
      : false;
    if (!initialised) changes.push({ kind: "run", what: initRepository, reason: `no repository at ${backup.repository} yet` });
    const unit = units.get(timer)!;
    if (unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: timer, reason: `is ${unit.enabled}` });
    if (unit.active !== "active") changes.push({ kind: "start-unit", unit: timer, reason: `is ${unit.active}` });
    else if (fileChanges.some((c) => c.kind === "write-file" && c.path === backupTimerFile)) changes.push({ kind: "restart-unit", unit: timer, reason: "the schedule changed" });
    return { facts: { restic: restic ?? null, repository: backup.repository, initialised, timer: unit }, changes };
  },
  async apply(ctx, changes) {
    const backup = ctx.host.backup!;
    await applyChanges(ctx, changes, {
      files: new Map(desiredFiles(ctx, backup).map((f) => [f.path, f])),
      runs: {
        // `cat config` again: a repository that exists but was unreachable at check time is not re-initialised.
        [initRepository]: async () => {
          await ctx.remote.run(`${withEnv} restic cat config >/dev/null 2>&1 || restic init`, { sudo: true, timeoutMs: 120_000 });
        },
      },
    });
  },
};
