// `labrig tui` and `labrig wall` as real processes: help, the errors that say what to do, and the
// dashboard in a real pseudo-terminal (util-linux `script`) against a real dispatcher, quitting
// with q or Ctrl-C and leaving the terminal as it found it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli } from "../cli/cli-process.js";
import { type DispatcherProcess, repoRoot, startDispatcher } from "../helpers/dispatcher-process.js";

const ENTER_ALT = "\x1b[?1049h";
const LEAVE_ALT = "\x1b[?1049l";
const plain = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");

let home: string;
beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "labrig-tui-home-"));
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("labrig tui and wall commands", () => {
  it("print their options and keys with --help", async () => {
    const tui = await runCli(["tui", "--help"], cliEnv({ LABRIG_HOME: home }));
    expect(tui.exitCode).toBe(0);
    expect(tui.stdout).toContain("--url <url>");
    expect(tui.stdout).toContain("--inventory <file>");
    expect(tui.stdout).toContain("Keys: 1-5 switch views");
    const wall = await runCli(["wall", "--help"], cliEnv({ LABRIG_HOME: home }));
    expect(wall.exitCode).toBe(0);
    expect(wall.stdout).toContain("read-only full-screen wall monitor");
  });

  it("say how to point them at a dispatcher when none is found", async () => {
    const r = await runCli(["tui"], cliEnv({ LABRIG_HOME: home }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("no dispatcher found: run labrig login --url URL, set LABRIG_URL and LABRIG_TOKEN");
  });

  it("refuse to run without a terminal and name the commands for scripts", async () => {
    const r = await runCli(["wall", "--url", "http://127.0.0.1:9", "--token", "t"], cliEnv({ LABRIG_HOME: home }), { stdin: "pipe" });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("the wall view needs a terminal");
  });
});

describe("labrig tui in a terminal", () => {
  let d: DispatcherProcess;
  beforeAll(async () => {
    d = await startDispatcher();
  });
  afterAll(async () => {
    await d?.stop();
    d?.cleanup();
  });

  /** Runs the dashboard under `script`, typing `keys` (each after `gapMs`), and returns what the terminal received. */
  async function inTerminal(keys: string[], gapMs = 1500) {
    const cmd = `${process.execPath} --import tsx cli/main.ts tui --url ${d.url} --token ${d.adminToken}`;
    const child = execa("script", ["-qfec", cmd, "/dev/null"], { cwd: repoRoot, env: { ...cliEnv({ LABRIG_HOME: home }), TERM: "xterm-256color" }, extendEnv: false, reject: false, timeout: 60_000 });
    // Type only once it has drawn (tsx compiles on first run; keys typed before raw mode echo and
    // arrive as one read).
    let seen = "";
    child.stdout!.on("data", (d: Buffer) => (seen += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!plain(seen).includes("● connected") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const k of keys) {
      child.stdin!.write(k);
      await new Promise((r) => setTimeout(r, gapMs));
    }
    const t0 = Date.now();
    const r = await child;
    return { ...r, exitMs: Date.now() - t0, out: String(r.stdout) };
  }

  it("draws the dashboard on the alternate screen, switches view on a key, and q quits restoring the screen", async () => {
    const r = await inTerminal(["2", "q"]);
    expect(r.exitCode).toBe(0);
    expect(r.exitMs).toBeLessThan(5000);
    expect(r.out).toContain(ENTER_ALT);
    expect(r.out.lastIndexOf(LEAVE_ALT)).toBeGreaterThan(r.out.lastIndexOf(ENTER_ALT));
    const text = plain(r.out);
    expect(text).toContain("● connected");
    expect(text).toContain("no devices yet");
    expect(text).toContain("no jobs yet");
  });

  it("quits on Ctrl-C the same way", async () => {
    const r = await inTerminal(["\x03"]);
    expect(r.exitCode).toBe(0);
    expect(r.out.lastIndexOf(LEAVE_ALT)).toBeGreaterThan(r.out.lastIndexOf(ENTER_ALT));
  });
});
