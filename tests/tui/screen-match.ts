// What the dashboard should show, to hold a real terminal's capture against: a reference copy of
// the dashboard's state, fed by its own data client from the same dispatcher and moved by the same
// keys the terminal gets, rendered through `Screen` as plain text rows. Ages ("3s", "synced 5s
// ago") are masked, since the two clients read the clock a moment apart.
import { stripVTControlCharacters } from "node:util";
import { renderToString } from "ink";
import { createElement } from "react";
import { Screen } from "../../tui/app.js";
import { DataClient } from "../../tui/client.js";
import { type KeyInfo, keyToAction, reduceAction } from "../../tui/keys.js";
import { initialState } from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";
import { expect } from "vitest";
import type { TmuxSession } from "../helpers/tmux.js";

/** tmux key names and what Ink makes of them. */
const keyInfo: Record<string, { input: string; key: KeyInfo }> = {
  Escape: { input: "", key: { escape: true } },
  Enter: { input: "", key: { return: true } },
  Down: { input: "", key: { downArrow: true } },
  Up: { input: "", key: { upArrow: true } },
  Left: { input: "", key: { leftArrow: true } },
  BSpace: { input: "", key: { backspace: true } },
};

export class ReferenceDashboard {
  readonly store: TuiStore;
  readonly client: DataClient;

  constructor(url: string, token: string) {
    this.store = new TuiStore(initialState(url.replace(/\/+$/, "")), { maxHz: 50 });
    this.client = new DataClient({ url, token, store: this.store, backoffMs: { initial: 200, max: 1000 } });
    this.client.start();
  }

  /** Applies a key as the app does (effects that reach the dispatcher are the terminal's to perform). */
  press(tmuxKey: string, rows: number): void {
    const { input, key } = keyInfo[tmuxKey] ?? { input: tmuxKey, key: {} };
    const current = this.store.get();
    const action = keyToAction(input, key, current, Math.max(1, rows - 8));
    if (action) this.store.updateNow(() => reduceAction(current, action, Date.now()).state);
  }

  /** The screen `Screen` draws for the current state at this size, one plain row each. */
  render(cols: number, rows: number): string[] {
    const width = Math.max(40, cols);
    const height = Math.max(10, rows);
    const text = renderToString(createElement(Screen, { state: this.store.get(), width, height, now: Date.now() }), { columns: width });
    return plainRows(text, rows);
  }

  stop(): void {
    this.client.stop();
    this.store.close();
  }
}

export function plainRows(text: string, rows: number): string[] {
  const lines = stripVTControlCharacters(text)
    .split("\n")
    .map((l) => l.trimEnd());
  while (lines.length < rows) lines.push("");
  return lines.slice(0, rows);
}

/** A row with its ages masked: " 12s " and "  3s " both read " ~ ". */
export const maskAges = (line: string) => line.replace(/ *\b\d+[smhd]\b */g, " ~ ").trimEnd();

/** Presses a key in the terminal and in the reference. */
export async function press(term: TmuxSession, ref: ReferenceDashboard, rows: number, ...keys: string[]): Promise<void> {
  for (const k of keys) {
    ref.press(k, rows);
    await term.keys(k);
  }
}

/**
 * Waits until the terminal shows what the reference renders (ages masked), row for row. The two
 * read the dispatcher independently, so a moment's difference is waited out; a lasting one fails
 * with both screens side by side.
 */
export async function expectScreenMatches(term: TmuxSession, ref: ReferenceDashboard, timeoutMs = 15_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let shown: string[] = [];
  let wanted: string[] = [];
  while (Date.now() < deadline) {
    const { cols, rows } = await term.size();
    shown = await term.capture();
    wanted = ref.render(cols, rows);
    if (shown.length === wanted.length && shown.every((l, i) => maskAges(l) === maskAges(wanted[i]!))) return shown;
    await new Promise((r) => setTimeout(r, 200));
  }
  const diff = wanted.map((w, i) => (maskAges(w) === maskAges(shown[i] ?? "") ? `  ${w}` : `- ${w}\n+ ${shown[i] ?? ""}`)).join("\n");
  throw new Error(`the terminal does not show what Screen renders for the same state (- Screen, + terminal):\n${diff}`);
}

export const HEADER = /^labrig [◌●✖] (connecting|connected|disconnected) · hosts/;
const TABS = /^ 1 Devices  2 Queue  3 Job  4 Containers  5 Events/;
const FOOTER = /\? help {2}\/ filter {2}q quit|type to filter · Enter keeps it/;

/** One header on the first row, one tab line on the second, one footer on the last row, and no other. */
export function expectOneFrame(lines: string[], footer: string | RegExp): void {
  const screen = lines.join("\n");
  expect(lines[0], screen).toMatch(HEADER);
  expect(lines[1], screen).toMatch(TABS);
  expect(lines.filter((l) => HEADER.test(l)), screen).toHaveLength(1);
  expect(lines.filter((l) => TABS.test(l)), screen).toHaveLength(1);
  const last = lines[lines.length - 1]!;
  if (typeof footer === "string") expect(last.startsWith(footer), screen).toBe(true);
  else expect(last, screen).toMatch(footer);
  expect(lines.filter((l) => FOOTER.test(l)), screen).toHaveLength(1);
}
