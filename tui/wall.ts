// `labrig wall`: a read-only full-screen monitor for a screen on the lab's wall, drawn with
// blessed-contrib: per-host GPU utilisation and temperature history (kept in memory from the
// event stream), gauges for the whole cluster, the queue and recent events. It shares the
// dashboard's data client and state; `wallModel` turns the state into what the widgets show.
import { createRequire } from "node:module";
import type { Widgets } from "blessed";
import { isTerminalJobState } from "../core/api.js";
import { DataClient } from "./client.js";
import { visibleJobs } from "./derive.js";
import { age, clock } from "./format.js";
import { GpuHistory, type HostSeries, meanOf } from "./history.js";
import { type TuiState, initialState } from "./state.js";
import { TuiStore } from "./store.js";

const require = createRequire(import.meta.url);
// blessed-contrib ships no types; the few calls used here are typed below.
const blessed = require("blessed") as typeof import("blessed");
const contrib = require("blessed-contrib") as Contrib;

interface LineSeries {
  title: string;
  x: string[];
  y: number[];
  style?: { line: string };
}
interface Contrib {
  grid: new (opts: { rows: number; cols: number; screen: Widgets.Screen }) => { set<T>(row: number, col: number, rowSpan: number, colSpan: number, widget: unknown, opts: object): T };
  line: unknown;
  gauge: unknown;
  table: unknown;
}
interface LineWidget {
  setData(series: LineSeries[]): void;
}
interface GaugeWidget {
  setPercent(pct: number): void;
}
interface TableWidget {
  setData(d: { headers: string[]; data: string[][] }): void;
}

// The chart canvas knows the eight basic colour names only.
const SERIES_COLOURS = ["yellow", "cyan", "green", "magenta", "red", "blue", "white"];
const CHARTED_HOSTS = 6;

export interface WallModel {
  title: string;
  util: LineSeries[];
  temp: LineSeries[];
  busyPct: number;
  meanUtilPct: number;
  memPct: number;
  queue: string[][];
  events: string[];
}

/** What the wall shows for a state and its history: pure, so it is tested without a terminal. */
export function wallModel(s: TuiState, history: GpuHistory, now: number, rows = 12): WallModel {
  let gpus = 0;
  let busy = 0;
  let memUsed = 0;
  let memTotal = 0;
  const utils: (number | null)[] = [];
  for (const id in s.devices) {
    const d = s.devices[id]!;
    if (d.status === "disconnected") continue;
    for (const g of d.gpus) {
      gpus++;
      if (g.busy) busy++;
      utils.push(g.utilizationPct);
      if (g.memoryUsedMiB != null) {
        memUsed += g.memoryUsedMiB;
        memTotal += g.memoryTotalMiB;
      }
    }
  }
  const top = history.top(CHARTED_HOSTS);
  const series = (pick: (h: HostSeries) => (number | null)[]) =>
    top.map((h, i): LineSeries => {
      const ys = pick(h).map((v) => (v == null ? 0 : Math.round(v)));
      const xs = h.at.map((t) => `-${age(new Date(t).toISOString(), now)}`);
      // A line needs two points to draw.
      if (ys.length === 1) {
        ys.unshift(ys[0]!);
        xs.unshift(xs[0]!);
      }
      return { title: h.hostId, x: xs, y: ys, style: { line: SERIES_COLOURS[i % SERIES_COLOURS.length]! } };
    });
  // A chart needs a series to draw: without GPU history, one flat line says why.
  // (Empty x labels would print as "null"; the legend fits 12 characters.)
  const why = gpus > 0 ? "sampling…" : Object.keys(s.devices).length > 0 ? "no GPUs" : "no hosts";
  const placeholder = (): LineSeries[] => [{ title: why, x: [" ", " "], y: [0, 0] }];
  const conn = s.connection.status === "connected" ? "live" : s.connection.status === "connecting" ? "connecting…" : `DISCONNECTED (${s.connection.error ?? "retrying"})`;
  const active = visibleJobs({ ...s, filter: "" });
  const queue = active.slice(0, rows).map((j) => [j.id, j.name, j.state, j.hostId ?? "—", age(isTerminalJobState(j.state) ? j.endedAt : j.state === "running" ? j.startedAt : j.createdAt, now)]);
  return {
    title: `labrig wall · ${s.url.replace(/^https?:\/\//, "")} · ${conn}`,
    util: top.length ? series((h) => h.utilPct) : placeholder(),
    temp: top.length ? series((h) => h.tempC) : placeholder(),
    busyPct: gpus ? Math.round((busy / gpus) * 100) : 0,
    meanUtilPct: Math.round(meanOf(utils) ?? 0),
    memPct: memTotal ? Math.round((memUsed / memTotal) * 100) : 0,
    queue,
    events: s.events.slice(0, 50).map((e) => `${clock(e.at)} ${e.level === "info" ? "" : `${e.level.toUpperCase()} `}${e.text}`),
  };
}

