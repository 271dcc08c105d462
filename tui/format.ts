// Text helpers for the dashboard's fixed-width columns: fit, bars, ages, sizes, colours by level.
import type { DeviceStatus, JobState } from "../core/api.js";
import { commandLine } from "../core/shell.js";

/** Cuts to `width` with an ellipsis, or pads with spaces, so columns line up. */
export function fit(text: string, width: number, align: "left" | "right" = "left"): string {
  if (width <= 0) return "";
  if (text.length > width) return width === 1 ? "…" : text.slice(0, width - 1) + "…";
  return align === "left" ? text.padEnd(width) : text.padStart(width);
}

/** A horizontal bar of `width` cells for a 0–100 value, with eighth-cell precision. */
export function bar(pct: number | null | undefined, width: number): string {
  if (pct == null || !Number.isFinite(pct)) return "·".repeat(width);
  const cells = (Math.max(0, Math.min(100, pct)) / 100) * width;
  const full = Math.floor(cells);
  const rest = Math.round((cells - full) * 8);
  const partial = rest > 0 && full < width ? "▏▎▍▌▋▊▉"[rest - 1] ?? "" : "";
  return "█".repeat(full) + partial + " ".repeat(Math.max(0, width - full - partial.length));
}

/** One character per GPU: its utilisation as a block height. */
export function sparkCell(pct: number | null | undefined): string {
  if (pct == null || !Number.isFinite(pct)) return "·";
  const blocks = "▁▂▃▄▅▆▇█";
  return blocks[Math.max(0, Math.min(7, Math.floor((pct / 100) * 8 - 0.0001)))] ?? "▁";
}

/** "4s", "3m", "2h", "5d" since an ISO time; "never" for none. */
export function age(iso: string | null | undefined, nowMs: number): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function gib(mib: number | null | undefined): string {
  if (mib == null) return "—";
  return (mib / 1024).toFixed(mib >= 102400 ? 0 : 1);
}

export { formatBytes as bytes } from "../core/units.js";

export function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "--:--:--" : d.toTimeString().slice(0, 8);
}

export function commandText(command: string | string[]): string {
  return commandLine(command);
}

export type Colour = "green" | "yellow" | "red" | "magenta" | "cyan" | "gray" | "blue" | "white" | undefined;

export const deviceStatusColour: Record<DeviceStatus, Colour> = { healthy: "green", stale: "yellow", disconnected: "red", draining: "magenta" };

export const jobStateColour: Record<JobState, Colour> = {
  queued: "yellow",
  assigned: "cyan",
  running: "blue",
  succeeded: "green",
  failed: "red",
  cancelled: "gray",
  timed_out: "red",
};

/** GPU temperature: a warning colour from 80 °C, a caution from 70 °C. */
export function temperatureColour(c: number | null | undefined): Colour {
  if (c == null) return "gray";
  if (c >= 80) return "red";
  if (c >= 70) return "yellow";
  return undefined;
}

export function utilisationColour(pct: number | null | undefined): Colour {
  if (pct == null) return "gray";
  if (pct >= 90) return "green";
  if (pct >= 30) return "cyan";
  return "blue";
}

/**
 * A sweep group's name from its jobs' names (in submission order): a sweep names its jobs
 * `exp [lr=0.1,batch_size=32]`, so the first one without its `[k=v,…]` suffix when every job's name
 * starts with that, else what all the names start with, else the first name.
 */
export function groupName(names: readonly string[]): string {
  const first = names[0] ?? "";
  const base = first.replace(/\s*\[[^\]]*\]\s*$/, "");
  if (base && names.every((n) => n.startsWith(base))) return base;
  let prefix = first;
  for (const n of names) while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.replace(/[\s[(,=_-]+$/, "");
  return prefix.length >= 3 ? prefix : base || first;
}

/** A sweep job's name under its group's row: what follows the group's name, `[k=v,…]` unbracketed. */
export function memberName(name: string, group: string): string {
  if (!group || !name.startsWith(group)) return name;
  const rest = name.slice(group.length).trim();
  const point = /^\[(.*)\]$/.exec(rest);
  return (point ? point[1]!.trim() : rest.replace(/^[-_,=:(\s]+/, "")) || name;
}

/** The order a group's per-state counts read in: what is moving first, then how it ended. */
export const groupStateOrder: readonly JobState[] = ["running", "assigned", "queued", "succeeded", "failed", "timed_out", "cancelled"];

/** A state's name in running text. */
export const stateWords = (s: JobState): string => (s === "timed_out" ? "timed out" : s);

/** "2 running · 3 queued · 1 succeeded": the states a group's jobs are in, in `groupStateOrder`. */
export function groupStatesText(states: Partial<Record<JobState, number>>, sep = " · "): string {
  return groupStateOrder
    .filter((s) => states[s])
    .map((s) => `${states[s]} ${stateWords(s)}`)
    .join(sep);
}

/** "6 jobs" / "1 job". */
export const jobCount = (n: number): string => `${n} job${n === 1 ? "" : "s"}`;

export const levelColour: Record<"info" | "warn" | "error", Colour> = { info: undefined, warn: "yellow", error: "red" };
