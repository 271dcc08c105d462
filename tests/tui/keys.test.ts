// The key map and its reducer, without rendering: which key does what in which state, and which
// effects (quit, a dispatcher call, opening a log) come out of it.
import { describe, expect, it } from "vitest";
import { selectedQueueRow, visibleJobs } from "../../tui/derive.js";
import { type Action, type KeyInfo, footerKeys, keyToAction, reduceAction } from "../../tui/keys.js";
import type { TuiState } from "../../tui/state.js";
import { NOW, SWEEP, device, iso, labState, smallLab, sweepJobs } from "./fixtures.js";

/** Presses keys in order; returns the final state and every effect produced. */
function press(s: TuiState, ...keys: (string | [string, KeyInfo])[]) {
  const effects: unknown[] = [];
  for (const k of keys) {
    const [input, key] = typeof k === "string" ? [k, {}] : k;
    const a = keyToAction(input, key, s);
    if (!a) continue;
    const r = reduceAction(s, a, NOW);
    s = r.state;
    effects.push(...r.effects);
  }
  return { s, effects };
}

const esc: [string, KeyInfo] = ["", { escape: true }];
const enter: [string, KeyInfo] = ["\r", { return: true }];
const down: [string, KeyInfo] = ["", { downArrow: true }];
const left: [string, KeyInfo] = ["", { leftArrow: true }];
const tab: [string, KeyInfo] = ["", { tab: true }];
const shiftTab: [string, KeyInfo] = ["", { tab: true, shift: true }];

