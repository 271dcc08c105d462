// The agent's streaming uploads against a real dispatcher process: appends from a file region,
// the dispatcher's answers as ApiErrors, and a file that shrinks under the upload.
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileChangedError, SyncUploader } from "../../agent/sync-upload.js";
import type { Lease } from "../../core/api.js";
import { ApiError } from "../../core/errors.js";
import { startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { SimAgent } from "../helpers/sim-agent.js";

let d: DispatcherProcess;
let agent: SimAgent;
let lease: Lease;
let dir: string;

beforeAll(async () => {
  d = await startDispatcher();
  agent = await new SimAgent(d.url, "upload-host").register(d.joinToken);
  await agent.heartbeat();
  await d.admin().submit({ command: ["true"], constraints: { hostId: agent.hostId } });
  lease = (await agent.lease(10))!;
  await agent.report(lease, "running");
  dir = mkdtempSync(join(tmpdir(), "labrig-upload-"));
}, 60_000);

afterAll(async () => {
  await d?.stop();
  d?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("SyncUploader", () => {
  it("appends file regions at offsets, one after another, and the dispatcher holds exactly those bytes", async () => {
    const file = join(dir, "train.log");
    writeFileSync(file, "epoch 1\nepoch 2\nepoch 3\n");
    const up = new SyncUploader(agent.client);
    expect(await up.append(lease.job.id, "train.log", lease.attempt, 0, { file, start: 0, length: 8 })).toEqual({ size: 8 });
    expect(await up.append(lease.job.id, "train.log", lease.attempt, 8, { file, start: 8, length: 16 })).toEqual({ size: 24 });
    expect((await d.admin().syncGet(lease.job.id, "train.log")).toString()).toBe("epoch 1\nepoch 2\nepoch 3\n");
  });

  it("turns a gap into an ApiError 409 carrying the size held", async () => {
    const file = join(dir, "gap.log");
    writeFileSync(file, "abcdef");
    const up = new SyncUploader(agent.client);
    const err = await up.append(lease.job.id, "gap.log", lease.attempt, 3, { file, start: 3, length: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 409, code: "offset_gap", body: { size: 0 } });
  });

  it("fails with FileChangedError when the file is shorter than the region, and nothing is stored", async () => {
    const file = join(dir, "short.log");
    writeFileSync(file, "four");
    const up = new SyncUploader(agent.client);
    await expect(up.append(lease.job.id, "short.log", lease.attempt, 0, { file, start: 0, length: 4096 })).rejects.toThrow(FileChangedError);
    await expect(up.put(lease.job.id, "gone.bin", lease.attempt, "0".repeat(64), { file: join(dir, "missing"), start: 0, length: 10 })).rejects.toThrow(FileChangedError);
    const files = (await d.admin().syncStatus(lease.job.id)).files;
    expect(files["short.log"]?.size ?? 0).toBe(0);
    expect(files["gone.bin"]).toBeUndefined();
  });

  it("replaces a file whole from disk when its sha256 matches, and refuses it otherwise", async () => {
    const file = join(dir, "meta.yaml");
    writeFileSync(file, "epoch: 3\n");
    const sha = createHash("sha256").update("epoch: 3\n").digest("hex");
    const up = new SyncUploader(agent.client);
    expect(await up.put(lease.job.id, "ckpt/meta.yaml", lease.attempt, sha, { file, start: 0, length: 9 })).toEqual({ size: 9 });
    await expect(up.put(lease.job.id, "ckpt/meta.yaml", lease.attempt, "0".repeat(64), { file, start: 0, length: 9 })).rejects.toMatchObject({ status: 400, code: "sha256_mismatch" });
    expect((await d.admin().syncGet(lease.job.id, "ckpt/meta.yaml")).toString()).toBe("epoch: 3\n");
  });

  it("keeps every byte exact when many uploads share the reused read buffers at once", async () => {
    // Regions of several MiB are several reads each into a buffer the next read reuses: a buffer
    // read into again before the socket took its bytes would show here as a wrong sha256.
    const up = new SyncUploader(agent.client);
    const files = Array.from({ length: 4 }, (_, i) => ({ path: `many/${i}.bin`, file: join(dir, `many-${i}.bin`), bytes: randomBytes(3 * 1024 * 1024 + 4099 * (i + 1)) }));
    for (const f of files) writeFileSync(f.file, f.bytes);
    const step = 1536 * 1024 + 7;
    await Promise.all(
      files.map(async (f, i) => {
        if (i === 3) return up.put(lease.job.id, f.path, lease.attempt, createHash("sha256").update(f.bytes).digest("hex"), { file: f.file, start: 0, length: f.bytes.length });
        let offset = 0;
        while (offset < f.bytes.length) {
          const length = Math.min(step, f.bytes.length - offset);
          offset = (await up.append(lease.job.id, f.path, lease.attempt, offset, { file: f.file, start: offset, length })).size;
        }
        return { size: offset };
      }),
    );
    const held = (await d.admin().syncStatus(lease.job.id)).files;
    for (const f of files) expect(held[f.path], f.path).toMatchObject({ size: f.bytes.length, sha256: createHash("sha256").update(f.bytes).digest("hex") });
  });
});
