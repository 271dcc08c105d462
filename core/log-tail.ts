// Where the last N lines of a log file start, read backwards in blocks: shared by the agent's
// local server and the dispatcher's log relay.
import { open } from "node:fs/promises";

/** Byte offset where the last `lines` lines of the file start (a final newline does not start a line). */
export async function tailOffset(path: string, lines: number): Promise<number> {
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    if (lines <= 0) return size;
    let pos = size;
    let seen = 0;
    const block = Buffer.alloc(64 * 1024);
    let skipFinal = true;
    while (pos > 0) {
      const len = Math.min(block.length, pos);
      pos -= len;
      await fh.read(block, 0, len, pos);
      for (let i = len - 1; i >= 0; i--) {
        if (block[i] !== 0x0a) {
          skipFinal = false;
          continue;
        }
        if (skipFinal) {
          skipFinal = false;
          continue;
        }
        if (++seen === lines) return pos + i + 1;
      }
    }
    return 0;
  } finally {
    await fh.close();
  }
}
