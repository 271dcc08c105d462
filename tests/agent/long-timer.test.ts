// The agent's job timeout timer, on vitest's fake clock: a delay past setTimeout's 2^31-1 ms limit
// (24.8 days) neither fires at once nor early, and fires when it is due.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_DELAY_MS, setLongTimeout, setTimerAt } from "../../core/long-timer.js";

const DAY = 24 * 3600 * 1000;

beforeEach(() => {
  vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("long timers", () => {
  it("does not end a 25-day timeout early, and ends it at 25 days", () => {
    const fired = vi.fn();
    setLongTimeout(25 * DAY, fired);
    vi.advanceTimersByTime(1000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS); // past the longest single setTimeout
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(25 * DAY - MAX_TIMER_DELAY_MS - 1000 - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("shows the bug it replaces: a plain setTimeout of 25 days fires after 1 ms on this clock, as on Node", () => {
    const fired = vi.fn();
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    setTimeout(fired, 25 * DAY);
    vi.advanceTimersByTime(1000);
    warn.mockRestore();
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("fires at a set time 30 days away, the longest timeout the API takes", () => {
    const fired = vi.fn();
    const at = Date.now() + 30 * DAY;
    setTimerAt(at, fired);
    vi.advanceTimersByTime(30 * DAY - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
    expect(Date.now()).toBe(at);
  });

  it("fires at once for a time already past, and never after cancel", () => {
    const past = vi.fn();
    setTimerAt(Date.now() - 5, past);
    expect(past).toHaveBeenCalledTimes(1);
    const cancelled = vi.fn();
    const t = setLongTimeout(26 * DAY, cancelled);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS + 10);
    t.cancel();
    vi.advanceTimersByTime(30 * DAY);
    expect(cancelled).not.toHaveBeenCalled();
  });
});
