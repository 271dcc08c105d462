// labrig's patch to string-width (patches/string-width@8.3.0.patch), which Ink measures every text
// with: a string of characters that are each their own grapheme cluster (box drawing, blocks,
// arrows, Latin) is measured character by character, each character once, instead of through
// Intl.Segmenter; the dashboard's bars and borders took a fifth of a frame there. These tests hold
// it to string-width's own measure, cluster by cluster.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

type Width = (s: string, opts?: { ambiguousIsNarrow?: boolean }) => number;
let stringWidth: Width;
let widthBySegments: ((s: string, ambiguousIsNarrow?: boolean) => number) | undefined;

beforeAll(async () => {
  // The copy Ink imports, beside it in its node_modules folder.
  const build = dirname(createRequire(import.meta.url).resolve("ink"));
  const mod = (await import(pathToFileURL(join(build, "..", "..", "string-width", "index.js")).href)) as { default: Width; widthBySegments?: typeof widthBySegments };
  stringWidth = mod.default;
  widthBySegments = mod.widthBySegments;
});

const RANGES: [number, number][] = [
  [0x20, 0x7e],
  [0xa0, 0x2ff],
  [0x2010, 0x20cf],
  [0x2100, 0x2bff],
];
const codePoints = RANGES.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));

describe("string-width, patched", () => {
  it("is patched (else these tests would hold string-width to itself)", () => {
    expect(typeof widthBySegments).toBe("function");
  });

  it("measures every character of the fast ranges as string-width's clusters do", () => {
    for (const c of codePoints) {
      const ch = String.fromCharCode(c);
      expect(stringWidth(ch), `U+${c.toString(16)}`).toBe(widthBySegments!(ch));
    }
  });

  it("measures 20,000 random strings of them, with wide emoji, CJK, combining marks and colours among them, as string-width does", () => {
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    // Not in the fast ranges: they join neighbours or are wide, so their strings take the slow path.
    const others = ["\u0301", "\u200d", "\ufe0f", "日", "🙂", "👍🏽", "\u1100\u1161", "\u20e3", "\u{1f1ef}\u{1f1f5}", "\t"];
    for (let k = 0; k < 20_000; k++) {
      let s = "";
      for (let n = rand(12); n > 0; n--) s += rand(10) === 0 ? others[rand(others.length)]! : String.fromCharCode(codePoints[rand(codePoints.length)]!);
      if (rand(4) === 0) s = `\u001b[31m${s}\u001b[39m`;
      const plain = s.replace(/\u001b\[\d+m/g, "");
      expect(stringWidth(s), JSON.stringify(s)).toBe(widthBySegments!(plain));
    }
  });

  it("leaves sequences that join fast-range characters to string-width: keycaps, emoji presentation, combining marks", () => {
    for (const s of ["1\u20e3", "#\u20e3", "\u263a\ufe0f", "\u2764\ufe0f", "e\u0301", "\u2500\u0301", "\u270c\u{1f3fd}"]) {
      expect(stringWidth(s), JSON.stringify(s)).toBe(widthBySegments!(s));
    }
    expect(stringWidth("1\u20e3")).toBe(2);
    expect(stringWidth("\u263a\ufe0f")).toBe(2);
  });

  it("keeps the ambiguous-width option (East Asian terminals) on string-width's own path", () => {
    expect(stringWidth("●─", { ambiguousIsNarrow: false })).toBe(widthBySegments!("●─", false));
    expect(stringWidth("●─", { ambiguousIsNarrow: false })).toBeGreaterThan(stringWidth("●─"));
  });
});