describe("key map", () => {
  it("quits on q and on Ctrl-C, even while a question is open", () => {
    expect(press(smallLab(), "q").effects).toEqual([{ kind: "quit" }]);
    const asking = smallLab({ modal: { kind: "confirm", command: { kind: "cancel", jobId: "x" }, prompt: "?" } });
    expect(press(asking, ["c", { ctrl: true }]).effects).toEqual([{ kind: "quit" }]);
  });

  it("switches views with 1-5 and cycles them with Tab and Shift-Tab", () => {
    expect(press(smallLab(), "2").s.view).toBe("queue");
    expect(press(smallLab(), "5").s.view).toBe("events");
    expect(press(smallLab(), tab, tab).s.view).toBe("job");
    expect(press(smallLab(), shiftTab).s.view).toBe("events");
  });

  it("moves the cursor within the list and stops at its ends", () => {
    const s = smallLab({ view: "queue" });
    expect(press(s, "j", down).s.cursor.queue).toBe(2);
    expect(press(s, "j", "j", "j", "j").s.cursor.queue).toBe(2);
    expect(press(s, "G", "k").s.cursor.queue).toBe(1);
    expect(press(s, "j", "g").s.cursor.queue).toBe(0);
  });

  it("asks before cancelling and cancels only on y", () => {
    const s = smallLab({ view: "queue" }); // cursor on the running job
    const asked = press(s, "c");
    expect(asked.s.modal).toMatchObject({ kind: "confirm", command: { kind: "cancel", jobId: "01jobrun00" } });
    expect(asked.effects).toEqual([]);
    expect(press(asked.s, "y").effects).toEqual([{ kind: "run", command: { kind: "cancel", jobId: "01jobrun00" } }]);
    const no = press(asked.s, "n");
    expect(no.effects).toEqual([]);
    expect(no.s.modal).toBeNull();
    // Other keys do nothing while the question is open.
    expect(press(asked.s, "q", "2").s).toMatchObject({ modal: null, view: "queue" });
  });

  it("refuses to cancel a finished job and to retry one still running, saying why", () => {
    const s = smallLab({ view: "queue" });
    const onFailed = press(s, "G");
    const c = press(onFailed.s, "c");
    expect(c.s.modal).toBeNull();
    expect(c.s.flash?.text).toContain("already ended (failed)");
    const r = press(s, "r");
    expect(r.s.modal).toBeNull();
    expect(r.s.flash?.text).toContain("only a finished job can be retried");
    expect(press(onFailed.s, "r", "y").effects).toEqual([{ kind: "run", command: { kind: "retry", jobId: "01jobfail0" } }]);
  });

  it("changes priority through the h/n/l chooser, and Esc keeps it", () => {
    const s = smallLab({ view: "queue" });
    const onQueued = press(s, "j");
    expect(visibleJobs(onQueued.s)[1]!.id).toBe("01jobque00");
    const chooser = press(onQueued.s, "p");
    expect(chooser.s.modal).toEqual({ kind: "priority", jobId: "01jobque00" });
    expect(press(chooser.s, "l").effects).toEqual([{ kind: "run", command: { kind: "priority", jobId: "01jobque00", priority: "low" } }]);
    expect(press(chooser.s, esc).effects).toEqual([]);
  });

  it("drains the selected host after asking, and offers undrain for a draining host", () => {
    const s = smallLab(); // devices view, cursor on gpu-3090 (sorted first)
    expect(press(s, "d", "y").effects).toEqual([{ kind: "run", command: { kind: "drain", hostId: "gpu-3090" } }]);
    const draining = smallLab({ devices: { "gpu-x": device("gpu-x", { draining: true, status: "draining" }) } });
    expect(press(draining, "d", enter).effects).toEqual([{ kind: "run", command: { kind: "undrain", hostId: "gpu-x" } }]);
    expect(press(smallLab({ view: "queue" }), "d").s.flash?.text).toContain("switch to Devices");
  });

  it("filters with /, narrowing the list and resetting the cursor; Enter keeps the filter, Esc clears it", () => {
    const s = press(smallLab({ view: "queue" }), "j", "j").s;
    const typing = press(s, "/", "v", "i", "t");
    expect(typing.s.filterEditing).toBe(true);
    expect(typing.s.cursor.queue).toBe(0);
    expect(visibleJobs(typing.s).map((j) => j.id)).toEqual(["01jobque00"]);
    // While typing, q is text, not quit.
    expect(press(typing.s, "q").effects).toEqual([]);
    expect(press(typing.s, "q").s.filter).toBe("vitq");
    const kept = press(typing.s, enter);
    expect(kept.s).toMatchObject({ filter: "vit", filterEditing: false });
    expect(press(kept.s, esc).s.filter).toBe("");
    expect(press(typing.s, ["", { backspace: true }]).s.filter).toBe("vi");
  });

  it("opens the job under the cursor with its log followed, and Esc returns to the queue", () => {
    const opened = press(smallLab({ view: "queue" }), "j", enter);
    expect(opened.s).toMatchObject({ view: "job", detailJobId: "01jobque00" });
    expect(opened.s.log).toMatchObject({ jobId: "01jobque00", following: true });
    expect(opened.effects).toEqual([{ kind: "open-job", jobId: "01jobque00", follow: true }]);
    expect(press(opened.s, esc).s.view).toBe("queue");
    const paused = press(opened.s, "f");
    expect(paused.effects).toEqual([{ kind: "follow", jobId: "01jobque00", following: false }]);
    expect(paused.s.log?.following).toBe(false);
    expect(press(paused.s, "f").effects).toEqual([{ kind: "follow", jobId: "01jobque00", following: true }]);
  });

  it("shows a host's jobs on Enter in Devices, and its running job's log on l", () => {
    const s = press(smallLab(), "j").s; // gpu-a100
    expect(press(s, enter).s).toMatchObject({ view: "queue", filter: "gpu-a100" });
    expect(press(s, "l").effects).toEqual([{ kind: "open-job", jobId: "01jobrun00", follow: true }]);
  });

  it("opens and closes the help with ?", () => {
    const help = press(smallLab(), "?");
    expect(help.s.modal).toEqual({ kind: "help" });
    expect(press(help.s, "?").s.modal).toBeNull();
    expect(press(help.s, "q").effects).toEqual([]);
  });

  it("ignores keys it does not know", () => {
    const s = smallLab();
    for (const k of ["x", "Z", "0", " "]) expect(keyToAction(k, {}, s) as Action | null).toBeNull();
  });
});

/** The small lab's three jobs and the 6-job sweep, in the Queue; the sweep's row sorts first. */
const sweepLab = (over: Partial<TuiState> = {}) => {
  const small = smallLab();
  return labState(Object.values(small.devices), [...Object.values(small.jobs), ...sweepJobs()], { view: "queue", ...over });
};
const under = (s: TuiState) => {
  const r = selectedQueueRow(s);
  return r?.kind === "group" ? `group ${r.group.id}` : r?.job.id;
};

