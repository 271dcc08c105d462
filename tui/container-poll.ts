// The Containers view's data: the Docker engines (local, or the hosts' over SSH) asked for their
// containers, one poll at a time, every `everyMs` while that view is open.
import { type ContainerSource, pollSources } from "./containers.js";
import { setContainers } from "./state.js";
import type { TuiStore } from "./store.js";
import { everyWhileViewing } from "./view-timer.js";

export class ContainerPoll {
  private inFlight: Promise<void> | null = null;
  private stopTimer: (() => void) | null = null;

  constructor(
    private readonly store: TuiStore,
    private readonly sources: ContainerSource[],
    private readonly now: () => Date,
  ) {}

  start(everyMs: number): void {
    if (!this.sources.length) return;
    this.stopTimer = everyWhileViewing(this.store, "containers", everyMs, () => void this.refresh());
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  refresh(): Promise<void> {
    if (!this.sources.length) {
      this.store.update((s) => setContainers(s, [], "no Docker engines to ask: set DOCKER_HOST, or pass --inventory to reach the hosts' engines over SSH"));
      return Promise.resolve();
    }
    // One poll at a time: stats samples take about a second each.
    this.inFlight ??= pollSources(this.sources, this.now())
      .then((hosts) => this.store.update((s) => setContainers(s, hosts)))
      .finally(() => (this.inFlight = null));
    return this.inFlight;
  }
}
