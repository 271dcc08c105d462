// Slurm's own view of the cluster as the dispatcher serves it (`GET /api/slurm/status`): sinfo and
// squeue read on the controller over the driver's SSH connection, at most once per `maxAgeMs` however
// many people ask, with callers of one read sharing it. A read that fails keeps the last good view
// and says why beside it, so `labrig devices` shows what Slurm last said and that it is stale.
import { errorMessage } from "../core/errors.js";
import type { SlurmView } from "../core/api.js";
import type { Remote } from "../provision/remote.js";
import { parseSinfoNodes, parseSqueue, SINFO_NODES_COMMAND, SQUEUE_COMMAND } from "./slurm-status.js";

export class SlurmViewReader {
  private last: SlurmView = { readAt: null, nodes: [], queue: [] };
  /** When the read that gave the last good view began (epoch ms): what squeue lists was in Slurm's queue then or later. */
  private goodReadStartedAtMs: number | undefined;
  private lastTriedAt = 0;
  private reading: Promise<SlurmView> | undefined;

  constructor(
    private readonly remote: Pick<Remote, "run">,
    private readonly maxAgeMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The view, read again when the last try is older than maxAgeMs. A read that takes longer than
   * `waitMs` (a controller that does not answer) is not waited for: the last view is the answer,
   * saying it is being read, and the read goes on for the next caller.
   */
  async view(waitMs = 5000): Promise<SlurmView> {
    if (!this.reading && this.lastTriedAt && this.now() - this.lastTriedAt < this.maxAgeMs) return this.last;
    const reading = (this.reading ??= this.read().finally(() => (this.reading = undefined)));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<SlurmView>((resolve) => {
      timer = setTimeout(() => resolve({ ...this.last, error: this.last.error ?? `the controller has not answered sinfo and squeue for ${Math.round(waitMs / 1000)} s; still asking` }), waitMs);
      timer.unref();
    });
    try {
      return await Promise.race([reading, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last good view with when its read began, read again as view() would; undefined before any read worked. */
  async snapshot(): Promise<{ readStartedAtMs: number; view: SlurmView } | undefined> {
    const view = await this.view();
    return this.goodReadStartedAtMs === undefined ? undefined : { readStartedAtMs: this.goodReadStartedAtMs, view };
  }

  private async read(): Promise<SlurmView> {
    const startedAt = (this.lastTriedAt = this.now());
    try {
      const [sinfo, squeue] = await Promise.all([this.remote.run(SINFO_NODES_COMMAND, { timeoutMs: 20_000 }), this.remote.run(SQUEUE_COMMAND, { timeoutMs: 20_000 })]);
      this.last = { readAt: new Date(this.now()).toISOString(), nodes: parseSinfoNodes(sinfo), queue: parseSqueue(squeue) };
      this.goodReadStartedAtMs = startedAt;
    } catch (err) {
      this.last = { ...this.last, error: errorMessage(err) };
    }
    return this.last;
  }
}