export interface Wall {
  show(model: WallModel): void;
}

/** Lays the widgets out on a screen; `show` fills them and renders. */
export function createWall(screen: Widgets.Screen): Wall {
  const grid = new contrib.grid({ rows: 12, cols: 12, screen });
  const lineOpts = (label: string, maxY: number) => ({ label, showLegend: true, legend: { width: 14 }, minY: 0, maxY, wholeNumbersOnly: true, style: { text: "white", baseline: "white" } });
  const util = grid.set<LineWidget>(0, 0, 4, 8, contrib.line, lineOpts(" GPU utilisation % (mean per host) ", 100));
  const temp = grid.set<LineWidget>(4, 0, 4, 8, contrib.line, lineOpts(" hottest GPU °C per host ", 100));
  const gaugeOpts = (label: string, stroke: string) => ({ label, stroke, fill: "white" });
  const busy = grid.set<GaugeWidget>(0, 8, 2, 4, contrib.gauge, gaugeOpts(" GPUs busy ", "green"));
  const mean = grid.set<GaugeWidget>(2, 8, 2, 4, contrib.gauge, gaugeOpts(" mean GPU utilisation ", "cyan"));
  const mem = grid.set<GaugeWidget>(4, 8, 2, 4, contrib.gauge, gaugeOpts(" GPU memory used ", "magenta"));
  const title = grid.set<Widgets.BoxElement>(6, 8, 2, 4, blessed.box, { label: " lab ", tags: false, style: { fg: "white" } });
  const queue = grid.set<TableWidget>(8, 0, 4, 6, contrib.table, {
    label: " queue ",
    keys: false,
    interactive: false,
    columnSpacing: 1,
    // The state column fits "succeeded" and "timed_out" plus a space: the table pads but never
    // separates a cell as wide as its column from the next.
    columnWidth: [11, 18, 10, 12, 5],
    fg: "white",
  });
  const events = grid.set<Widgets.BoxElement>(8, 6, 4, 6, blessed.box, { label: " recent events ", tags: false, style: { fg: "white" } });
  return {
    show(m: WallModel) {
      util.setData(m.util);
      temp.setData(m.temp);
      busy.setPercent(m.busyPct);
      mean.setPercent(m.meanUtilPct);
      mem.setPercent(m.memPct);
      title.setContent(`${m.title}\nq quits`);
      queue.setData({ headers: ["id", "name", "state", "host", "age"], data: m.queue.length ? m.queue : [["", "no jobs", "", "", ""]] });
      // One event a line, cut to the box: wrapped events read as two.
      const w = Math.max(10, (events.width as number) - 2);
      events.setContent(m.events.length ? m.events.map((l) => (l.length > w ? `${l.slice(0, w - 1)}…` : l)).join("\n") : "no events yet");
      screen.render();
    },
  };
}

export interface RunWallOptions {
  url: string;
  token: string;
  /** How often history is sampled and the screen redrawn. */
  sampleMs?: number;
}

/** Runs the wall on this terminal until q, Esc or Ctrl-C. */
export async function runWall(opts: RunWallOptions): Promise<void> {
  const store = new TuiStore(initialState(opts.url.replace(/\/+$/, "")), { maxHz: 1 });
  const client = new DataClient({ url: opts.url, token: opts.token, store });
  const history = new GpuHistory(150);
  const screen = blessed.screen({ smartCSR: true, title: "labrig wall", fullUnicode: true });
  const wall = createWall(screen);
  const draw = () => wall.show(wallModel(store.get(), history, Date.now(), Math.max(3, Math.floor(((screen.height as number) / 12) * 4) - 4)));
  const sample = () => {
    history.record(Object.values(store.get().devices), Date.now());
    draw();
  };
  client.start();
  const timer = setInterval(sample, opts.sampleMs ?? 2000);
  const unsubscribe = store.subscribe(draw);
  screen.on("resize", draw);
  draw();
  await new Promise<void>((resolve) => screen.key(["q", "escape", "C-c"], () => resolve()));
  clearInterval(timer);
  unsubscribe();
  client.stop();
  store.close();
  screen.destroy();
}
