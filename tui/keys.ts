// Key handling as data: `keyToAction` maps a key and the state to an action, `reduceAction` turns an
// action into the next state and the effects the app must perform (quit, call the dispatcher, open
// a job's log). Both are pure, so every binding is tested without rendering.
import { isTerminalJobState, type Job, type Priority } from "../core/api.js";
import { type GroupSummary, cursorOf, listLength, selectedDevice, selectedGroup, selectedJob, selectedQueueRow, summarizeGroup, visibleQueueRows } from "./derive.js";
import { groupStatesText, jobCount } from "./format.js";
import { type Command, type ListView, type TuiState, type ViewName, flash, startLog, viewOrder } from "./state.js";

/** The parts of Ink's `Key` the map reads. */
export interface KeyInfo {
  upArrow?: boolean;
  downArrow?: boolean;
  leftArrow?: boolean;
  rightArrow?: boolean;
  pageUp?: boolean;
  pageDown?: boolean;
  home?: boolean;
  end?: boolean;
  return?: boolean;
  escape?: boolean;
  ctrl?: boolean;
  shift?: boolean;
  tab?: boolean;
  backspace?: boolean;
  delete?: boolean;
}

export type Action =
  | { type: "quit" }
  | { type: "view"; view: ViewName }
  | { type: "move"; delta: number }
  | { type: "open-job"; jobId: string; follow: boolean }
  | { type: "host-jobs"; hostId: string }
  /** Shows (`open`) or hides a sweep group's jobs under its row in the Queue. */
  | { type: "fold"; groupId: string; open: boolean }
  | { type: "back" }
  | { type: "help" }
  | { type: "filter-start" }
  | { type: "filter-text"; text: string }
  | { type: "filter-backspace" }
  | { type: "filter-done" }
  | { type: "filter-clear" }
  | { type: "ask"; command: Command; prompt: string }
  | { type: "ask-priority"; jobId: string }
  | { type: "confirm" }
  | { type: "dismiss" }
  | { type: "follow"; jobId: string; following: boolean }
  | { type: "say"; text: string };

export type Effect =
  | { kind: "quit" }
  | { kind: "run"; command: Command }
  | { kind: "open-job"; jobId: string; follow: boolean }
  | { kind: "follow"; jobId: string; following: boolean };

export const viewKeys: Record<string, ViewName> = { "1": "devices", "2": "queue", "3": "job", "4": "containers", "5": "events" };
export const viewTitles: Record<ViewName, string> = { devices: "Devices", queue: "Queue", job: "Job", containers: "Containers", events: "Events" };

/** What each key does, for the footer and the help screen. */
export const helpLines: [string, string][] = [
  ["1-5 Tab", "switch view: Devices, Queue, Job, Containers, Events"],
  ["↑↓ j k", "move; PgUp PgDn g G jump"],
  ["Enter", "open: the job under the cursor, a host's jobs, or a group's jobs"],
  ["←", "close the sweep group under the cursor (elsewhere: previous view)"],
  ["Esc", "back, or clear the filter"],
  ["/", "filter the list (Enter keeps it, Esc clears it)"],
  ["c", "cancel the selected job, or a whole group (asks first)"],
  ["r", "retry a finished job, or a group's unsuccessful jobs (asks first)"],
  ["p", "change the selected job's priority: h high, n normal, l low"],
  ["d", "drain or undrain the selected host (asks first)"],
  ["l / f", "open the job's live log / follow or pause it"],
  ["?", "this help"],
  ["q Ctrl-C", "quit"],
];

/** The keys for the view, and in the Queue for the row under the cursor (a group's, or one of its jobs). */
export function footerKeys(view: ViewName, s?: TuiState): string {
  const common = "? help  / filter  q quit";
  switch (view) {
    case "devices":
      return `1-5 views  ↑↓ move  ⏎ jobs  d drain  ${common}`;
    case "queue": {
      const g = s ? selectedGroup(s) : undefined;
      if (g?.onGroupRow) return `${s!.expandedGroups.includes(g.group.id) ? "⏎ ← collapse" : "⏎ expand"}  c cancel group  r retry group  ${common}`;
      if (g) return `⏎ open  ← collapse  c cancel  r retry  p priority  ${common}`;
      return `⏎ open  c cancel  r retry  p priority  l log  ${common}`;
    }
    case "job":
      return `Esc back  f follow  c cancel  r retry  p priority  ${common}`;
    case "containers":
      return `1-5 views  ↑↓ move  ⏎ job  ${common}`;
    case "events":
      return `1-5 views  ↑↓ scroll  ${common}`;
  }
}

const isListView = (v: ViewName): v is ListView => v !== "job";

