// What the views and keys show and act on, derived from the state: filtered, ordered lists and the
// item under the cursor. Pure, so the key map and the views agree on what "selected" means.
import { type Device, type Job, type JobState, type Priority, hasForeignProcesses, isTerminalJobState } from "../core/api.js";
import type { ContainerHost, ContainerRow, EventEntry, ListView, TuiState } from "./state.js";

const stateOrder: Record<JobState, number> = { running: 0, assigned: 1, queued: 2, failed: 3, timed_out: 3, cancelled: 3, succeeded: 3 };
const priorityOrder: Record<Priority, number> = { urgent: -1, high: 0, normal: 1, low: 2 };

function matches(filter: string, ...fields: (string | null | undefined)[]): boolean {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return fields.some((x) => x != null && x.toLowerCase().includes(f));
}

export function visibleDevices(s: TuiState): Device[] {
  const out: Device[] = [];
  for (const id in s.devices) {
    const d = s.devices[id]!;
    if (!s.filter || matches(s.filter, d.hostId, d.hostname, d.status, ...Object.entries(d.labels).map(([k, v]) => `${k}=${v}`), ...d.gpus.map((g) => g.name))) out.push(d);
  }
  return out.sort((a, b) => a.hostId.localeCompare(b.hostId));
}

/** Running, then assigned, then queued (by priority, then age), then finished (newest first). */
export function visibleJobs(s: TuiState): Job[] {
  const out: Job[] = [];
  for (const id in s.jobs) {
    const j = s.jobs[id]!;
    if (matches(s.filter, j.id, j.name, j.project, j.hostId, j.state)) out.push(j);
  }
  return out.sort((a, b) => {
    const so = stateOrder[a.state] - stateOrder[b.state];
    if (so !== 0) return so;
    if (stateOrder[a.state] === 3) return (b.endedAt ?? b.createdAt).localeCompare(a.endedAt ?? a.createdAt);
    if (a.state === "queued") {
      const po = priorityOrder[a.priority] - priorityOrder[b.priority];
      if (po !== 0) return po;
    }
    return a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);
  });
}

export interface ContainerLine {
  host: ContainerHost;
  row: ContainerRow;
}

export function visibleContainers(s: TuiState): ContainerLine[] {
  const out: ContainerLine[] = [];
  for (const host of s.containers.hosts) {
    for (const row of host.rows) if (matches(s.filter, host.host, row.name, row.image, row.jobId, row.state)) out.push({ host, row });
  }
  return out;
}

export function visibleEvents(s: TuiState): EventEntry[] {
  return s.filter ? s.events.filter((e) => matches(s.filter, e.text, e.kind, e.level)) : s.events;
}

export function listLength(s: TuiState, view: ListView): number {
  switch (view) {
    case "devices":
      return visibleDevices(s).length;
    case "queue":
      return visibleJobs(s).length;
    case "containers":
      return visibleContainers(s).length;
    case "events":
      return visibleEvents(s).length;
  }
}

/** The cursor of a list, kept inside the list as it shrinks. */
export function cursorOf(s: TuiState, view: ListView, length = listLength(s, view)): number {
  return Math.max(0, Math.min(s.cursor[view], length - 1));
}

export function selectedDevice(s: TuiState): Device | undefined {
  const list = visibleDevices(s);
  return list[cursorOf(s, "devices", list.length)];
}

/** The job the job actions apply to: the one in the job view, else the one under the queue cursor. */
export function selectedJob(s: TuiState): Job | undefined {
  if (s.view === "job") return s.detailJobId ? s.jobs[s.detailJobId] : undefined;
  if (s.view === "containers") {
    const list = visibleContainers(s);
    const jobId = list[cursorOf(s, "containers", list.length)]?.row.jobId;
    return jobId ? s.jobs[jobId] : undefined;
  }
  if (s.view === "devices") {
    const d = selectedDevice(s);
    const id = d?.runningJobs[0];
    return id ? s.jobs[id] : undefined;
  }
  const list = visibleJobs(s);
  return list[cursorOf(s, "queue", list.length)];
}

export interface LabTotals {
  devices: number;
  healthy: number;
  gpus: number;
  busyGpus: number;
  queued: number;
  running: number;
}

export function labTotals(s: TuiState): LabTotals {
  const t: LabTotals = { devices: 0, healthy: 0, gpus: 0, busyGpus: 0, queued: 0, running: 0 };
  for (const id in s.devices) {
    const d = s.devices[id]!;
    t.devices++;
    if (d.status === "healthy") t.healthy++;
    t.gpus += d.gpus.length;
    for (const g of d.gpus) if (g.busy || hasForeignProcesses(g)) t.busyGpus++;
  }
  for (const id in s.jobs) {
    const st = s.jobs[id]!.state;
    if (st === "queued") t.queued++;
    else if (st === "running" || st === "assigned") t.running++;
  }
  return t;
}

/** The newest finished jobs, most recent end first. */
export function recentJobEnds(s: TuiState, n: number): Job[] {
  const ended: Job[] = [];
  for (const id in s.jobs) if (isTerminalJobState(s.jobs[id]!.state) && s.jobs[id]!.endedAt) ended.push(s.jobs[id]!);
  return ended.sort((a, b) => b.endedAt!.localeCompare(a.endedAt!)).slice(0, n);
}
