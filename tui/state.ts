// The dashboard's state: one plain object (what the dispatcher, agents and Docker engines told us,
// and what the operator is looking at), and pure functions that return the next state. The data
// client feeds it, the key map changes its UI half, and the views render it; tests build it by hand.
import type { Device, DispatcherEvent, Job, Priority, SlurmView } from "../core/api.js";
import { isTerminalJobState } from "../core/api.js";

export type ViewName = "devices" | "queue" | "job" | "containers" | "events";
export const viewOrder: readonly ViewName[] = ["devices", "queue", "job", "containers", "events"];
export type ListView = "devices" | "queue" | "containers" | "events";

export type ConnectionStatus = "connecting" | "connected" | "disconnected";

export interface Connection {
  status: ConnectionStatus;
  /** When the current status began (ISO). */
  since: string | null;
  /** Why the last attempt failed, as a person should read it. */
  error: string | null;
  /** When the next reconnection attempt happens (epoch ms), while disconnected. */
  retryAt: number | null;
  /** When devices and jobs were last fetched whole (ISO). */
  lastSyncAt: string | null;
}

export interface EventEntry {
  at: string;
  kind: DispatcherEvent["type"] | "tui";
  level: "info" | "warn" | "error";
  text: string;
}

export interface LogTail {
  jobId: string;
  /** Where the lines come from: the agent's live log, or the copy synced to the dispatcher. */
  source: "agent" | "dispatcher" | null;
  lines: string[];
  /** Text after the last newline, shown as the last line until it is completed. */
  partial: string;
  following: boolean;
  error: string | null;
}

export interface SyncedFiles {
  jobId: string;
  attempt: number | null;
  files: { path: string; size: number; updatedAt: string }[];
  error: string | null;
}

export interface ContainerRow {
  id: string;
  name: string;
  image: string;
  /** Docker's state: running, exited, created, ... */
  state: string;
  /** Docker's human status: "Up 3 minutes". */
  status: string;
  role: "job" | "dispatcher";
  jobId: string | null;
  cpuPct: number | null;
  memUsedBytes: number | null;
  memLimitBytes: number | null;
}

export interface ContainerHost {
  host: string;
  /** How the engine is reached: "local (DOCKER_HOST)" or "ssh deploy@10.0.0.2". */
  via: string;
  rows: ContainerRow[];
  error: string | null;
  updatedAt: string | null;
}

export type Command =
  | { kind: "cancel"; jobId: string }
  | { kind: "retry"; jobId: string }
  | { kind: "cancel-group"; groupId: string }
  | { kind: "retry-group"; groupId: string }
  | { kind: "priority"; jobId: string; priority: Priority }
  | { kind: "drain"; hostId: string }
  | { kind: "undrain"; hostId: string };

export type Modal = null | { kind: "help" } | { kind: "confirm"; command: Command; prompt: string } | { kind: "priority"; jobId: string };

export interface TuiState {
  url: string;
  devices: Record<string, Device>;
  jobs: Record<string, Job>;
  /** Newest first. */
  events: EventEntry[];
  view: ViewName;
  /** Where Esc returns to from the job view. */
  returnView: ViewName;
  cursor: Record<ListView, number>;
  detailJobId: string | null;
  /** Sweep groups the Queue shows opened: their jobs under the group's row. */
  expandedGroups: string[];
  filter: string;
  filterEditing: boolean;
  connection: Connection;
  log: LogTail | null;
  synced: SyncedFiles | null;
  containers: { hosts: ContainerHost[]; error: string | null };
  /** Slurm's view of the cluster when Slurm is the lab's scheduler; null when labrig schedules (or before the first read). */
  slurm: SlurmView | null;
  modal: Modal;
  flash: { text: string; level: "info" | "error"; at: number } | null;
}

export const MAX_EVENTS = 500;
export const MAX_LOG_LINES = 1000;
/** Finished jobs kept in memory beyond those still queued or running. */
export const MAX_FINISHED_JOBS = 300;

export function initialState(url: string): TuiState {
  return {
    url,
    devices: {},
    jobs: {},
    events: [],
    view: "devices",
    returnView: "queue",
    cursor: { devices: 0, queue: 0, containers: 0, events: 0 },
    detailJobId: null,
    expandedGroups: [],
    filter: "",
    filterEditing: false,
    connection: { status: "connecting", since: null, error: null, retryAt: null, lastSyncAt: null },
    log: null,
    synced: null,
    containers: { hosts: [], error: null },
    slurm: null,
    modal: null,
    flash: null,
  };
}

// ---- data ----

