// When the dispatcher container backs itself up, on a host without systemd timers (a Synology):
// the inventory's backup.schedule in the subset of systemd's calendar syntax that a daily or
// hourly backup needs, plus `every N[smh]` for short intervals (tests, a busy lab). Shared by the
// provisioning step that checks the setting and the dispatcher that keeps the schedule.
//
//   nextBackupAt(parseBackupSchedule("*-*-* 03:00:00"), new Date())  // the next 03:00, local time
//   parseBackupSchedule("every 30s")                                  // { kind: "every", ms: 30000 }
import { InputError } from "./errors.js";

export type BackupSchedule = { kind: "daily"; hour: number; minute: number; second: number } | { kind: "hourly"; minute: number; second: number } | { kind: "every"; ms: number };

/** restic forget's --keep-* counts, for the host timer and the container's own schedule alike. */
export const backupRetention = { daily: 7, weekly: 4, monthly: 6 } as const;

export const backupScheduleForms = "'*-*-* HH:MM[:SS]', 'HH:MM[:SS]', 'daily', 'hourly' or 'every N' with s, m or h (e.g. 'every 6h')";

/** Parses the schedule; anything else is an InputError naming `field` and the forms accepted. */
export function parseBackupSchedule(text: string, field = "backup.schedule"): BackupSchedule {
  const t = text.trim();
  if (t === "daily") return { kind: "daily", hour: 0, minute: 0, second: 0 };
  if (t === "hourly") return { kind: "hourly", minute: 0, second: 0 };
  const every = /^every\s+(\d+)\s*([smh])$/.exec(t);
  if (every) {
    const ms = Number(every[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[every[2] as "s" | "m" | "h"];
    if (ms < 5000) throw new InputError(field, `'${text}' is shorter than 5 s; a backup needs longer than that`);
    return { kind: "every", ms };
  }
  const clock = /^(?:\*-\*-\*\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  if (clock) {
    const [hour, minute, second] = [Number(clock[1]), Number(clock[2]), Number(clock[3] ?? 0)];
    if (hour < 24 && minute < 60 && second < 60) return { kind: "daily", hour, minute, second };
  }
  throw new InputError(field, `'${text}' is not a schedule the dispatcher container keeps; use ${backupScheduleForms}`);
}

/** The next time after `now` the schedule calls for (daily and hourly in the process's local time). */
export function nextBackupAt(s: BackupSchedule, now: Date): Date {
  if (s.kind === "every") return new Date(now.getTime() + s.ms);
  const next = new Date(now);
  next.setMilliseconds(0);
  if (s.kind === "hourly") {
    next.setMinutes(s.minute, s.second);
    if (next <= now) next.setHours(next.getHours() + 1);
    return next;
  }
  next.setHours(s.hour, s.minute, s.second);
  if (next <= now) next.setDate(next.getDate() + 1);
  return next;
}
