// The sync store's open append handles: one file descriptor per file of an active attempt, kept
// between appends so that an append neither walks the folders nor opens the file again. A handle
// is closed when its attempt ends (closeJob), when it has been idle for a while, when more than
// the cap are open (least recently used first), or when its file is replaced; never while an
// append is writing through it, since a closed descriptor's number can be reused by another file.
import { closeSync } from "node:fs";

interface Handle {
  fd: number;
  usedAtMs: number;
  writers: number;
  /** Close once the last writer is done. */
  closing: boolean;
}

export class OpenFiles {
  private readonly handles = new Map<string, Handle>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly maxOpen = 256,
    readonly idleMs = 60_000,
  ) {}

  /** How many descriptors are open now. */
  get size(): number {
    return this.handles.size;
  }

  /**
   * The descriptor for `key` (opened with `open` when there is none), held until `release(key)`.
   * Keys are `jobId/attempt/path`.
   */
  acquire(key: string, open: () => number): number {
    let h = this.handles.get(key);
    if (h) {
      this.handles.delete(key); // re-inserted below: the map's order is least recently used first
      h.closing = false;
    } else {
      h = { fd: open(), usedAtMs: 0, writers: 0, closing: false };
    }
    h.writers++;
    h.usedAtMs = Date.now();
    this.handles.set(key, h);
    this.evictOverCap();
    this.sweeper ??= setInterval(() => this.closeIdle(), Math.max(1000, this.idleMs / 2)).unref();
    return h.fd;
  }

  release(key: string): void {
    const h = this.handles.get(key);
    if (!h) return;
    h.writers--;
    h.usedAtMs = Date.now();
    if (h.closing && h.writers === 0) this.close(key);
  }

  /** Closes the handle of one file (now, or when its writer is done). */
  close(key: string): void {
    const h = this.handles.get(key);
    if (!h) return;
    if (h.writers > 0) {
      h.closing = true;
      return;
    }
    this.handles.delete(key);
    closeSync(h.fd);
    if (this.handles.size === 0) this.stopSweeper();
  }

  /** Closes every handle of a job's attempts (the attempt ended). */
  closeJob(jobId: string): void {
    for (const key of [...this.handles.keys()]) if (key.startsWith(`${jobId}/`)) this.close(key);
  }

  closeAll(): void {
    for (const key of [...this.handles.keys()]) this.close(key);
    this.stopSweeper();
  }

  private closeIdle(): void {
    const before = Date.now() - this.idleMs;
    for (const [key, h] of [...this.handles]) if (h.writers === 0 && h.usedAtMs < before) this.close(key);
  }

  private evictOverCap(): void {
    if (this.handles.size <= this.maxOpen) return;
    for (const [key, h] of [...this.handles]) {
      if (this.handles.size <= this.maxOpen) return;
      if (h.writers === 0) this.close(key);
    }
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