export function applyDispatcherEvent(s: TuiState, ev: DispatcherEvent, now: Date = new Date()): TuiState {
  switch (ev.type) {
    case "job": {
      const before = s.jobs[ev.job.id];
      const next = { ...s, jobs: pruneJobs({ ...s.jobs, [ev.job.id]: ev.job }, s.detailJobId) };
      if (before && before.state === ev.job.state && before.attempt === ev.job.attempt && before.priority === ev.job.priority) return next;
      return addEvent(next, { at: now.toISOString(), kind: "job", level: jobEventLevel(ev.job), text: describeJobChange(before, ev.job) });
    }
    case "device": {
      const before = s.devices[ev.device.hostId];
      const next = { ...s, devices: { ...s.devices, [ev.device.hostId]: ev.device } };
      if (before && before.status === ev.device.status && before.gpuProblem === ev.device.gpuProblem) return next;
      return addEvent(next, { at: now.toISOString(), kind: "device", level: deviceEventLevel(ev.device), text: describeDeviceChange(before, ev.device) });
    }
    case "notice":
      return addEvent(s, { at: ev.at, kind: "notice", level: ev.level, text: ev.message });
    case "log":
      return s;
  }
}

/** Applies a burst of events (one network read) with one copy of the device and job maps. */
export function applyDispatcherEvents(s: TuiState, evs: DispatcherEvent[], now: Date = new Date()): TuiState {
  if (evs.length === 1) return applyDispatcherEvent(s, evs[0]!, now);
  // Device updates that change nothing but figures are the flood (every host, every second):
  // merge those into one new map; everything else goes through applyDispatcherEvent in order.
  let devices: Record<string, Device> | null = null;
  let next = s;
  for (const ev of evs) {
    if (ev.type === "device") {
      const before = (devices ?? next.devices)[ev.device.hostId];
      if (before && before.status === ev.device.status && before.gpuProblem === ev.device.gpuProblem) {
        devices ??= { ...next.devices };
        devices[ev.device.hostId] = ev.device;
        continue;
      }
    }
    if (devices) {
      next = { ...next, devices };
      devices = null;
    }
    next = applyDispatcherEvent(next, ev, now);
  }
  return devices ? { ...next, devices } : next;
}

/** Replaces devices and jobs with a full listing (after connecting, and periodically). */
export function applySnapshot(s: TuiState, devices: Device[], jobs: Job[], now: Date = new Date()): TuiState {
  const byHost: Record<string, Device> = {};
  for (const d of devices) byHost[d.hostId] = d;
  const byId: Record<string, Job> = {};
  for (const j of jobs) byId[j.id] = j;
  // The listing is the newest jobs only; keep the one on screen even when it fell out of it.
  if (s.detailJobId && !byId[s.detailJobId] && s.jobs[s.detailJobId]) byId[s.detailJobId] = s.jobs[s.detailJobId]!;
  const next = { ...s, devices: byHost, jobs: pruneJobs(byId, s.detailJobId), connection: { ...s.connection, lastSyncAt: now.toISOString() } };
  return addMissedJobEnds(next, s, jobs);
}

/** The most job ends one listing adds to the events. */
export const MISSED_JOB_ENDS = 20;

/**
 * Job ends the event stream did not bring (they happened before the dashboard started, or while
 * it was disconnected) become events at the time each job ended, so "what just happened" is never
 * blank because the dashboard was not watching.
 */
function addMissedJobEnds(next: TuiState, before: TuiState, listed: Job[]): TuiState {
  const missed = listed.filter((j) => isTerminalJobState(j.state) && j.endedAt && before.jobs[j.id]?.state !== j.state);
  if (missed.length === 0) return next;
  missed.sort((a, b) => b.endedAt!.localeCompare(a.endedAt!));
  const entries: EventEntry[] = missed.slice(0, MISSED_JOB_ENDS).map((j) => ({ at: j.endedAt!, kind: "job", level: jobEventLevel(j), text: describeJobChange(before.jobs[j.id], j) }));
  const events = [...next.events, ...entries].sort((a, b) => b.at.localeCompare(a.at));
  if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
  return { ...next, events };
}


export function upsertJob(s: TuiState, job: Job): TuiState {
  return { ...s, jobs: { ...s.jobs, [job.id]: job } };
}

export function upsertDevice(s: TuiState, device: Device): TuiState {
  return { ...s, devices: { ...s.devices, [device.hostId]: device } };
}

export function setConnection(s: TuiState, status: ConnectionStatus, now: Date, detail: { error?: string | null; retryAt?: number | null } = {}): TuiState {
  const changed = s.connection.status !== status;
  let next: TuiState = {
    ...s,
    connection: {
      ...s.connection,
      status,
      since: changed || !s.connection.since ? now.toISOString() : s.connection.since,
      error: detail.error ?? null,
      retryAt: detail.retryAt ?? null,
    },
  };
  if (changed && status === "disconnected") {
    next = addEvent(next, { at: now.toISOString(), kind: "tui", level: "error", text: `lost the dispatcher at ${s.url}: ${detail.error ?? "connection closed"}` });
  } else if (changed && status === "connected" && s.connection.status === "disconnected") {
    next = addEvent(next, { at: now.toISOString(), kind: "tui", level: "info", text: `reconnected to the dispatcher at ${s.url}` });
  }
  return next;
}

