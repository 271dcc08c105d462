// Keeps Slurm's own view of the cluster (sinfo per node, squeue) fresh in slurm mode: reads it on
// the controller every few seconds through `run` (the SSH connection the Slurm driver uses) and
// holds the last good read, with the error of a failed one beside it, for GET /api/slurm/status.
import type { SlurmView } from "../core/api.js";
import { parseSinfoNodes, parseSqueue, SINFO_NODES_COMMAND, SQUEUE_COMMAND } from "./slurm-status.js";

/** Runs a command on the Slurm controller and resolves with its standard output; rejects when it fails. */
export type RunOnController = (command: string) => Promise<string>;

export class SlurmWatch {
  private current: SlurmView = { readAt: null, nodes: [], queue: [] };
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<SlurmView> | undefined;
  private stopped = false;

  constructor(
    private readonly run: RunOnController,
    private readonly everyMs = 5_000,
    private readonly now: () => Date = () => new Date(),
  ) {}

  view(): SlurmView {
    return this.current;
  }

  /** Reads both now (one read at a time: a caller during a read gets that read). */
  refresh(): Promise<SlurmView> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  /** Reads now and then every `everyMs` until stop(). */
  start(): void {
    const tick = () => {
      void this.refresh().then(() => {
        if (!this.stopped) (this.timer = setTimeout(tick, this.everyMs)).unref();
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.reading;
  }

  private async read(): Promise<SlurmView> {
    try {
      const nodes = parseSinfoNodes(await this.run(SINFO_NODES_COMMAND));
      const queue = parseSqueue(await this.run(SQUEUE_COMMAND));
      this.current = { readAt: this.now().toISOString(), nodes, queue };
    } catch (err) {
      const { error: _previous, ...lastGood } = this.current;
      this.current = { ...lastGood, error: `reading Slurm's view on the controller failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    return this.current;
  }
}
