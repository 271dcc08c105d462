// What the views and keys show and act on, derived from the state: filtered, ordered lists, the
// Queue's rows (a sweep group folded into one) and the item under the cursor. Pure, so the key map
// and the views agree on what "selected" means.
import { type Device, type Job, type JobState, type Priority, type SlurmNode, type SlurmView, hasForeignProcesses, isTerminalJobState } from "../core/api.js";
import { groupName } from "./format.js";
import type { ContainerHost, ContainerRow, EventEntry, ListView, TuiState } from "./state.js";

const stateOrder: Record<JobState, number> = { running: 0, assigned: 1, queued: 2, failed: 3, timed_out: 3, cancelled: 3, succeeded: 3 };
const priorityOrder: Record<Priority, number> = { urgent: -1, high: 0, normal: 1, low: 2 };

function matches(filter: string, ...fields: (string | null | undefined)[]): boolean {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return fields.some((x) => x != null && x.toLowerCase().includes(f));
}

/** Hosts the filter matches, by host id. */
export function visibleDevices(s: TuiState): Device[] {
  const out: Device[] = [];
  for (const id of sortedHostIds(s.devices)) {
    const d = s.devices[id]!;
    if (!s.filter || matches(s.filter, d.hostId, d.hostname, d.status, ...Object.entries(d.labels).map(([k, v]) => `${k}=${v}`), ...d.gpus.map((g) => g.name))) out.push(d);
  }
  return out;
}

// The same order as String#localeCompare, from one collator instead of a lookup per comparison.
const byHostId = new Intl.Collator().compare;
// Heartbeats replace device objects many times a second but rarely add or remove a host: the
// order is sorted again only when the set of host ids changed.
let hostOrder: { ids: string[]; of: Record<string, Device> } | null = null;

function sortedHostIds(devices: Record<string, Device>): string[] {
  if (hostOrder?.of === devices) return hostOrder.ids;
  const ids = Object.keys(devices);
  const kept = hostOrder && hostOrder.ids.length === ids.length && hostOrder.ids.every((id) => Object.hasOwn(devices, id)) ? hostOrder.ids : ids.sort(byHostId);
  hostOrder = { ids: kept, of: devices };
  return kept;
}

/** Running, then assigned, then queued (by priority, then age), then finished (newest first). */
export function compareJobs(a: Job, b: Job): number {
  const so = stateOrder[a.state] - stateOrder[b.state];
  if (so !== 0) return so;
  if (stateOrder[a.state] === 3) return (b.endedAt ?? b.createdAt).localeCompare(a.endedAt ?? a.createdAt);
  if (a.state === "queued") {
    const po = priorityOrder[a.priority] - priorityOrder[b.priority];
    if (po !== 0) return po;
  }
  return a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);
}

function jobMatches(filter: string, j: Job): boolean {
  return matches(filter, j.id, j.name, j.project, j.hostId, j.state, j.group);
}

/** Every job the filter matches, in queue order (sweep groups not folded: the wall, the key tests). */
export function visibleJobs(s: TuiState): Job[] {
  const out: Job[] = [];
  for (const id in s.jobs) {
    const j = s.jobs[id]!;
    if (jobMatches(s.filter, j)) out.push(j);
  }
  return out.sort(compareJobs);
}

// ---- the Queue's rows: sweep groups folded ----

/** A sweep group as the Queue shows it, from the jobs of it the dashboard holds. */
export interface GroupSummary {
  id: string;
  name: string;
  /** Its jobs in queue order. */
  jobs: Job[];
  /** How many of its jobs are in each state (only states it has). */
  states: Partial<Record<JobState, number>>;
  /** GPUs its jobs ask for, all together. */
  gpus: number;
  /** Who submitted it; several names read "ana +1"; null when no job says. */
  owner: string | null;
}

export type QueueRow =
  | { kind: "group"; group: GroupSummary; expanded: boolean }
  /** A job; `inGroup` when it is drawn under its expanded group (`last`: the group's last one). */
  | { kind: "job"; job: Job; inGroup: GroupSummary | null; last: boolean };

/**
 * The rows the Queue draws: jobs in queue order, the jobs of one sweep group folded into one row
 * where its first job sorts, followed by all its jobs when the group is expanded. A group shows
 * when the filter matches any of its jobs, and then whole (its counts and its jobs), so the row and
 * what it opens to agree.
 */
