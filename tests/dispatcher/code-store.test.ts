// The dispatcher's code store on a real SQLite file and real blob files: what is kept while jobs
// use it, and what is collected once nothing does.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CodeManifest } from "../../core/code.js";
import { CodeStore } from "../../dispatcher/code-store.js";
import { openDatabase, type Db } from "../../dispatcher/db.js";
import { Store } from "../../dispatcher/store.js";

let dir: string;
let db: Db;
let code: CodeStore;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const HOUR = 3600_000;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "labrig-code-store-"));
  db = openDatabase(join(dir, "labrig.db"));
  code = new CodeStore(db, join(dir, "code"), 1024 * 1024);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function storeSnapshot(files: Record<string, string>, at: Date): { id: string; blobs: string[] } {
  const entries = Object.entries(files).map(([path, text]) => ({ path, size: Buffer.byteLength(text), sha256: sha(Buffer.from(text)), mode: 0o600 }));
  const manifest: CodeManifest = { version: 1, entries, git: null };
  for (const [, text] of Object.entries(files)) code.putBlob(sha(Buffer.from(text)), [Buffer.from(text)], at);
  const offer = code.offer(manifest, "ana", at);
  expect(offer.missing).toEqual([]);
  return { id: offer.id, blobs: entries.map((e) => e.sha256) };
}

const blobFile = (s: string) => join(dir, "code", "blobs", s.slice(0, 2), s);

describe("collecting code snapshots", () => {
  it("keeps a snapshot a job uses, and removes an unused one and its blobs only after the grace", () => {
    const t0 = new Date("2026-12-01T10:00:00Z");
    const used = storeSnapshot({ "a.py": "used\n", "shared.py": "both\n" }, t0);
    const unused = storeSnapshot({ "b.py": "unused\n", "shared.py": "both\n" }, t0);
    new Store(db).insertJob({ command: ["true"], name: "j", project: "p", gpus: 0, priority: "normal", maxRetries: 0, codeSummary: code.summary(used.id)! }, t0);

    expect(code.collect(HOUR, new Date(t0.getTime() + HOUR / 2))).toEqual({ snapshots: 0, blobs: 0, bytes: 0 });
    expect(code.usage()).toMatchObject({ snapshots: 2, blobs: 3, unused: 1 });

    const removed = code.collect(HOUR, new Date(t0.getTime() + 2 * HOUR));
    expect(removed).toEqual({ snapshots: 1, blobs: 1, bytes: Buffer.byteLength("unused\n") });
    expect(code.snapshot(unused.id)).toBeUndefined();
    expect(code.snapshot(used.id)).toBeDefined();
    // The blob only the unused snapshot had is gone; the one both had stays for the used one.
    const onlyUnused = sha(Buffer.from("unused\n"));
    expect(existsSync(blobFile(onlyUnused))).toBe(false);
    for (const b of used.blobs) expect(existsSync(blobFile(b))).toBe(true);
    expect(code.usage()).toMatchObject({ snapshots: 1, blobs: 2, unused: 0 });
  });

  it("collects a blob uploaded for a snapshot that was never offered again, after the grace", () => {
    const t0 = new Date("2026-12-01T10:00:00Z");
    const stray = Buffer.from("half a submit\n");
    code.putBlob(sha(stray), [stray], t0);
    expect(code.collect(HOUR, new Date(t0.getTime() + 10 * 60_000)).blobs).toBe(0);
    expect(code.collect(HOUR, new Date(t0.getTime() + 2 * HOUR)).blobs).toBe(1);
    expect(existsSync(blobFile(sha(stray)))).toBe(false);
  });
});
