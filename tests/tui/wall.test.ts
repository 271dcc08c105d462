// The wall rendered by blessed-contrib into a fake TTY stream, whose bytes a headless xterm turns
// back into the text a person would see on the wall.
import { createRequire } from "node:module";
import { PassThrough } from "node:stream";
import { Terminal } from "@xterm/headless";
import { afterEach, describe, expect, it } from "vitest";
import { GpuHistory } from "../../tui/history.js";
import { addEvent, applySnapshot, setConnection } from "../../tui/state.js";
import { createWall, wallModel } from "../../tui/wall.js";
import { NOW, device, gpu, iso, job, labState, smallLab } from "./fixtures.js";

const require = createRequire(import.meta.url);
const blessed = require("blessed") as typeof import("blessed");

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A blessed screen writing into a fake 120×40 TTY whose output a headless terminal interprets. */
function fakeWallScreen(cols = 120, rows = 40) {
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => input });
  const term = new Terminal({ cols, rows, allowProposedApi: true });
  let pending = Promise.resolve();
  let bytes = 0;
  output.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    const s = chunk.toString("utf8");
    pending = pending.then(() => new Promise<void>((r) => term.write(s, r)));
  });
  const screen = blessed.screen({ input: input as never, output: output as never, terminal: "xterm", fullUnicode: true, warnings: false });
  cleanups.push(() => {
    screen.destroy();
    term.dispose();
  });
  const text = async () => {
    await new Promise((r) => setImmediate(r));
    await pending;
    const lines: string[] = [];
    for (let y = 0; y < rows; y++) lines.push(term.buffer.active.getLine(y)?.translateToString(true) ?? "");
    return lines.join("\n");
  };
  return { screen, text, bytes: () => bytes };
}

describe("wall", () => {
  it("draws host history charts, cluster gauges, the queue and recent events into the terminal", async () => {
    let s = smallLab();
    s = addEvent(s, { at: iso(10), kind: "job", level: "error", text: "job 01jobfail0 (bert-tiny) running → failed exit 2" });
    const history = new GpuHistory();
    for (let i = 5; i >= 0; i--) history.record(Object.values(s.devices), NOW - i * 2000);
    const { screen, text, bytes } = fakeWallScreen();
    createWall(screen).show(wallModel(s, history, NOW));
    const out = await text();
    expect(bytes()).toBeGreaterThan(1000);
    expect(out).toContain("GPU utilisation");
    expect(out).toContain("hottest GPU");
    // Legends name the charted hosts.
    expect(out).toContain("gpu-a100");
    expect(out).toContain("gpu-3090");
    expect(out).toContain("GPUs busy");
    // One of three GPUs is busy.
    expect(out).toContain("33%");
    // The queue table lists running, queued and finished jobs.
    expect(out).toMatch(/01jobrun00\s+resnet50-sweep\s+running/);
    expect(out).toMatch(/01jobque00\s+vit-base\s+queued/);
    expect(out).toContain("ERROR job 01jobfail0 (bert-tiny) running →");
    expect(out).toContain("labrig wall · 127.0.0.1:8000 · live");
  });

  it("says so on the wall when the dispatcher is gone", async () => {
    const s = setConnection(smallLab(), "disconnected", new Date(NOW), { error: "ECONNREFUSED", retryAt: NOW + 2000 });
    const { screen, text } = fakeWallScreen();
    createWall(screen).show(wallModel(s, new GpuHistory(), NOW));
    const out = await text();
    expect(out).toContain("DISCONNECTED (ECONNREFUSED)");
    expect(out).toContain("lost the dispatcher");
  });

  it("shows an empty lab without failing to draw", async () => {
    const s = { ...smallLab(), devices: {}, jobs: {} };
    const { screen, text } = fakeWallScreen(80, 24);
    createWall(screen).show(wallModel(s, new GpuHistory(), NOW));
    const out = await text();
    expect(out).toContain("no jobs");
    expect(out).toContain("no events yet");
  });
});

describe("the wall after a first hour (issue 19)", () => {
  /** A GPU-less host (a laptop's local lab) whose job has ended, as the wall first sees it. */
  function laptopLab() {
    const done = job("01jobdone0", { name: "train", state: "succeeded", hostId: "vm", exitCode: 0, endedAt: iso(5) });
    return applySnapshot(labState([], []), [device("vm", { gpus: [] })], [done], new Date(NOW));
  }

  it("labels empty charts without printing null and says the host has no GPUs instead of no hosts", async () => {
    const s = laptopLab();
    const history = new GpuHistory();
    history.record(Object.values(s.devices), NOW);
    const { screen, text } = fakeWallScreen();
    createWall(screen).show(wallModel(s, history, NOW));
    const out = await text();
    expect(out).not.toContain("null");
    expect(out).toContain("no GPUs");
    expect(out).not.toContain("no hosts");
  });

  it("keeps a job's state apart from its host in the queue table", async () => {
    const { screen, text } = fakeWallScreen();
    createWall(screen).show(wallModel(laptopLab(), new GpuHistory(), NOW));
    expect(await text()).toMatch(/01jobdone0\s+train\s+succeeded\s+vm\s+5s/);
  });

  it("shows jobs that ended before it started in recent events", async () => {
    const { screen, text } = fakeWallScreen();
    createWall(screen).show(wallModel(laptopLab(), new GpuHistory(), NOW));
    const out = await text();
    expect(out).not.toContain("no events yet");
    expect(out).toContain("job 01jobdone0 (train) succeeded on vm");
  });
});

describe("wall model and GPU history", () => {
  it("charts the busiest hosts first, keeps only the last samples, and shows a silent host as 0", () => {
    const history = new GpuHistory(3);
    const hot = device("hot", { gpus: [gpu(0, { utilizationPct: 100, temperatureC: 85 })] });
    const idle = device("idle", { gpus: [gpu(0, { utilizationPct: 0, temperatureC: 30 })] });
    for (let i = 0; i < 5; i++) history.record([hot, idle], NOW - (5 - i) * 1000);
    expect(history.series("hot")!.at).toHaveLength(3);
    expect(history.top(1).map((h) => h.hostId)).toEqual(["hot"]);
    history.record([{ ...idle, status: "disconnected" }], NOW);
    expect(history.series("idle")!.utilPct.at(-1)).toBeNull();
    const m = wallModel(smallLab(), history, NOW);
    expect(m.util.map((x) => x.title)).toEqual(["hot", "idle"]);
    expect(m.util[1]!.y.at(-1)).toBe(0);
    expect(m.temp[0]!.y).toEqual([85, 85, 85]);
  });

  it("counts cluster gauges over connected hosts only", () => {
    const s = smallLab();
    const m = wallModel(s, new GpuHistory(), NOW);
    expect(m.busyPct).toBe(33);
    // Mean of 97 and 3 (the 3090 reports no utilisation).
    expect(m.meanUtilPct).toBe(50);
    const gone = { ...s, devices: { ...s.devices, "gpu-a100": { ...s.devices["gpu-a100"]!, status: "disconnected" as const } } };
    expect(wallModel(gone, new GpuHistory(), NOW).busyPct).toBe(0);
  });
});
