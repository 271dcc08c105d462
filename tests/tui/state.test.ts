// The dashboard's pure state updates (events, bursts, snapshots, log tails) and its store's
// throttle: updates coalesce to a few renders a second, key presses go through at once, and the
// refresh gap widens while the process is over its CPU budget.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { DispatcherEvent } from "../../core/api.js";
import {
  MAX_FINISHED_JOBS,
  MAX_LOG_LINES,
  appendLogText,
  applyDispatcherEvent,
  applyDispatcherEvents,
  MISSED_JOB_ENDS,
  applySnapshot,
  initialState,
  replaceLogText,
  setConnection,
  startLog,
} from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";
import { dashboardStoreOptions } from "../../tui/app.js";
import { NOW, device, gpu, iso, job, labState } from "./fixtures.js";

const at = new Date(NOW);

describe("state updates", () => {
  it("records a job's state change as an event naming both states, host, exit code and attempt", () => {
    let s = applyDispatcherEvent(labState([], []), { type: "job", job: job("01a", { state: "running", hostId: "h1" }) }, at);
    s = applyDispatcherEvent(s, { type: "job", job: job("01a", { state: "failed", hostId: "h1", exitCode: 3, reason: "exit code 3" }) }, at);
    expect(s.events.map((e) => e.text)).toEqual(["job 01a (train-01a) running → failed on h1 exit 3 (exit code 3)", "job 01a (train-01a) running on h1"]);
    expect(s.events[0]!.level).toBe("error");
    // A repeat with nothing new adds no event.
    expect(applyDispatcherEvent(s, { type: "job", job: s.jobs["01a"]! }, at).events).toHaveLength(2);
  });

  it("records hosts joining and changing status, but not every heartbeat", () => {
    let s = applyDispatcherEvent(labState([], []), { type: "device", device: device("h1") }, at);
    s = applyDispatcherEvent(s, { type: "device", device: device("h1", { gpus: [gpu(0, { utilizationPct: 99 })] }) }, at);
    s = applyDispatcherEvent(s, { type: "device", device: device("h1", { status: "stale" }) }, at);
    expect(s.events.map((e) => e.text)).toEqual(["host h1 healthy → stale", "host h1 joined with 2 GPUs (healthy)"]);
  });

  it("applies a burst of events like the same events one by one", () => {
    const evs: DispatcherEvent[] = [
      { type: "device", device: device("h1") },
      { type: "device", device: device("h2") },
      { type: "device", device: device("h1", { gpus: [gpu(0, { utilizationPct: 1 })] }) },
      { type: "job", job: job("01b", { state: "queued" }) },
      { type: "device", device: device("h2", { status: "disconnected" }) },
      { type: "device", device: device("h1", { gpus: [gpu(0, { utilizationPct: 77 })] }) },
      { type: "notice", level: "warn", message: "disk almost full", at: iso(0) },
    ];
    const start = labState([device("h1")], []);
    const oneByOne = evs.reduce((s, ev) => applyDispatcherEvent(s, ev, at), start);
    const burst = applyDispatcherEvents(start, evs, at);
    expect(burst.devices).toEqual(oneByOne.devices);
    expect(burst.jobs).toEqual(oneByOne.jobs);
    expect(burst.events).toEqual(oneByOne.events);
    expect(burst.devices.h1!.gpus[0]!.utilizationPct).toBe(77);
  });

  it("keeps every unfinished job and only the newest finished ones", () => {
    const finished = Array.from({ length: MAX_FINISHED_JOBS + 50 }, (_, i) => job(`01f${String(i).padStart(5, "0")}`, { state: "succeeded", endedAt: iso(10_000 - i) }));
    const queued = Array.from({ length: 20 }, (_, i) => job(`01q${i}`, { state: "queued" }));
    const s = applySnapshot(labState([], []), [], [...finished, ...queued], at);
    const ids = Object.keys(s.jobs);
    expect(ids.filter((id) => id.startsWith("01q"))).toHaveLength(20);
    expect(ids.filter((id) => id.startsWith("01f"))).toHaveLength(MAX_FINISHED_JOBS);
    // The oldest finished ones went.
    expect(s.jobs["01f00000"]).toBeUndefined();
    expect(s.jobs[`01f${String(MAX_FINISHED_JOBS + 49).padStart(5, "0")}`]).toBeDefined();
  });

  it("turns job ends the event stream did not bring into events at the time each job ended", () => {
    const ended = Array.from({ length: 30 }, (_, i) => job(`01e${String(i).padStart(5, "0")}`, { state: "succeeded", hostId: "vm", endedAt: iso(1000 - i) }));
    const first = applySnapshot(labState([], []), [], [...ended, job("01q", { state: "queued" })], at);
    // The first listing: the newest ends only, newest first, at their own times.
    expect(first.events).toHaveLength(MISSED_JOB_ENDS);
    expect(first.events[0]).toMatchObject({ kind: "job", at: iso(1000 - 29), text: "job 01e00029 (train-01e00029) succeeded on vm" });
    // A resync adds what ended meanwhile (a disconnect), once, and nothing it already knew.
    const later = job("01q", { state: "failed", exitCode: 3, hostId: "vm", endedAt: iso(5), reason: "exit code 3" });
    const second = applySnapshot(first, [], [...ended, later], at);
    expect(second.events).toHaveLength(MISSED_JOB_ENDS + 1);
    expect(second.events[0]).toMatchObject({ level: "error", text: "job 01q (train-01q) queued → failed on vm exit 3 (exit code 3)" });
    expect(applySnapshot(second, [], [...ended, later], at).events).toHaveLength(MISSED_JOB_ENDS + 1);
  });

  it("keeps the job on screen across a resync that no longer lists it", () => {
    const old = job("01old", { state: "succeeded", endedAt: iso(9999) });
    const s = applySnapshot(labState([], [old], { detailJobId: "01old" }), [], [], at);
    expect(s.jobs["01old"]).toEqual(old);
  });

  it("splits streamed log text into lines, holding an unfinished line apart, and keeps a bounded tail", () => {
    let s = startLog(initialState("http://x"), "01j");
    s = appendLogText(s, "01j", "epoch 1\nepo");
    expect(s.log).toMatchObject({ lines: ["epoch 1"], partial: "epo" });
    s = appendLogText(s, "01j", "ch 2\r\n");
    expect(s.log).toMatchObject({ lines: ["epoch 1", "epoch 2"], partial: "" });
    // Text for another job is ignored.
    expect(appendLogText(s, "01other", "x\n")).toBe(s);
    s = appendLogText(s, "01j", Array.from({ length: MAX_LOG_LINES + 10 }, (_, i) => `l${i}`).join("\n") + "\n");
    expect(s.log!.lines).toHaveLength(MAX_LOG_LINES);
    expect(s.log!.lines.at(-1)).toBe(`l${MAX_LOG_LINES + 9}`);
    expect(replaceLogText(s, "01j", "fresh\n").log!.lines).toEqual(["fresh"]);
  });

  it("notes losing and regaining the dispatcher once each, not on every retry", () => {
    let s = labState([], []);
    s = setConnection(s, "disconnected", at, { error: "ECONNREFUSED", retryAt: NOW + 500 });
    s = setConnection(s, "disconnected", at, { error: "ECONNREFUSED", retryAt: NOW + 1000 });
    s = setConnection(s, "connected", at);
    expect(s.events.map((e) => e.text)).toEqual(["reconnected to the dispatcher at http://127.0.0.1:8000", "lost the dispatcher at http://127.0.0.1:8000: ECONNREFUSED"]);
    expect(s.connection).toMatchObject({ status: "connected", error: null, retryAt: null });
  });
});