export function keyToAction(input: string, key: KeyInfo, s: TuiState, pageSize = 10): Action | null {
  if (key.ctrl && input === "c") return { type: "quit" };

  if (s.modal?.kind === "confirm") {
    if (input === "y" || input === "Y" || key.return) return { type: "confirm" };
    if (input === "n" || input === "N" || input === "q" || key.escape) return { type: "dismiss" };
    return null;
  }
  if (s.modal?.kind === "priority") {
    const chosen: Record<string, Priority> = { h: "high", n: "normal", l: "low" };
    const p = chosen[input.toLowerCase()];
    if (p) return { type: "ask", command: { kind: "priority", jobId: s.modal.jobId, priority: p }, prompt: "" };
    if (key.escape || input === "q") return { type: "dismiss" };
    return null;
  }
  if (s.modal?.kind === "help") return key.escape || input === "?" || input === "q" || key.return ? { type: "dismiss" } : null;

  if (s.filterEditing) {
    if (key.return) return { type: "filter-done" };
    if (key.escape) return { type: "filter-clear" };
    if (key.backspace || key.delete) return { type: "filter-backspace" };
    if (input && !key.ctrl && !key.upArrow && !key.downArrow && !key.tab) return { type: "filter-text", text: input };
    return null;
  }

  if (input === "q") return { type: "quit" };
  if (input === "?") return { type: "help" };
  if (input === "/") return { type: "filter-start" };
  if (viewKeys[input]) return { type: "view", view: viewKeys[input]! };
  if (key.leftArrow && s.view === "queue") {
    // On an open group (its row or one of its jobs) ← closes it; elsewhere it is the previous view.
    const g = selectedGroup(s);
    if (g && s.expandedGroups.includes(g.group.id)) return { type: "fold", groupId: g.group.id, open: false };
  }
  if (key.tab || key.rightArrow || key.leftArrow) {
    const back = (key.tab && key.shift) || key.leftArrow;
    const i = viewOrder.indexOf(s.view);
    return { type: "view", view: viewOrder[(i + (back ? viewOrder.length - 1 : 1)) % viewOrder.length]! };
  }
  if (key.escape) return s.view === "job" ? { type: "back" } : s.filter ? { type: "filter-clear" } : null;
  if (key.upArrow || input === "k") return { type: "move", delta: -1 };
  if (key.downArrow || input === "j") return { type: "move", delta: 1 };
  if (key.pageUp) return { type: "move", delta: -pageSize };
  if (key.pageDown) return { type: "move", delta: pageSize };
  if (key.home || input === "g") return { type: "move", delta: -Infinity };
  if (key.end || input === "G") return { type: "move", delta: Infinity };

  if (key.return) {
    if (s.view === "devices") {
      const d = selectedDevice(s);
      return d ? { type: "host-jobs", hostId: d.hostId } : null;
    }
    if (s.view === "queue") {
      const row = selectedQueueRow(s);
      if (row?.kind === "group") return { type: "fold", groupId: row.group.id, open: !row.expanded };
      return row ? { type: "open-job", jobId: row.job.id, follow: true } : null;
    }
    if (s.view === "containers") {
      const j = selectedJob(s);
      return j ? { type: "open-job", jobId: j.id, follow: true } : null;
    }
    return null;
  }

  if (input === "d") {
    if (s.view !== "devices") return { type: "say", text: "drain works on a host: switch to Devices (1)" };
    const d = selectedDevice(s);
    if (!d) return { type: "say", text: "no host selected" };
    return d.draining
      ? { type: "ask", command: { kind: "undrain", hostId: d.hostId }, prompt: `undrain ${d.hostId}, so it takes new jobs again?` }
      : { type: "ask", command: { kind: "drain", hostId: d.hostId }, prompt: `drain ${d.hostId}? Running jobs finish; it takes no new ones.` };
  }

  if (input === "c" || input === "r" || input === "p" || input === "l" || input === "f") {
    const g = selectedGroup(s);
    if (g?.onGroupRow) return groupAction(input, g.group);
    const j = selectedJob(s);
    if (!j) return { type: "say", text: "no job selected" };
    const what = `job ${j.id} (${j.name})`;
    switch (input) {
      case "c":
        if (isTerminalJobState(j.state)) return { type: "say", text: `${what} already ended (${j.state})` };
        return { type: "ask", command: { kind: "cancel", jobId: j.id }, prompt: `cancel ${what}, now ${j.state}${j.hostId ? ` on ${j.hostId}` : ""}?` };
      case "r":
        if (!isTerminalJobState(j.state)) return { type: "say", text: `${what} is still ${j.state}; only a finished job can be retried` };
        return { type: "ask", command: { kind: "retry", jobId: j.id }, prompt: `queue ${what} again (it ended ${j.state})?` };
      case "p":
        if (isTerminalJobState(j.state)) return { type: "say", text: `${what} already ended (${j.state})` };
        return { type: "ask-priority", jobId: j.id };
      case "l":
        return { type: "open-job", jobId: j.id, follow: true };
      case "f":
        if (s.view !== "job") return { type: "open-job", jobId: j.id, follow: true };
        return { type: "follow", jobId: j.id, following: !(s.log?.jobId === j.id && s.log.following) };
    }
  }
  return null;
}

/**
 * `c` and `r` on a group's row act on the whole group. The question says how many of its jobs, in
 * which states, first: on a narrow screen the group's name is what gets cut.
 */
