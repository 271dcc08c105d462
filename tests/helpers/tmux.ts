// Runs a command in a real terminal: a detached tmux session of a given size on a private tmux
// server, driven with send-keys and read back with capture-pane, so tests see what a person sees
// (which is not always what Ink's lastFrame() says). Every session lives on its own socket and is
// killed by `kill()`.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TmuxStartOptions {
  cols: number;
  rows: number;
  /** A shell command line; it runs under `sh -c` in `cwd` with `env` added. */
  command: string;
  cwd?: string;
  env?: Record<string, string | undefined>;
}

export class TmuxSession {
  private constructor(
    private readonly dir: string,
    private readonly socket: string,
  ) {}

  /** Starts `command` in a new detached session `cols`×`rows`; the pane stays open after it exits. */
  static async start(opts: TmuxStartOptions): Promise<TmuxSession> {
    const dir = mkdtempSync(join(tmpdir(), "labrig-tmux-"));
    const session = new TmuxSession(dir, join(dir, "socket"));
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, LANG: process.env.LANG || "C.UTF-8", ...opts.env })) if (v !== undefined) env[k] = v;
    // tmux hands the new pane the environment of the server, which this first command starts.
    delete env.TMUX;
    // The pane's TERM is the server's default-terminal: the same xterm every test expects.
    await run(
      "tmux",
      ["-S", session.socket, "-f", "/dev/null", "start-server", ";", "set-option", "-g", "default-terminal", "xterm-256color", ";",
        "new-session", "-d", "-s", "t", "-x", String(opts.cols), "-y", String(opts.rows), "-c", opts.cwd ?? process.cwd(), opts.command],
      { env },
    );
    // Keep the pane (and what the command printed last) when the command exits; no status bar.
    await session.tmux("set-option", "-t", "t", "remain-on-exit", "on");
    await session.tmux("set-option", "-t", "t", "status", "off");
    await session.tmux("resize-window", "-t", "t", "-x", String(opts.cols), "-y", String(opts.rows));
    return session;
  }

  async tmux(...args: string[]): Promise<string> {
    const { stdout } = await run("tmux", ["-S", this.socket, ...args]);
    return stdout;
  }

  /** The visible screen, one string a row, trailing spaces removed. */
  async capture(): Promise<string[]> {
    const out = await this.tmux("capture-pane", "-p", "-t", "t");
    const lines = out.replace(/\n$/, "").split("\n").map((l) => l.trimEnd());
    const { rows } = await this.size();
    while (lines.length < rows) lines.push("");
    return lines;
  }

  /** The pane's scrollback and screen together (a resize can push the main screen's top rows into scrollback). */
  async scrollback(): Promise<string[]> {
    const out = await this.tmux("capture-pane", "-p", "-S", "-", "-E", "-", "-t", "t");
    return out.replace(/\n$/, "").split("\n").map((l) => l.trimEnd());
  }

  async text(): Promise<string> {
    return (await this.capture()).join("\n");
  }

  /** Sends keys one at a time, as a person types them (a burst arrives as one read). */
  async keys(...keys: string[]): Promise<void> {
    for (const k of keys) {
      await this.tmux("send-keys", "-t", "t", k);
      await sleep(150);
    }
  }

  async resize(cols: number, rows: number): Promise<void> {
    await this.tmux("resize-window", "-t", "t", "-x", String(cols), "-y", String(rows));
  }

  async size(): Promise<{ cols: number; rows: number }> {
    const [cols, rows] = (await this.display("#{pane_width} #{pane_height}")).split(" ").map(Number);
    return { cols: cols!, rows: rows! };
  }

  /** A tmux format about the pane: `#{alternate_on}`, `#{cursor_flag}`, `#{pane_dead}`, … */
  async display(format: string): Promise<string> {
    return (await this.tmux("display-message", "-p", "-t", "t", format)).trim();
  }

  /** Polls the screen until `ok` holds; the error shows the last screen. */
  async waitFor(what: string, ok: (lines: string[]) => boolean, timeoutMs = 15_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    let last: string[] = [];
    while (Date.now() < deadline) {
      last = await this.capture();
      if (ok(last)) return last;
      await sleep(100);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the terminal shows:\n${last.join("\n")}`);
  }

  async waitForText(text: string | RegExp, timeoutMs?: number): Promise<string[]> {
    const has = (lines: string[]) => (typeof text === "string" ? lines.join("\n").includes(text) : text.test(lines.join("\n")));
    return await this.waitFor(String(text), has, timeoutMs);
  }

  async kill(): Promise<void> {
    await this.tmux("kill-server").catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
