// The dashboard's one data client: it keeps the store in step with the lab by putting together
// the event stream and periodic resync (./event-feed.ts), the open job's log (./job-log-feed.ts),
// the Containers view's polls (./container-poll.ts), Slurm's view in a Slurm lab (./slurm-poll.ts)
// and the operator's commands
// (./command-runner.ts). Everything from the API enters the store with control characters made
// visible.
import { DispatcherClient } from "../core/client.js";
import { performCommand } from "./command-runner.js";
import { ContainerPoll } from "./container-poll.js";
import type { ContainerSource } from "./containers.js";
import { EventFeed } from "./event-feed.js";
import { JobLogFeed } from "./job-log-feed.js";
import { SlurmPoll } from "./slurm-poll.js";
import type { Command } from "./state.js";
import type { TuiStore } from "./store.js";

export interface DataClientOptions {
  url: string;
  token: string;
  store: TuiStore;
  /** Full re-read of devices and jobs while connected. */
  resyncMs?: number;
  backoffMs?: { initial: number; max: number };
  /** No bytes (not even the dispatcher's 15 s ping) for this long: the stream is dead. */
  silenceMs?: number;
  containerSources?: ContainerSource[];
  containerPollMs?: number;
  /** How often Slurm's view is asked for while the Devices view is open (a Slurm lab only). */
  slurmPollMs?: number;
  now?: () => Date;
}

export class DataClient {
  readonly api: DispatcherClient;
  private readonly store: TuiStore;
  private readonly stopped = new AbortController();
  private readonly events: EventFeed;
  private readonly jobLog: JobLogFeed;
  private readonly containers: ContainerPoll;
  private readonly slurm: SlurmPoll;
  private readonly slurmPollMs: number;
  private readonly resyncMs: number;
  private readonly containerPollMs: number;
  private resyncTimer: NodeJS.Timeout | null = null;

  constructor(opts: DataClientOptions) {
    const url = opts.url.replace(/\/+$/, "");
    const now = opts.now ?? (() => new Date());
    this.store = opts.store;
    this.resyncMs = opts.resyncMs ?? 15_000;
    this.containerPollMs = opts.containerPollMs ?? 5_000;
    this.slurmPollMs = opts.slurmPollMs ?? 5_000;
    this.api = new DispatcherClient({ url, token: opts.token, timeoutMs: 5_000, via: "the dashboard" });
    this.jobLog = new JobLogFeed(this.api, this.store);
    this.events = new EventFeed({
      url,
      token: opts.token,
      api: this.api,
      store: this.store,
      backoffMs: opts.backoffMs ?? { initial: 500, max: 10_000 },
      silenceMs: opts.silenceMs ?? 40_000,
      now,
      onEvents: (evs) => evs.forEach((ev) => this.jobLog.onEvent(ev)),
    });
    this.containers = new ContainerPoll(this.store, opts.containerSources ?? [], now);
    this.slurm = new SlurmPoll(this.store, () => this.api.slurmStatus());
  }

  start(): void {
    void this.events.run(this.stopped.signal);
    this.resyncTimer = setInterval(() => {
      if (this.store.get().connection.status === "connected") void this.events.resync();
    }, this.resyncMs);
    this.containers.start(this.containerPollMs);
    this.slurm.start(this.slurmPollMs);
  }

  stop(): void {
    this.stopped.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.containers.stop();
    this.slurm.stop();
    this.jobLog.stop();
  }

  resync(): Promise<void> {
    return this.events.resync();
  }

  perform(command: Command): Promise<void> {
    return performCommand(this.api, this.store, command);
  }

  /** Loads a job's detail and synced files, and starts its log tail when asked. */
  openJob(jobId: string, follow: boolean): Promise<void> {
    return this.jobLog.openJob(jobId, follow);
  }

  setFollow(jobId: string, following: boolean): void {
    this.jobLog.setFollow(jobId, following);
  }

  loadSynced(jobId: string): Promise<void> {
    return this.jobLog.loadSynced(jobId);
  }

  refreshContainers(): Promise<void> {
    return this.containers.refresh();
  }
}
