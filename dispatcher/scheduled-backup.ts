// The dispatcher's own backup schedule, for hosts with no systemd timer to run `labrig backup`
// (a Synology: the dispatcher container is all labrig has there). With LABRIG_BACKUP_SCHEDULE
// set, the dispatcher runs `labrig backup` as a child process at each time the schedule names,
// with the repository settings read from LABRIG_BACKUP_ENV_FILE at that moment (provisioning
// writes that file after the container starts; until then a due backup is skipped, and said).
//
//   const stop = startScheduledBackup(backupScheduleFromEnv(process.env, stateDir)!, console.log);
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { backupRetention, type BackupSchedule, nextBackupAt, parseBackupSchedule } from "../core/backup-schedule.js";

export interface ScheduledBackup {
  schedule: BackupSchedule;
  /** The schedule as given, for messages. */
  text: string;
  /** KEY=VALUE lines: RESTIC_REPOSITORY and RESTIC_PASSWORD_FILE as this process sees them. */
  envFile: string;
  state: string;
  /** A folder backed up with the state (the container's /etc/labrig), when it exists. */
  config: string;
  /** The host name recorded on the snapshots. */
  host: string;
}

/** LABRIG_BACKUP_SCHEDULE (+ _ENV_FILE, _CONFIG, _HOST); undefined when no schedule is set. A bad schedule is an InputError. */
export function backupScheduleFromEnv(env: NodeJS.ProcessEnv, state: string): ScheduledBackup | undefined {
  const text = env.LABRIG_BACKUP_SCHEDULE;
  if (!text) return undefined;
  return {
    schedule: parseBackupSchedule(text, "LABRIG_BACKUP_SCHEDULE"),
    text,
    envFile: env.LABRIG_BACKUP_ENV_FILE || "/etc/labrig/backup.env",
    state,
    config: env.LABRIG_BACKUP_CONFIG || "/etc/labrig",
    host: env.LABRIG_BACKUP_HOST || hostname(),
  };
}

/** KEY=VALUE lines (blank lines and # comments ignored), as `docker --env-file` reads them. */
export function parseEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m && !line.trimStart().startsWith("#")) vars[m[1]!] = m[2]!;
  }
  return vars;
}

/** The `labrig backup` arguments a scheduled run passes. */
export function scheduledBackupArgs(b: ScheduledBackup): string[] {
  const keep = Object.entries(backupRetention).flatMap(([name, n]) => [`--keep-${name}`, String(n)]);
  return ["backup", "--state", b.state, ...(existsSync(b.config) ? ["--config", b.config] : []), "--host", b.host, ...keep];
}

/** Runs one backup now; resolves with its exit code (never rejects). */
export function runScheduledBackup(b: ScheduledBackup, log: (line: string) => void): Promise<number> {
  if (!existsSync(b.envFile)) {
    log(`labrig dispatcher: scheduled backup skipped: ${b.envFile} does not exist yet (labrig provision writes it: its backup-timer step)`);
    return Promise.resolve(1);
  }
  const settings = parseEnvFile(readFileSync(b.envFile, "utf8"));
  // The same entry point this process runs from (the image's bundle, or cli/main.ts under tsx).
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...scheduledBackupArgs(b)], {
    env: { ...process.env, ...settings },
    stdio: ["ignore", "inherit", "inherit"],
  });
  return new Promise((resolve) => {
    child.on("error", (err) => {
      log(`labrig dispatcher: scheduled backup could not start: ${err.message}`);
      resolve(1);
    });
    child.on("exit", (code) => {
      log(`labrig dispatcher: scheduled backup ${code === 0 ? "done" : `failed (exit ${code})`}`);
      resolve(code ?? 1);
    });
  });
}

/** Keeps the schedule until the returned function is called; one backup at a time. */
export function startScheduledBackup(b: ScheduledBackup, log: (line: string) => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = () => {
    if (stopped) return;
    const at = nextBackupAt(b.schedule, new Date());
    timer = setTimeout(() => void runScheduledBackup(b, log).then(arm), at.getTime() - Date.now());
    timer.unref();
  };
  log(`labrig dispatcher: backing up on its own schedule '${b.text}' (next at ${nextBackupAt(b.schedule, new Date()).toISOString()})`);
  arm();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
