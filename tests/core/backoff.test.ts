import { describe, expect, it } from "vitest";
import { Backoff } from "../../core/backoff.js";

describe("Backoff", () => {
  it("doubles from the first delay up to the cap, and starts over on reset", () => {
    const b = new Backoff(500, 5_000);
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(b.peek()).toBe(5000);
    b.reset();
    expect(b.peek()).toBe(500);
    expect(b.next()).toBe(500);
  });

  it("ends a wait early, without throwing, when its signal aborts", async () => {
    const b = new Backoff(60_000, 60_000);
    const stop = new AbortController();
    const started = Date.now();
    const waited = b.wait(stop.signal);
    stop.abort();
    await expect(waited).resolves.toBeUndefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("refuses delays that would never wait or never grow to the cap", () => {
    expect(() => new Backoff(0, 10)).toThrow(/0 < initialMs <= maxMs/);
    expect(() => new Backoff(100, 50)).toThrow(RangeError);
  });
});
