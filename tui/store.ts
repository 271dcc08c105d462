// Holds the dashboard's state and tells listeners it changed, at most `maxHz` times a second: a
// burst of heartbeats from 200 hosts becomes one render, so the screen neither flickers nor burns
// CPU. The gap between notifications also grows while the process spends more than its CPU budget
// (a big terminal full of hosts costs Ink tens of milliseconds a frame) and shrinks back when it
// is cheap again, never beyond `maxGapMs`. Key presses notify at once so typing never lags.
import type { TuiState } from "./state.js";

export type Listener = (s: TuiState) => void;

export interface StoreOptions {
  /** The most data-driven notifications a second. */
  maxHz?: number;
  /** Process CPU, in % of one core, that data-driven updates may use; 0 turns the budget off. */
  cpuBudgetPct?: number;
  /** The longest the screen may lag behind the data. */
  maxGapMs?: number;
}

export class TuiStore {
  private state: TuiState;
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | null = null;
  private lastNotify = 0;
  private readonly minGapMs: number;
  private readonly maxGapMs: number;
  private readonly budgetPct: number;
  private gapMs: number;
  private cpuMark = process.cpuUsage();
  private wallMark = performance.now();

  constructor(initial: TuiState, opts: StoreOptions = {}) {
    this.state = initial;
    this.minGapMs = 1000 / (opts.maxHz ?? 4);
    this.maxGapMs = Math.max(this.minGapMs, opts.maxGapMs ?? 2000);
    this.budgetPct = opts.cpuBudgetPct ?? 6;
    this.gapMs = this.minGapMs;
  }

  get(): TuiState {
    return this.state;
  }

  /** The current gap between data-driven notifications (ms). */
  get notifyGapMs(): number {
    return this.gapMs;
  }

  /** Applies a pure update; listeners hear of it within the throttle window. */
  update(fn: (s: TuiState) => TuiState): void {
    const next = fn(this.state);
    if (next === this.state) return;
    this.state = next;
    this.schedule();
  }

  /** Asks for a notification without a change (the clock moved on), under the same throttle. */
  refresh(): void {
    this.schedule();
  }

  /** Applies an update and notifies at once (a key press). */
  updateNow(fn: (s: TuiState) => TuiState): void {
    this.state = fn(this.state);
    this.flush();
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.lastNotify = Date.now();
    for (const l of this.listeners) l(this.state);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private schedule(): void {
    if (this.timer) return;
    this.adaptGap();
    const wait = Math.max(0, this.lastNotify + this.gapMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Widens the gap in proportion to how far over budget the last interval was; narrows it slowly. */
  private adaptGap(): void {
    if (this.budgetPct <= 0) return;
    const wallMs = performance.now() - this.wallMark;
    if (wallMs < 500) return;
    const cpu = process.cpuUsage(this.cpuMark);
    const pct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
    this.cpuMark = process.cpuUsage();
    this.wallMark = performance.now();
    if (pct > this.budgetPct) this.gapMs = Math.min(this.maxGapMs, this.gapMs * Math.min(2, pct / this.budgetPct));
    else if (pct < this.budgetPct / 2) this.gapMs = Math.max(this.minGapMs, this.gapMs * 0.8);
  }
}
