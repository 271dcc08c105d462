// labrig's patch to Ink (patches/ink@6.8.0.patch) builds a frame's row from its pieces' strings
// instead of a grid of styled characters per cell, which was most of a dashboard frame's cost.
// These tests hold the patched Output to the screen Ink's grid would print: every frame is parsed
// back into cells (character and styles) and compared with a grid the test fills itself.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

interface StyledChar {
  value: string;
  styles: { code: string; endCode: string }[];
}
interface OutputLike {
  write(x: number, y: number, text: string, options: { transformers: ((line: string, index: number) => string)[] }): void;
  clip(clip: { x1?: number; x2?: number; y1?: number; y2?: number }): void;
  unclip(): void;
  get(): { output: string; height: number };
}
type OutputClass = new (o: { width: number; height: number }) => OutputLike;

let Output: OutputClass;
let cellsOf: (line: string) => StyledChar[];
let widthOf: (s: string) => number;

beforeAll(async () => {
  const inkIndex = createRequire(import.meta.url).resolve("ink");
  const build = dirname(inkIndex);
  Output = ((await import(pathToFileURL(join(build, "output.js")).href)) as { default: OutputClass }).default;
  // Ink's own copies of its dependencies, beside it in its node_modules folder.
  const besideInk = (path: string) => pathToFileURL(join(build, "..", "..", path)).href;
  const tokenizer = (await import(besideInk("@alcalzone/ansi-tokenize/build/index.js"))) as {
    tokenize(s: string): unknown;
    styledCharsFromTokens(t: unknown): StyledChar[];
  };
  cellsOf = (line) => tokenizer.styledCharsFromTokens(tokenizer.tokenize(line));
  widthOf = ((await import(besideInk("string-width/index.js"))) as { default: (s: string) => number }).default;
});

/** A screen row as cells: the character and its style codes, trailing unstyled blanks left out. */
function screenRow(cells: StyledChar[]): string[] {
  const row = cells.filter((c) => c.value !== "").map((c) => `${c.value}|${c.styles.map((s) => s.code).sort().join(",")}`);
  while (row.length && row.at(-1) === " |") row.pop();
  return row;
}

/** What Ink's grid prints for these writes (no clipping): each piece's cells over blanks, in write order. */
function expectedScreen(width: number, height: number, writes: { x: number; y: number; text: string }[]): string[][] {
  const grid: StyledChar[][] = Array.from({ length: height }, () => Array.from({ length: width }, () => ({ value: " ", styles: [] })));
  for (const w of writes) {
    w.text.split("\n").forEach((line, i) => {
      const row = grid[w.y + i];
      if (!row) return;
      let x = w.x;
      for (const c of cellsOf(line)) {
        row[x] = c;
        const cw = Math.max(1, widthOf(c.value));
        for (let k = 1; k < cw; k++) row[x + k] = { value: "", styles: c.styles };
        x += cw;
      }
    });
  }
  return grid.map(screenRow);
}

function printedScreen(out: { output: string }): string[][] {
  return out.output.split("\n").map((line) => screenRow(cellsOf(line)));
}

const red = (s: string) => `\u001b[31m${s}\u001b[39m`;
const bold = (s: string) => `\u001b[1m${s}\u001b[22m`;
const onBlue = (s: string) => `\u001b[44m${s}\u001b[49m`;

function frame(width: number, height: number, writes: { x: number; y: number; text: string }[]) {
  const o = new Output({ width, height });
  for (const w of writes) o.write(w.x, w.y, w.text, { transformers: [] });
  return o.get();
}

describe("Ink's frame rows, patched", () => {
  it("is patched (else these tests would hold Ink's own code to itself)", async () => {
    const o = new Output({ width: 4, height: 1 }) as unknown as { rowToStringByGrid?: unknown };
    expect(typeof o.rowToStringByGrid).toBe("function");
  });

  it("prints one piece a row, pieces side by side, adjacent and apart, as the grid does", () => {
    const writes = [
      { x: 0, y: 0, text: "gpu-host-01" },
      { x: 2, y: 1, text: red("busy") },
      { x: 6, y: 1, text: bold("73%") },
      { x: 9, y: 1, text: onBlue("  ") },
      { x: 14, y: 1, text: "end" },
      { x: 0, y: 2, text: onBlue("padded   ") },
    ];
    const out = frame(30, 4, writes);
    expect(printedScreen(out)).toEqual(expectedScreen(30, 4, writes));
    expect(out.output.split("\n")[0]).toBe("gpu-host-01");
    expect(out.height).toBe(4);
  });

  it("lets a later piece overwrite an earlier one where they overlap", () => {
    const writes = [
      { x: 0, y: 0, text: red("0123456789") },
      { x: 3, y: 0, text: bold("abc") },
      { x: 8, y: 0, text: "XYZW" },
    ];
    expect(printedScreen(frame(12, 1, writes))).toEqual(expectedScreen(12, 1, writes));
    expect(printedScreen(frame(12, 1, writes)).join("")).not.toEqual(expectedScreen(12, 1, writes.slice(0, 1)).join(""));
  });

  it("gives wide characters and emoji their two cells, and writes past the width or below the last row as Ink does", () => {
    const writes = [
      { x: 0, y: 0, text: "日本語" },
      { x: 6, y: 0, text: "ok" },
      { x: 1, y: 1, text: "🙂x" },
      { x: 4, y: 1, text: red("y") },
      { x: 8, y: 2, text: "too long for the row" },
      { x: 0, y: 2, text: "two\nrows below" },
    ];
    expect(printedScreen(frame(10, 3, writes))).toEqual(expectedScreen(10, 3, writes));
  });

  it("clips as Ink does: a box's text cut at its edges", () => {
    const o = new Output({ width: 20, height: 3 });
    o.clip({ x1: 2, x2: 6, y1: 0, y2: 2 });
    o.write(0, 0, red("abcdefghij"), { transformers: [] });
    o.write(3, 1, "xy\nz", { transformers: [] });
    o.unclip();
    o.write(10, 0, "free", { transformers: [] });
    const rows = o.get().output.split("\n");
    expect(rows.map((r) => cellsOf(r).map((c) => c.value).join("").trimEnd())).toEqual(["  cdef    free", "   xy", ""]);
  });

  it("applies a piece's transformers to each of its lines", () => {
    const o = new Output({ width: 10, height: 2 });
    o.write(1, 0, "ab\ncd", { transformers: [(line, i) => `${i}${line.toUpperCase()}`] });
    expect(o.get().output).toBe(" 0AB\n 1CD");
  });

  it("matches the grid over 2,000 random frames of styled, wide, adjacent and overlapping pieces", () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const words = ["a", "host", "日本", "🙂", " ", "  gap  ", "73%", "x\ny", ""];
    const styles = [(s: string) => s, red, bold, onBlue, (s: string) => red(bold(s))];
    for (let f = 0; f < 2000; f++) {
      const width = 1 + rand(24);
      const height = 1 + rand(4);
      const writes = Array.from({ length: rand(7) }, () => ({
        x: rand(width + 2),
        y: rand(height + 1),
        text: styles[rand(styles.length)]!(words[rand(words.length)]!),
      }));
      expect(printedScreen(frame(width, height, writes)), JSON.stringify({ width, height, writes })).toEqual(expectedScreen(width, height, writes));
    }
  });
});
