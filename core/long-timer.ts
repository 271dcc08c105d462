// A timer for delays longer than setTimeout can hold. Node's setTimeout keeps at most 2^31-1 ms
// (24.8 days); a longer delay overflows to 1 ms and fires at once (TimeoutOverflowWarning). This
// chains timers of at most that length and re-reads the clock at each link, so a job's timeout of
// weeks ends when it should.

/** The longest single delay setTimeout holds without overflowing: 2^31-1 ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface LongTimer {
  /** Stops the timer; the callback will not run. */
  cancel(): void;
}

/** Runs `fn` once the clock reaches `atMs` (ms since the epoch), however far away that is. */
export function setTimerAt(atMs: number, fn: () => void, now: () => number = Date.now): LongTimer {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let cancelled = false;
  const arm = () => {
    if (cancelled) return;
    const left = atMs - now();
    if (left <= 0) {
      timer = undefined;
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_DELAY_MS));
  };
  arm();
  return {
    cancel() {
      cancelled = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

/** Runs `fn` after `delayMs`, however long; see setTimerAt. */
export function setLongTimeout(delayMs: number, fn: () => void, now: () => number = Date.now): LongTimer {
  return setTimerAt(now() + Math.max(0, delayMs), fn, now);
}
