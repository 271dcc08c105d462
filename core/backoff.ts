// The one backoff the agent and the dashboard wait with between tries: it starts at `initialMs`,
// doubles each time up to `maxMs`, and starts over on reset() (after a success). Each loop keeps
// its own decision of what is worth retrying; this only says how long to wait.
import { setTimeout as sleep } from "node:timers/promises";

export class Backoff {
  private current: number;

  constructor(
    readonly initialMs = 500,
    readonly maxMs = 10_000,
  ) {
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new RangeError(`backoff needs 0 < initialMs <= maxMs, got ${initialMs} and ${maxMs}`);
    this.current = initialMs;
  }

  /** The delay the next wait takes. */
  peek(): number {
    return this.current;
  }

  /** Takes the delay for this wait; the one after doubles, up to maxMs. */
  next(): number {
    const delay = this.current;
    this.current = Math.min(this.current * 2, this.maxMs);
    return delay;
  }

  reset(): void {
    this.current = this.initialMs;
  }

  /** Waits the next delay; an abort of `signal` ends the wait early (without throwing). */
  async wait(signal?: AbortSignal): Promise<void> {
    await sleep(this.next(), undefined, { signal }).catch((err: unknown) => {
      if (!(signal?.aborted ?? false)) throw err;
    });
  }
}
