// The full-screen terminal the dashboard draws on. Ink lays the screen out; this module puts each
// frame on the terminal by absolute position, row by row, so that a frame replaces the last one
// exactly whatever the cursor, the terminal's size or an earlier frame left behind.
//
// Why not Ink's own log-update: it moves the cursor *relative* to where the last frame ended. Its
// incremental renderer (Ink 6.8) moves up one row too few whenever a frame ends with a newline,
// which every frame shorter than the terminal does, so each changed frame landed one row lower and
// the rows it skipped as unchanged kept an earlier frame's text (two headers, three footers, no
// tab line). Its standard renderer counts rows to erase, which a resize or a line wider than the
// terminal throws off. Drawing by position has neither failure.
import { EventEmitter } from "node:events";

const ESC = "\x1b[";
export const ENTER_FULL_SCREEN = `${ESC}?1049h${ESC}?25l${ESC}?7l${ESC}H${ESC}2J`;
/** The main screen with what it held before, then autowrap and the cursor back on (after the
 * switch: a terminal such as tmux restores the main screen's modes as they were when it left). */
export const LEAVE_FULL_SCREEN = `${ESC}?1049l${ESC}?7h${ESC}?25h`;
// Terminals that know synchronized output (mode 2026) show a frame whole; others ignore these.
const BEGIN_SYNC = `${ESC}?2026h`;
const END_SYNC = `${ESC}?2026l`;

/**
 * The bytes that turn a screen showing `previous` into one showing `next` (a frame's lines), on a
 * terminal `rows` tall with autowrap off: each row that differs is cleared and rewritten in place.
 * `previous` null means the screen's content is unknown (first frame, after a resize): every row
 * is written. Rows past the frame are cleared; lines past the terminal's last row are dropped, so
 * nothing ever scrolls.
 */
export function frameUpdate(previous: readonly string[] | null, next: readonly string[], rows: number): string {
  let out = "";
  for (let row = 0; row < rows; row++) {
    const line = next[row] ?? "";
    if (previous && (previous[row] ?? "") === line) continue;
    out += `${ESC}${row + 1};1H${ESC}2K${line}`;
  }
  return out ? BEGIN_SYNC + out + END_SYNC : "";
}

export interface FullScreenOptions {
  /** The terminal, normally process.stdout. */
  stdout: NodeJS.WriteStream;
  /** Called with what was written to the terminal by anything else while the screen was held. */
  onForeignOutput?: (text: string, stream: "stdout" | "stderr") => void;
  /** Also hold process.stderr (when it is the same terminal). */
  stderr?: NodeJS.WriteStream;
}

/**
 * Holds the terminal while the dashboard runs: the alternate screen with the cursor hidden and
 * autowrap off, frames drawn by `draw` (the latest of a burst wins), and whatever else the process
 * writes to the terminal meanwhile held back (to `onForeignOutput`) instead of tearing the frame.
 * `inkStdout` is the stream to give Ink: it reports the terminal's size and resizes, and hands each
 * frame Ink writes to `draw`.
 */
export class FullScreen {
  readonly inkStdout: NodeJS.WriteStream;
  private shown: string[] | null = null;
  private pending: string | null = null;
  private scheduled = false;
  private held = false;
  private readonly out: NodeJS.WriteStream;
  private readonly realWrite: NodeJS.WriteStream["write"];
  private readonly realErrWrite: NodeJS.WriteStream["write"] | null;
  private readonly onResize = () => {
    // The terminal has cut or moved what it showed: the next frame is written whole.
    this.shown = null;
    this.inkStdout.emit("resize");
  };

  constructor(private readonly opts: FullScreenOptions) {
    this.out = opts.stdout;
    this.realWrite = this.out.write;
    this.realErrWrite = opts.stderr ? opts.stderr.write : null;
    this.inkStdout = inkFrameStream(this.out, (frame) => this.draw(frame));
  }

  get rows(): number {
    return Math.max(1, this.out.rows || 24);
  }

  get columns(): number {
    return Math.max(1, this.out.columns || 80);
  }

  enter(): void {
    if (this.held) return;
    this.held = true;
    this.write(ENTER_FULL_SCREEN);
    this.shown = null;
    this.out.on("resize", this.onResize);
    this.out.write = this.foreign("stdout") as NodeJS.WriteStream["write"];
    if (this.opts.stderr) this.opts.stderr.write = this.foreign("stderr") as NodeJS.WriteStream["write"];
  }

  /** Gives the terminal back as it was: main screen, cursor, autowrap; safe to call twice. */
  leave(): void {
    if (!this.held) return;
    this.held = false;
    this.flush();
    this.out.off("resize", this.onResize);
    this.out.write = this.realWrite;
    if (this.opts.stderr && this.realErrWrite) this.opts.stderr.write = this.realErrWrite;
    this.write(LEAVE_FULL_SCREEN);
  }

  /** Schedules a frame; frames that arrive in the same tick collapse into the last. */
  draw(frame: string): void {
    if (!this.held) return;
    this.pending = frame;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes the pending frame now. */
  flush(): void {
    this.scheduled = false;
    const frame = this.pending;
    this.pending = null;
    if (frame === null || !this.held) return;
    const lines = frame.split("\n");
    const rows = this.rows;
    const update = frameUpdate(this.shown, lines, rows);
    if (update) this.write(update);
    this.shown = lines.slice(0, rows);
  }

  private write(data: string): void {
    this.realWrite.call(this.out, data);
  }

  private foreign(stream: "stdout" | "stderr") {
    return (chunk: string | Uint8Array, encodingOrCb?: unknown, cb?: unknown): boolean => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      if (text) this.opts.onForeignOutput?.(text, stream);
      const done = typeof encodingOrCb === "function" ? encodingOrCb : cb;
      if (typeof done === "function") queueMicrotask(() => (done as () => void)());
      return true;
    };
  }
}

/**
 * A stand-in stdout for Ink (rendered with `debug: true`, so each write is one whole frame): it
 * has the terminal's size and resize events, and passes frames on instead of writing them.
 */
const ONLY_CONTROL_SEQUENCES = /^(?:\x1b\[[0-9;?]*[A-Za-z])+$/;

function inkFrameStream(terminal: NodeJS.WriteStream, onFrame: (frame: string) => void): NodeJS.WriteStream {
  const stream = new EventEmitter() as EventEmitter & { isTTY: boolean; columns: number; rows: number; write: (chunk: unknown, cb?: unknown) => boolean };
  Object.defineProperties(stream, {
    isTTY: { value: true },
    columns: { get: () => terminal.columns || 80 },
    rows: { get: () => terminal.rows || 24 },
  });
  stream.write = (chunk: unknown, encodingOrCb?: unknown, cb?: unknown) => {
    const text = typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString("utf8") : "";
    // Besides frames, Ink writes "" as a barrier when it unmounts and shows the cursor (cli-cursor's
    // lone escape sequence): neither is a frame, and the cursor stays FullScreen's business.
    if (text && !ONLY_CONTROL_SEQUENCES.test(text)) onFrame(text);
    const done = typeof encodingOrCb === "function" ? encodingOrCb : cb;
    if (typeof done === "function") queueMicrotask(() => (done as () => void)());
    return true;
  };
  return stream as unknown as NodeJS.WriteStream;
}
