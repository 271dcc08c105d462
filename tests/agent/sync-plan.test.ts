// The sync planner: append vs whole-file decisions over file facts, without a dispatcher.
import { describe, expect, it } from "vitest";
import { type AckedFile, planFileSync } from "../../agent/sync-plan.js";

const now = 1_000_000;
const running = { nowMs: now, quietMs: 2_000, final: false };
const acked = (size: number, fp = "fp-a", mtimeMs = now - 5_000): AckedFile => ({ size, mtimeMs, localSize: size, fingerprint: fp });

describe("planFileSync", () => {
  it("sends a new file from offset 0 as an append", () => {
    expect(planFileSync({ size: 120, mtimeMs: now }, undefined, running)).toEqual({ kind: "append", offset: 0, length: 120 });
  });

  it("sends a new empty file whole (an append of nothing would not create it)", () => {
    expect(planFileSync({ size: 0, mtimeMs: now }, undefined, running)).toEqual({ kind: "put" });
  });

  it("skips a file whose size and mtime are what was acknowledged", () => {
    const a = acked(100);
    expect(planFileSync({ size: 100, mtimeMs: a.mtimeMs }, a, running)).toEqual({ kind: "skip" });
  });

  it("asks for the acknowledged prefix's fingerprint before deciding on a grown file", () => {
    expect(planFileSync({ size: 150, mtimeMs: now }, acked(100), running)).toEqual({ kind: "fingerprint", length: 100 });
  });

  it("appends only the new bytes of a file that grew with its prefix unchanged", () => {
    expect(planFileSync({ size: 150, mtimeMs: now, prefixFingerprint: "fp-a" }, acked(100), running)).toEqual({ kind: "append", offset: 100, length: 50 });
  });

  it("resends a file whole when its acknowledged bytes changed, once it has been quiet", () => {
    const changed = { size: 150, mtimeMs: now - 3_000, prefixFingerprint: "fp-b" };
    expect(planFileSync(changed, acked(100), running)).toEqual({ kind: "put" });
  });

  it("waits with a rewritten file that changed less than quietMs ago", () => {
    expect(planFileSync({ size: 150, mtimeMs: now - 500, prefixFingerprint: "fp-b" }, acked(100), running)).toEqual({ kind: "wait" });
  });

  it("sends a rewritten file at the final sync without waiting", () => {
    expect(planFileSync({ size: 150, mtimeMs: now - 500, prefixFingerprint: "fp-b" }, acked(100), { ...running, final: true })).toEqual({ kind: "put" });
  });

  it("resends a file that shrank, without needing a fingerprint", () => {
    expect(planFileSync({ size: 40, mtimeMs: now - 3_000 }, acked(100), running)).toEqual({ kind: "put" });
  });

  it("skips a file touched but not changed (same size, same fingerprint)", () => {
    expect(planFileSync({ size: 100, mtimeMs: now, prefixFingerprint: "fp-a" }, acked(100), running)).toEqual({ kind: "skip" });
  });

  it("resends a file rewritten in place with the same size", () => {
    expect(planFileSync({ size: 100, mtimeMs: now - 3_000, prefixFingerprint: "fp-b" }, acked(100), running)).toEqual({ kind: "put" });
  });

  it("replaces a file the dispatcher holds different bytes of (reconciled as 'differs')", () => {
    expect(planFileSync({ size: 100, mtimeMs: now - 3_000, prefixFingerprint: "fp-a" }, acked(60, "differs", -1), running)).toEqual({ kind: "put" });
  });

  it("continues a partly acknowledged file from the dispatcher's size", () => {
    const partial: AckedFile = { size: 60, mtimeMs: -1, localSize: -1, fingerprint: "fp-60" };
    expect(planFileSync({ size: 100, mtimeMs: now, prefixFingerprint: "fp-60" }, partial, running)).toEqual({ kind: "append", offset: 60, length: 40 });
  });
});