describe("sweep groups in the Queue", () => {
  it("opens a group's row on Enter and closes it on Enter again, the cursor staying on it", () => {
    const s = sweepLab();
    expect(under(s)).toBe(`group ${SWEEP}`);
    const opened = press(s, enter);
    expect(opened.s.expandedGroups).toEqual([SWEEP]);
    expect(opened.effects).toEqual([]);
    expect(opened.s.view).toBe("queue");
    const closed = press(opened.s, enter);
    expect(closed.s.expandedGroups).toEqual([]);
    expect(under(closed.s)).toBe(`group ${SWEEP}`);
  });

  it("moves over a closed group as one row, and into an open one's jobs, where Enter opens the job", () => {
    expect(under(press(sweepLab(), "j").s)).toBe("01jobrun00");
    const inside = press(sweepLab(), enter, "j");
    expect(under(inside.s)).toBe("01swp00001");
    expect(press(inside.s, "j", "j", "j", "j", "j").s.cursor.queue).toBe(6);
    expect(under(press(inside.s, "j", "j", "j", "j", "j", "j").s)).toBe("01jobrun00");
    const job = press(inside.s, enter);
    expect(job.s).toMatchObject({ view: "job", detailJobId: "01swp00001" });
    expect(job.effects).toEqual([{ kind: "open-job", jobId: "01swp00001", follow: true }]);
  });

  it("closes the open group on ← from its row or any of its jobs, the cursor back on its row; elsewhere ← is the previous view", () => {
    const deep = press(sweepLab(), enter, "j", "j", "j").s;
    expect(under(deep)).toBe("01swp00003");
    const closed = press(deep, left);
    expect(closed.s).toMatchObject({ view: "queue", expandedGroups: [] });
    expect(under(closed.s)).toBe(`group ${SWEEP}`);
    expect(press(sweepLab(), enter, left).s.expandedGroups).toEqual([]);
    // A closed group, or a job of no group: ← switches view as before.
    expect(press(sweepLab(), left).s.view).toBe("devices");
    expect(press(sweepLab(), "j", left).s.view).toBe("devices");
  });

  it("asks before cancelling a group, naming it and how many of its jobs it stops, then cancels the whole group", () => {
    const asked = press(sweepLab(), "c");
    expect(asked.s.modal).toEqual({ kind: "confirm", command: { kind: "cancel-group", groupId: SWEEP }, prompt: `cancel 5 jobs (2 running · 3 queued) of group ${SWEEP} (lr-sweep)?` });
    expect(asked.effects).toEqual([]);
    expect(press(asked.s, "y").effects).toEqual([{ kind: "run", command: { kind: "cancel-group", groupId: SWEEP } }]);
    expect(press(asked.s, "n").effects).toEqual([]);
    // On one of its jobs, c is that job's alone.
    expect(press(sweepLab(), enter, "j", "c", "y").effects).toEqual([{ kind: "run", command: { kind: "cancel", jobId: "01swp00001" } }]);
  });

  it("retries a group's failed, cancelled and timed-out jobs after asking, and says why when there are none", () => {
    const nothing = press(sweepLab(), "r");
    expect(nothing.s.modal).toBeNull();
    expect(nothing.s.flash?.text).toBe(`group ${SWEEP} (lr-sweep): no job of it failed, was cancelled or timed out; nothing to retry`);
    const jobs = sweepJobs().map((j, i) => (i < 2 ? { ...j, state: "failed" as const, endedAt: iso(5) } : i === 2 ? { ...j, state: "cancelled" as const, endedAt: iso(5) } : j));
    const s = labState([], jobs, { view: "queue" });
    const asked = press(s, "r");
    expect(asked.s.modal).toMatchObject({ kind: "confirm", command: { kind: "retry-group", groupId: SWEEP }, prompt: `queue again 3 jobs (2 failed · 1 cancelled) of group ${SWEEP} (lr-sweep)?` });
    expect(press(asked.s, enter).effects).toEqual([{ kind: "run", command: { kind: "retry-group", groupId: SWEEP } }]);
  });

  it("refuses to cancel a group whose jobs all ended, and sends priority and log keys to its jobs", () => {
    const ended = labState([], sweepJobs().map((j) => ({ ...j, state: "succeeded" as const, endedAt: iso(5) })), { view: "queue" });
    expect(press(ended, "c").s.flash?.text).toBe(`group ${SWEEP} (lr-sweep): all 6 jobs already ended`);
    const p = press(sweepLab(), "p");
    expect(p.s.modal).toBeNull();
    expect(p.s.flash?.text).toContain("priority works on one of its jobs (Enter shows them)");
    expect(press(sweepLab(), "l").effects).toEqual([]);
  });

  it("says in the footer what Enter, ← and c do on the row under the cursor", () => {
    expect(footerKeys("queue", sweepLab())).toMatch(/^⏎ expand {2}c cancel group {2}r retry group /);
    expect(footerKeys("queue", press(sweepLab(), enter).s)).toMatch(/^⏎ ← collapse {2}c cancel group /);
    expect(footerKeys("queue", press(sweepLab(), enter, "j").s)).toMatch(/^⏎ open {2}← collapse {2}c cancel {2}r retry {2}p priority /);
    expect(footerKeys("queue", press(sweepLab(), "j").s)).toMatch(/^⏎ open {2}c cancel {2}r retry {2}p priority {2}l log /);
  });
});