function groupAction(input: "c" | "r" | "p" | "l" | "f", g: GroupSummary): Action {
  const what = `group ${g.id} (${g.name})`;
  const n = g.jobs.length;
  const statesOf = (jobs: Job[]) => groupStatesText(summarizeGroup(g.id, jobs).states);
  if (input === "c") {
    const targets = g.jobs.filter((j) => !isTerminalJobState(j.state));
    if (targets.length === 0) return { type: "say", text: `${what}: ${n === 1 ? "its job" : `all ${n} jobs`} already ended` };
    return { type: "ask", command: { kind: "cancel-group", groupId: g.id }, prompt: `cancel ${jobCount(targets.length)} (${statesOf(targets)}) of ${what}?` };
  }
  if (input === "r") {
    // What the dispatcher's group retry queues again (dispatcher/store.ts retryGroup).
    const targets = g.jobs.filter((j) => j.state === "failed" || j.state === "cancelled" || j.state === "timed_out");
    if (targets.length === 0) return { type: "say", text: `${what}: no job of it failed, was cancelled or timed out; nothing to retry` };
    return { type: "ask", command: { kind: "retry-group", groupId: g.id }, prompt: `queue again ${jobCount(targets.length)} (${statesOf(targets)}) of ${what}?` };
  }
  return { type: "say", text: `${what} is a sweep group: ${input === "p" ? "priority" : "the log"} works on one of its jobs (Enter shows them)` };
}

export interface Reduced {
  state: TuiState;
  effects: Effect[];
}

export function reduceAction(s: TuiState, a: Action, nowMs: number = Date.now()): Reduced {
  const done = (state: TuiState, ...effects: Effect[]): Reduced => ({ state, effects });
  switch (a.type) {
    case "quit":
      return done(s, { kind: "quit" });
    case "view":
      return done({ ...s, view: a.view, returnView: a.view === "job" ? s.returnView : a.view, flash: null });
    case "move": {
      if (!isListView(s.view)) return done(s);
      const len = listLength(s, s.view);
      const cur = cursorOf(s, s.view, len);
      const next = Math.max(0, Math.min(len - 1, cur + a.delta));
      return done({ ...s, cursor: { ...s.cursor, [s.view]: Number.isFinite(next) ? next : 0 } });
    }
    case "open-job": {
      const opened = { ...startLog(s, a.jobId, a.follow), view: "job" as const, returnView: isListView(s.view) ? s.view : s.returnView, detailJobId: a.jobId, synced: null, flash: null };
      return done(opened, { kind: "open-job", jobId: a.jobId, follow: a.follow });
    }
    case "host-jobs": {
      const next: TuiState = { ...s, view: "queue", returnView: "queue", filter: a.hostId, filterEditing: false };
      return done({ ...next, cursor: { ...next.cursor, queue: 0 } });
    }
    case "fold": {
      const others = s.expandedGroups.filter((id) => id !== a.groupId);
      const next: TuiState = { ...s, expandedGroups: a.open ? [...others, a.groupId] : others };
      if (a.open) return done(next);
      // Closed from one of its jobs, the cursor goes to the group's row rather than to a stranger.
      const at = visibleQueueRows(next).findIndex((r) => r.kind === "group" && r.group.id === a.groupId);
      return done(at < 0 ? next : { ...next, cursor: { ...next.cursor, queue: at } });
    }
    case "back":
      return done({ ...s, view: s.returnView === "job" ? "queue" : s.returnView });
    case "help":
      return done({ ...s, modal: { kind: "help" } });
    case "filter-start":
      return done({ ...s, filterEditing: true });
    case "filter-text":
      return done(resetCursor({ ...s, filter: s.filter + a.text.replace(/[\r\n]/g, "") }));
    case "filter-backspace":
      return done(resetCursor({ ...s, filter: s.filter.slice(0, -1) }));
    case "filter-done":
      return done({ ...s, filterEditing: false });
    case "filter-clear":
      return done(resetCursor({ ...s, filter: "", filterEditing: false }));
    case "ask":
      if (a.command.kind === "priority") {
        // Picking a value in the priority chooser is the confirmation.
        return done({ ...s, modal: null }, { kind: "run", command: a.command });
      }
      return done({ ...s, modal: { kind: "confirm", command: a.command, prompt: a.prompt } });
    case "ask-priority":
      return done({ ...s, modal: { kind: "priority", jobId: a.jobId } });
    case "confirm":
      if (s.modal?.kind !== "confirm") return done(s);
      return done({ ...s, modal: null }, { kind: "run", command: s.modal.command });
    case "dismiss":
      return done({ ...s, modal: null });
    case "follow": {
      const log = s.log && s.log.jobId === a.jobId ? { ...s.log, following: a.following } : s.log;
      return done({ ...s, log }, { kind: "follow", jobId: a.jobId, following: a.following });
    }
    case "say":
      return done(flash(s, a.text, "info", nowMs));
  }
}

function resetCursor(s: TuiState): TuiState {
  return { ...s, cursor: { devices: 0, queue: 0, containers: 0, events: 0 } };
}

