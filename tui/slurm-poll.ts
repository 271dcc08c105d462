// Slurm's view for the Devices view, in a lab whose scheduler is Slurm: asked of the dispatcher
// (GET /api/slurm/status) at start and every `everyMs` while that view is open. A dispatcher that
// schedules its own jobs has no view; the first answer says so and the poll stops for good.
import type { SlurmView } from "../core/api.js";
import { visibleDeep } from "../core/visible.js";
import { setSlurm } from "./state.js";
import type { TuiStore } from "./store.js";
import { everyWhileViewing } from "./view-timer.js";

export class SlurmPoll {
  private stopTimer: (() => void) | null = null;
  private inFlight: Promise<void> | null = null;
  private notSlurm = false;

  constructor(
    private readonly store: TuiStore,
    private readonly read: () => Promise<SlurmView | undefined>,
  ) {}

  start(everyMs: number): void {
    void this.refresh();
    this.stopTimer = everyWhileViewing(this.store, "devices", everyMs, () => void this.refresh());
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  refresh(): Promise<void> {
    if (this.notSlurm) return Promise.resolve();
    this.inFlight ??= this.read()
      .then((view) => {
        if (view) this.store.update((s) => setSlurm(s, visibleDeep(view)));
        else {
          this.notSlurm = true;
          this.stop();
        }
      })
      // The dispatcher unreachable is the connection's news (the header says it); the last view stays.
      .catch(() => undefined)
      .finally(() => (this.inFlight = null));
    return this.inFlight;
  }
}
