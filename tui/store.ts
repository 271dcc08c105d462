// Holds the dashboard's state and tells listeners it changed, at most `maxHz` times a second: a
// burst of heartbeats from 200 hosts becomes one render, so the screen neither flickers nor burns
// CPU. Key presses ask for an immediate notification so typing never feels throttled.
import type { TuiState } from "./state.js";

export type Listener = (s: TuiState) => void;

export class TuiStore {
  private state: TuiState;
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | null = null;
  private lastNotify = 0;
  private readonly minGapMs: number;

  constructor(initial: TuiState, opts: { maxHz?: number } = {}) {
    this.state = initial;
    this.minGapMs = 1000 / (opts.maxHz ?? 4);
  }

  get(): TuiState {
    return this.state;
  }

  /** Applies a pure update; listeners hear of it within the throttle window. */
  update(fn: (s: TuiState) => TuiState): void {
    const next = fn(this.state);
    if (next === this.state) return;
    this.state = next;
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
    const wait = Math.max(0, this.lastNotify + this.minGapMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref?.();
  }
}