describe("store", () => {
  it("coalesces a flood of updates into at most maxHz notifications a second, ending with the latest state", async () => {
    const store = new TuiStore(initialState("http://x"), { maxHz: 4, cpuBudgetPct: 0 });
    const seen: number[] = [];
    store.subscribe((s) => seen.push(Object.keys(s.devices).length));
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 1000) {
      const id = `h${n++}`;
      store.update((s) => ({ ...s, devices: { ...s.devices, [id]: device(id) } }));
      await sleep(5);
    }
    await sleep(300);
    // At most one notification per 1/maxHz of the time that really passed (a busy CI machine
    // stretches the loop), plus the leading one.
    const elapsedMs = Date.now() - t0;
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.length).toBeLessThanOrEqual(Math.floor(elapsedMs / 250) + 1);
    expect(seen.at(-1)).toBe(n);
    store.close();
  });

  it("notifies a key press at once, even inside the throttle window", () => {
    const store = new TuiStore(initialState("http://x"), { maxHz: 1, cpuBudgetPct: 0 });
    const seen: string[] = [];
    store.subscribe((s) => seen.push(s.view));
    store.updateNow((s) => ({ ...s, view: "queue" }));
    store.updateNow((s) => ({ ...s, view: "events" }));
    expect(seen).toEqual(["queue", "events"]);
    store.close();
  });

  it("widens the gap between notifications while the process is over its CPU budget, up to the limit", async () => {
    const store = new TuiStore(initialState("http://x"), { maxHz: 4, cpuBudgetPct: 5, maxGapMs: 1500 });
    store.subscribe(() => {
      // A listener that costs 100 ms of CPU, like a huge frame.
      const end = performance.now() + 100;
      while (performance.now() < end);
    });
    expect(store.notifyGapMs).toBe(250);
    const t0 = Date.now();
    while (Date.now() - t0 < 2500) {
      store.refresh();
      await sleep(20);
    }
    expect(store.notifyGapMs).toBeGreaterThan(250);
    expect(store.notifyGapMs).toBeLessThanOrEqual(1500);
    store.close();
  });

  it("keeps the dashboard's screen under 1 s behind even when every frame is over its CPU budget", async () => {
    const store = new TuiStore(initialState("http://x"), dashboardStoreOptions);
    const at: number[] = [];
    store.subscribe(() => {
      at.push(Date.now());
      const end = performance.now() + 100;
      while (performance.now() < end);
    });
    const t0 = Date.now();
    while (Date.now() - t0 < 4000) {
      store.refresh();
      await sleep(20);
    }
    store.close();
    expect(store.notifyGapMs).toBeGreaterThan(250);
    expect(store.notifyGapMs).toBeLessThanOrEqual(900);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(Math.max(...gaps)).toBeLessThan(1000 + 100);
  });
});
