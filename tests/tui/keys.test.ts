// The key map and its reducer, without rendering: which key does what in which state, and which
// effects (quit, a dispatcher call, opening a log) come out of it.
import { describe, expect, it } from "vitest";
import { visibleJobs } from "../../tui/derive.js";
import { type Action, type KeyInfo, keyToAction, reduceAction } from "../../tui/keys.js";
import type { TuiState } from "../../tui/state.js";
import { NOW, device, smallLab } from "./fixtures.js";

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
