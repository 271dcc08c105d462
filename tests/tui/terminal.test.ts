// How the dashboard reaches a terminal: `frameUpdate` and `FullScreen` against a headless xterm
// (the bytes a terminal would get, interpreted as a terminal does), and `runTui` itself writing
// into a fake TTY while keys switch views and the terminal is resized. What a real terminal shows
// is proved in tmux (terminal-tmux.test.ts); these catch the same faults in a second.
import { PassThrough } from "node:stream";
import xterm from "@xterm/headless";
import { afterEach, describe, expect, it } from "vitest";
import { runTui } from "../../tui/app.js";
import { FullScreen, LEAVE_FULL_SCREEN, frameUpdate } from "../../tui/terminal.js";
import { waitFor } from "../helpers/wait.js";
import { HEADER, expectOneFrame } from "./screen-match.js";

const { Terminal } = xterm;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A fake TTY whose bytes a headless xterm turns into the screen a person would see. */
function fakeTerminal(cols: number, rows: number) {
  const out = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  // A real TTY turns "\n" into "\r\n" (onlcr); convertEol does the same here.
  const term = new Terminal({ cols, rows, allowProposedApi: true, convertEol: true });
  let pending = Promise.resolve();
  out.on("data", (chunk: Buffer) => {
    const s = chunk.toString("utf8");
    pending = pending.then(() => new Promise<void>((r) => term.write(s, r)));
  });
  cleanups.push(() => term.dispose());
  const screen = async () => {
    await new Promise((r) => setImmediate(r));
    await pending;
    const lines: string[] = [];
    for (let y = 0; y < term.rows; y++) lines.push(term.buffer.active.getLine(y)?.translateToString(true) ?? "");
    return lines;
  };
  const resize = (c: number, r: number) => {
    out.columns = c;
    out.rows = r;
    pending = pending.then(() => term.resize(c, r));
    out.emit("resize");
  };
  return { out: out as unknown as NodeJS.WriteStream, term, screen, resize };
}

describe("frameUpdate", () => {
  it("leaves the terminal showing exactly the last frame, whatever came before", async () => {
    const t = fakeTerminal(20, 6);
    const frames = [
      ["header 1", "tabs", "body a", "body b", "body c", "footer"],
      ["header 2", "tabs", "short"],
      ["header 3", "tabs", "a line much wider than the terminal", "x", "y", "z", "past the last row"],
      ["header 4", "tabs", "body", "", "", "footer"],
    ];
    let shown: string[] | null = null;
    for (const f of frames) {
      t.out.write(frameUpdate(shown, f, 6));
      shown = f.slice(0, 6);
    }
    expect(await t.screen()).toEqual(["header 4", "tabs", "body", "", "", "footer"]);
  });

  it("writes nothing for an unchanged frame and only the changed row otherwise", () => {
    const f = ["a", "b", "c"];
    expect(frameUpdate(f, f, 3)).toBe("");
    const u = frameUpdate(f, ["a", "B", "c"], 3);
    expect(u).toContain("\x1b[2;1H\x1b[2KB");
    expect(u).not.toContain("\x1b[1;1H");
    expect(u).not.toContain("\x1b[3;1H");
  });
});

describe("FullScreen", () => {
  it("holds back what else the process writes while it holds the terminal, and restores the screen", async () => {
    const t = fakeTerminal(30, 5);
    t.out.write("before the dashboard\n");
    const foreign: string[] = [];
    const screen = new FullScreen({ stdout: t.out, onForeignOutput: (text) => foreign.push(text) });
    screen.enter();
    screen.inkStdout.write("header\ntabs\nbody\n\nfooter");
    t.out.write("a stray line\n");
    screen.flush();
    expect(await t.screen()).toEqual(["header", "tabs", "body", "", "footer"]);
    expect(foreign).toEqual(["a stray line\n"]);
    screen.leave();
    expect((await t.screen())[0]).toBe("before the dashboard");
    expect(t.term.buffer.active.type).toBe("normal");
    // Writes go to the terminal again once it is given back.
    t.out.write("after\n");
    expect((await t.screen()).slice(0, 2)).toEqual(["before the dashboard", "after"]);
    expect(LEAVE_FULL_SCREEN).toContain("\x1b[?25h");
  });
});

/** A fake keyboard Ink can read from. */
function fakeStdin() {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin, ref: () => stdin, unref: () => stdin, setEncoding: () => stdin });
  return stdin;
}

describe("runTui in a terminal", () => {
  it("replaces every frame exactly across view switches, help, the filter and a resize, and gives the terminal back", async () => {
    const t = fakeTerminal(100, 20);
    t.out.write("$ labrig tui\n");
    const stdin = fakeStdin();
    // Nothing listens on port 9: the dashboard connects, fails and counts down, so frames change.
    const done = runTui({ url: "http://127.0.0.1:9", token: "t", stdout: t.out, stdin: stdin as unknown as NodeJS.ReadStream });
    const see = (what: string, ok: (l: string[]) => boolean) => waitFor(what, t.screen, ok, 10_000, 50);
    const key = async (k: string) => {
      stdin.write(k);
      await new Promise((r) => setTimeout(r, 60));
    };

    let lines = await see("the disconnected banner", (l) => l.some((x) => x.includes("dispatcher unreachable")));
    expectOneFrame(lines, "1-5 views");
    await key("2");
    lines = await see("the queue view", (l) => (l[l.length - 1] ?? "").startsWith("⏎ open"));
    expectOneFrame(lines, "⏎ open");
    await key("3");
    lines = await see("the job view", (l) => (l[l.length - 1] ?? "").startsWith("Esc back"));
    expectOneFrame(lines, "Esc back");
    await key("?");
    lines = await see("the help", (l) => l.some((x) => x.startsWith("Esc or ? closes this help")));
    expectOneFrame(lines, "Esc back");
    await key("\x1b");
    await key("5");
    await key("/");
    await key("l");
    lines = await see("the filter prompt", (l) => l[1]!.includes("/l▏"));
    expectOneFrame(lines, "type to filter");
    await key("\x1b");

    // Right after a resize the terminal shows the old frame cut or shifted (xterm keeps the rows
    // around the cursor); the redrawn frame is the one with the header on top and the footer last.
    const redrawnAt = (rows: number) => (l: string[]) => l.length === rows && HEADER.test(l[0] ?? "") && (l[rows - 1] ?? "").startsWith("1-5 views  ↑↓ scroll");
    t.resize(60, 12);
    lines = await see("the frame at 60x12", redrawnAt(12));
    expectOneFrame(lines, "1-5 views  ↑↓ scroll");
    t.resize(100, 20);
    lines = await see("the frame at 100x20", redrawnAt(20));
    expectOneFrame(lines, "1-5 views  ↑↓ scroll");

    await key("q");
    await done;
    lines = await t.screen();
    expect(lines[0]).toBe("$ labrig tui");
    expect(lines.slice(1).every((l) => l === "")).toBe(true);
    expect(t.term.buffer.active.type).toBe("normal");
  });
});
