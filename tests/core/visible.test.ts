// Control characters from the API made visible before they reach a terminal: in one line, and in
// every string (keys too) of a value, wherever in it they are.
import { describe, expect, it } from "vitest";
import { jsonMayHoldControls, visible, visibleDeep } from "../../core/visible.js";

describe("visible", () => {
  it("shows C0, DEL and C1 controls as escapes and leaves other text alone", () => {
    expect(visible("a\x1b[2Jb\x07\x7f\x9b")).toBe("a\\x1b[2Jb\\x07\\x7f\\x9b");
    expect(visible("GPU 0 · 84°C")).toBe("GPU 0 · 84°C");
  });

  it("escapes the same way on every call (no state kept between calls)", () => {
    for (let i = 0; i < 3; i++) expect(visible("x\x1b")).toBe("x\\x1b");
  });
});

describe("visibleDeep", () => {
  it("escapes strings after clean ones in arrays and objects, and in keys", () => {
    const v = { hostId: "h", gpus: [{ name: "A100" }, { name: "bad\x1b]0;title\x07" }], labels: { ok: "1", "k\x1b": "v" } };
    expect(visibleDeep(v)).toEqual({ hostId: "h", gpus: [{ name: "A100" }, { name: "bad\\x1b]0;title\\x07" }], labels: { ok: "1", "k\\x1b": "v" } });
  });

  it("leaves the value it was given unchanged", () => {
    const v = { names: ["a", "\x1b"], n: 1 };
    visibleDeep(v);
    expect(v).toEqual({ names: ["a", "\x1b"], n: 1 });
  });

  it("returns a clean value as it is, numbers, booleans and nulls included", () => {
    const v = { hostId: "node-001", gpus: [{ index: 0, busy: true, powerW: null }], labels: {} };
    expect(visibleDeep(v)).toBe(v);
  });
});

describe("jsonMayHoldControls", () => {
  const isControl = (c: number) => c <= 0x1f || (c >= 0x7f && c <= 0x9f);
  // Every character up to U+00FF, as JSON.stringify writes it and \u-escaped in either case.
  const spellings = (c: number) => {
    const hex = c.toString(16).padStart(4, "0");
    return [JSON.stringify({ name: `job ${String.fromCharCode(c)} x` }), `{"name":"\\u${hex}"}`, `{"name":"\\u${hex.toUpperCase()}"}`, `{"${String.fromCharCode(c)}":1}`.replace(/[\u0000-\u001f]/, (x) => `\\u${x.charCodeAt(0).toString(16).padStart(4, "0")}`)];
  };

  it("answers yes for every JSON text whose parse holds a control character, however it is spelled", () => {
    for (let c = 0; c <= 0xff; c++) {
      if (!isControl(c)) continue;
      for (const text of spellings(c)) {
        expect(JSON.stringify(visibleDeep(JSON.parse(text)))).not.toBe(JSON.stringify(JSON.parse(text)));
        expect(jsonMayHoldControls(text), `U+${c.toString(16)} in ${JSON.stringify(text)}`).toBe(true);
      }
    }
  });

  it("answers no for text with none, so the dashboard may skip the walk", () => {
    for (let c = 0x20; c <= 0xff; c++) {
      if (isControl(c)) continue;
      for (const text of spellings(c)) expect(jsonMayHoldControls(text), `U+${c.toString(16)} in ${JSON.stringify(text)}`).toBe(false);
    }
    expect(jsonMayHoldControls(JSON.stringify({ type: "device", device: { hostId: "node-001", gpus: [{ name: "NVIDIA A100-SXM4-80GB", memoryTotalMiB: 81920 }] } }))).toBe(false);
  });
});