export function addEvent(s: TuiState, e: EventEntry): TuiState {
  const events = [e, ...s.events];
  if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
  return { ...s, events };
}

export function flash(s: TuiState, text: string, level: "info" | "error", nowMs: number): TuiState {
  return { ...s, flash: { text, level, at: nowMs } };
}

// ---- log tail and synced files of the job on screen ----

export function startLog(s: TuiState, jobId: string, following = true): TuiState {
  return { ...s, log: { jobId, source: null, lines: [], partial: "", following, error: null } };
}

export function setLogSource(s: TuiState, jobId: string, source: LogTail["source"], error: string | null = null): TuiState {
  if (!s.log || s.log.jobId !== jobId) return s;
  return { ...s, log: { ...s.log, source, error } };
}

/** Appends streamed text; lines are split on newlines, the unfinished end is kept apart. */
export function appendLogText(s: TuiState, jobId: string, text: string): TuiState {
  if (!s.log || s.log.jobId !== jobId) return s;
  const parts = (s.log.partial + text).split(/\r?\n/);
  const partial = parts.pop() ?? "";
  const lines = parts.length ? s.log.lines.concat(parts) : s.log.lines;
  if (lines.length > MAX_LOG_LINES) lines.splice(0, lines.length - MAX_LOG_LINES);
  return { ...s, log: { ...s.log, lines, partial, error: null } };
}

/** Replaces the tail with a whole text (a re-read of the synced job.log). */
export function replaceLogText(s: TuiState, jobId: string, text: string): TuiState {
  if (!s.log || s.log.jobId !== jobId) return s;
  return appendLogText({ ...s, log: { ...s.log, lines: [], partial: "" } }, jobId, text);
}

export function setSynced(s: TuiState, synced: SyncedFiles): TuiState {
  if (s.detailJobId !== synced.jobId) return s;
  return { ...s, synced };
}

export function setContainers(s: TuiState, hosts: ContainerHost[], error: string | null = null): TuiState {
  return { ...s, containers: { hosts, error } };
}

export function setSlurm(s: TuiState, slurm: SlurmView): TuiState {
  return { ...s, slurm };
}

// ---- helpers ----

/** Keeps every job still in flight and the newest finished ones, so memory stays bounded. */
function pruneJobs(jobs: Record<string, Job>, keep: string | null): Record<string, Job> {
  const finished: Job[] = [];
  for (const id in jobs) if (isTerminalJobState(jobs[id]!.state)) finished.push(jobs[id]!);
  if (finished.length <= MAX_FINISHED_JOBS) return jobs;
  finished.sort((a, b) => (b.endedAt ?? b.createdAt).localeCompare(a.endedAt ?? a.createdAt));
  const out = { ...jobs };
  for (const j of finished.slice(MAX_FINISHED_JOBS)) if (j.id !== keep) delete out[j.id];
  return out;
}

function jobEventLevel(job: Job): EventEntry["level"] {
  if (job.state === "failed" || job.state === "timed_out") return "error";
  if (job.state === "cancelled") return "warn";
  return "info";
}

function describeJobChange(before: Job | undefined, job: Job): string {
  const name = `job ${job.id} (${job.name})`;
  if (!before) return `${name} ${job.state}${job.hostId ? ` on ${job.hostId}` : ""}`;
  if (before.priority !== job.priority && before.state === job.state) return `${name} priority ${before.priority} → ${job.priority}`;
  const where = job.hostId && job.state !== "queued" ? ` on ${job.hostId}` : "";
  const exit = job.exitCode !== null && isTerminalJobState(job.state) ? ` exit ${job.exitCode}` : "";
  const reason = job.reason && job.state !== "succeeded" ? ` (${job.reason})` : "";
  const attempt = job.attempt !== before.attempt ? ` attempt ${job.attempt}` : "";
  return `${name} ${before.state} → ${job.state}${where}${attempt}${exit}${reason}`;
}

function deviceEventLevel(d: Device): EventEntry["level"] {
  if (d.status === "disconnected" || d.gpuProblem) return "error";
  if (d.status === "stale") return "warn";
  return "info";
}

function describeDeviceChange(before: Device | undefined, d: Device): string {
  if (!before) return `host ${d.hostId} joined with ${d.gpus.length} GPU${d.gpus.length === 1 ? "" : "s"} (${d.status})`;
  if (before.gpuProblem !== d.gpuProblem) return d.gpuProblem ? `host ${d.hostId}: GPU problem: ${d.gpuProblem}` : `host ${d.hostId}: GPU problem cleared`;
  return `host ${d.hostId} ${before.status} → ${d.status}`;
}
