// The sync store's open append handles: reused, closed past the cap (least recently used first),
// when idle, when a job's attempt ends, and never while an append writes through one.
import { fstatSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OpenFiles } from "../../dispatcher/open-files.js";

let dir: string;
let opened: string[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "labrig-open-files-"));
  opened = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const opener = (name: string) => () => {
  opened.push(name);
  return openSync(join(dir, name), "a");
};
const isOpen = (fd: number) => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe("OpenFiles", () => {
  it("opens a file once and hands the same descriptor to the next append", () => {
    const files = new OpenFiles();
    const fd = files.acquire("j1/1/a.log", opener("a"));
    files.release("j1/1/a.log");
    expect(files.acquire("j1/1/a.log", opener("a"))).toBe(fd);
    files.release("j1/1/a.log");
    expect(opened).toEqual(["a"]);
    files.closeAll();
    expect(isOpen(fd)).toBe(false);
  });

  it("closes the least recently used handle past the cap, not one in use", () => {
    const files = new OpenFiles(2);
    const a = files.acquire("j1/1/a", opener("a")); // held: must survive eviction
    const b = files.acquire("j1/1/b", opener("b"));
    files.release("j1/1/b");
    const c = files.acquire("j1/1/c", opener("c"));
    files.release("j1/1/c");
    expect(isOpen(a)).toBe(true);
    expect(isOpen(b)).toBe(false);
    expect(isOpen(c)).toBe(true);
    expect(files.size).toBe(2);
    files.release("j1/1/a");
    files.closeAll();
  });

  it("closes a job's handles when its attempt ends, waiting for a writer to finish", () => {
    const files = new OpenFiles();
    const a = files.acquire("j1/1/a", opener("a"));
    const b = files.acquire("j1/1/b", opener("b"));
    files.release("j1/1/b");
    const other = files.acquire("j2/1/a", opener("other"));
    files.release("j2/1/a");
    files.closeJob("j1");
    expect(isOpen(b)).toBe(false);
    expect(isOpen(a)).toBe(true); // still being written
    expect(isOpen(other)).toBe(true);
    files.release("j1/1/a");
    expect(isOpen(a)).toBe(false);
    files.closeAll();
  });

  it("closes handles idle for longer than idleMs", async () => {
    const files = new OpenFiles(256, 1000);
    files.acquire("j1/1/a", opener("a"));
    files.release("j1/1/a");
    expect(files.size).toBe(1);
    // Only the count is checked: after a wait, the closed descriptor's number may belong to another file.
    await new Promise((r) => setTimeout(r, 2200));
    expect(files.size).toBe(0);
  });
});