export function queueRows(jobs: Iterable<Job>, expanded: Iterable<string> = [], filter = ""): QueueRow[] {
  const sorted = [...jobs].sort(compareJobs);
  const open = new Set(expanded);
  const byGroup = new Map<string, Job[]>();
  for (const j of sorted) {
    if (!j.group) continue;
    const members = byGroup.get(j.group);
    if (members) members.push(j);
    else byGroup.set(j.group, [j]);
  }
  const rows: QueueRow[] = [];
  const placed = new Set<string>();
  for (const j of sorted) {
    if (!j.group) {
      if (jobMatches(filter, j)) rows.push({ kind: "job", job: j, inGroup: null, last: false });
      continue;
    }
    if (placed.has(j.group)) continue;
    placed.add(j.group);
    const members = byGroup.get(j.group)!;
    if (filter && !members.some((m) => jobMatches(filter, m))) continue;
    const isOpen = open.has(j.group);
    const group = summarizeGroup(j.group, members);
    rows.push({ kind: "group", group, expanded: isOpen });
    if (isOpen) members.forEach((m, i) => rows.push({ kind: "job", job: m, inGroup: group, last: i === members.length - 1 }));
  }
  return rows;
}

/** A group's figures from its jobs (in queue order). */
export function summarizeGroup(id: string, jobs: Job[]): GroupSummary {
  const states: Partial<Record<JobState, number>> = {};
  let gpus = 0;
  const owners: string[] = [];
  for (const j of jobs) {
    states[j.state] = (states[j.state] ?? 0) + 1;
    gpus += j.gpus;
    if (j.owner && !owners.includes(j.owner)) owners.push(j.owner);
  }
  // The name comes from the job submitted first, not from whichever runs first.
  const bySubmission = [...jobs].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  const owner = owners.length === 0 ? null : owners.length === 1 ? owners[0]! : `${owners[0]} +${owners.length - 1}`;
  return { id, name: groupName(bySubmission.map((j) => j.name)), jobs, states, gpus, owner };
}

export function visibleQueueRows(s: TuiState): QueueRow[] {
  return queueRows(Object.values(s.jobs), s.expandedGroups, s.filter);
}

/** The Queue's row under the cursor. */
export function selectedQueueRow(s: TuiState): QueueRow | undefined {
  const rows = visibleQueueRows(s);
  return rows[cursorOf(s, "queue", rows.length)];
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
      return visibleQueueRows(s).length;
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

/** The job the job actions apply to: the one in the job view, else the one under the queue cursor (none on a group's row). */
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
  const row = selectedQueueRow(s);
  return row?.kind === "job" ? row.job : undefined;
}

/** The sweep group under the Queue's cursor: its own row, or one of its jobs drawn under it. */
export function selectedGroup(s: TuiState): { group: GroupSummary; onGroupRow: boolean } | undefined {
  if (s.view !== "queue") return undefined;
  const rows = visibleQueueRows(s);
  const row = rows[cursorOf(s, "queue", rows.length)];
  if (row?.kind === "group") return { group: row.group, onGroupRow: true };
  if (row?.kind === "job" && row.inGroup) return { group: row.inGroup, onGroupRow: false };
  return undefined;
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

export interface SlurmSummary {
  /** Nodes by Slurm state, most first: [["idle", 98], ["mixed", 3]]. */
  nodeStates: [string, number][];
  /** Jobs in Slurm's queue by state, most first. */
  queueStates: [string, number][];
  /** Why pending jobs wait, most common first. */
  pendingReasons: string[];
  /** Nodes that take no jobs (down, drained, failing, not responding), to be named one a line. */
  troubled: SlurmNode[];
}

const countBy = (values: string[]): [string, number][] => {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
};

/** Slurm's view folded to a few lines: at 100+ nodes a line a node would hide labrig's own table. */
export function slurmSummary(view: SlurmView): SlurmSummary {
  return {
    nodeStates: countBy(view.nodes.map((n) => n.state)),
    queueStates: countBy(view.queue.map((j) => j.state.toLowerCase())),
    pendingReasons: countBy(view.queue.filter((j) => j.state === "PENDING").map((j) => j.reason)).map(([r]) => r),
    troubled: view.nodes.filter((n) => /down|drain|fail|maint|unknown|\*/i.test(n.state)),
  };
}
