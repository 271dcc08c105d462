// Sync uploads that stream a region of a file from disk to the dispatcher over kept-alive
// node:http(s) connections: `POST /api/sync/{jobId}/files/{path}?offset=N` for appends, `PUT` with
// the sha256 for whole files. Nothing is read into memory first, so a 2 GiB checkpoint moves with
// about a MiB in flight, and the connection is reused from one append to the next (fetch
// with a buffered body spent most of an append's time in the client; see bench/sync-throughput.ts).
import { closeSync, openSync, readSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { type DispatcherClient, encPath } from "../core/client.js";
import { ApiError, LabrigError } from "../core/errors.js";

/** The file became shorter than the region being sent, or went away: nothing was stored, the next round looks again. */
export class FileChangedError extends LabrigError {}

/** What the uploader reads from the agent's client: where the dispatcher is and the agent's current token. */
export type UploadTarget = Pick<DispatcherClient, "url" | "token">;

/**
 * An upload whose socket neither sends nor receives for this long is given up on: 2 minutes, and
 * 1 ms more per kB, since the dispatcher flushes a whole file to disk before it answers a PUT.
 */
const idleTimeoutMs = (length: number) => 120_000 + Math.ceil(length / 1000);
/** Read size from disk, and so the most of a file in memory at once: an 8 MiB append is eight writes to the socket. */
const READ_CHUNK = 1024 * 1024;
// Kept-alive connections, shared by every job of this agent (one per concurrent upload). An idle
// one is closed well before the dispatcher's own keep-alive timeout (72 s, Fastify's default), so
// a reused connection is not one the server is closing at that moment.
const KEEP_ALIVE = { keepAlive: true, maxSockets: 8, timeout: 30_000 };
const agents = { http: new http.Agent(KEEP_ALIVE), https: new https.Agent(KEEP_ALIVE) };

export interface FileRegion {
  /** The local file. */
  file: string;
  start: number;
  length: number;
}

export class SyncUploader {
  constructor(private readonly target: UploadTarget) {}

  /** Appends bytes [start, start+length) of a local file at `offset` of the dispatcher's copy; resolves with the size it holds. */
  append(jobId: string, path: string, attempt: number, offset: number, region: FileRegion): Promise<{ size: number }> {
    return this.send("POST", `/api/sync/${encodeURIComponent(jobId)}/files/${encPath(path)}?offset=${offset}&attempt=${attempt}`, region, `append to ${path} of job ${jobId}`);
  }

  /** Replaces the dispatcher's copy with the first `length` bytes of a local file, which hash to `sha256`. */
  put(jobId: string, path: string, attempt: number, sha256: string, region: FileRegion): Promise<{ size: number }> {
    return this.send("PUT", `/api/sync/${encodeURIComponent(jobId)}/files/${encPath(path)}?sha256=${sha256}&attempt=${attempt}`, region, `PUT ${path} of job ${jobId}`);
  }

  private async send(method: string, path: string, region: FileRegion, what: string): Promise<{ size: number }> {
    const url = new URL(this.target.url + path);
    const secure = url.protocol === "https:";
    const headers: http.OutgoingHttpHeaders = { "content-type": "application/octet-stream", "content-length": region.length };
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    const fd = openRegion(region); // opened first: a file already gone makes no request
    const req = (secure ? https : http).request(url, { method, headers, agent: secure ? agents.https : agents.http });
    const idleMs = idleTimeoutMs(region.length);
    req.setTimeout(idleMs, () => req.destroy(new Error(`no progress for ${Math.round(idleMs / 1000)} s`)));
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on("response", (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("error", reject);
    });
    // The dispatcher may answer before the body is all sent (a gap, a stale attempt): the answer
    // counts then, and the cut body is no error.
    const sent = sendRegion(req, fd, region).then(
      () => undefined,
      (err: unknown) => err,
    );
    let result: { status: number; text: string };
    try {
      result = await answer;
    } catch (err) {
      const cause = await sent;
      if (cause instanceof FileChangedError) throw cause;
      throw new LabrigError(`cannot reach the dispatcher at ${this.target.url} (${what}): ${(err as Error).message}`, { cause: err });
    }
    let parsed: unknown = undefined;
    try {
      parsed = result.text.length > 0 ? JSON.parse(result.text) : undefined;
    } catch {
      parsed = result.text;
    }
    if (result.status >= 400) {
      const e = (parsed ?? {}) as { error?: string; message?: string };
      throw new ApiError(result.status, e.error ?? "error", e.message ?? `${what} failed`, parsed);
    }
    const size = (parsed as { size?: unknown } | undefined)?.size;
    if (typeof size !== "number") throw new LabrigError(`the dispatcher at ${this.target.url} answered the ${what} without a size: ${result.text.slice(0, 200)}`);
    return { size };
  }
}

function openRegion(region: FileRegion): number {
  try {
    return openSync(region.file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new FileChangedError(`${region.file} went away before it was sent`, { cause: err });
    throw err;
  }
}

/** Read buffers of READ_CHUNK kept between uploads: a fresh one per append cost more in GC than its bytes took to send. */
const spareBuffers: Buffer[] = [];
const SPARE_BUFFERS = 4;

/**
 * Sends a file region as the request's body, read with synchronous reads of READ_CHUNK into one
 * reused buffer: from the page cache each read takes well under a millisecond, and it spares the
 * thread-pool hop per step that made small appends slow. The buffer is read into again only once
 * the socket has taken its bytes. A file that ends before the region does destroys the request
 * with FileChangedError. Closes `fd`.
 */
async function sendRegion(req: http.ClientRequest, fd: number, region: FileRegion): Promise<void> {
  const buf = spareBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK);
  const closed = new Promise<never>((_, reject) => req.once("close", () => reject(new Error("the upload's connection closed"))));
  closed.catch(() => undefined);
  let reusable = false;
  try {
    let pos = region.start;
    const end = region.start + region.length;
    do {
      const want = Math.min(buf.length, end - pos);
      const n = want > 0 ? readSync(fd, buf, 0, want, pos) : 0;
      if (n === 0 && want > 0) {
        const err = new FileChangedError(`${region.file} is shorter than the ${region.length} bytes from ${region.start} being sent`);
        req.destroy(err);
        throw err;
      }
      pos += n;
      const chunk = buf.subarray(0, n);
      await Promise.race([new Promise<void>((resolve, reject) => (pos >= end ? req.end(chunk, resolve) : req.write(chunk, (err) => (err ? reject(err) : resolve())))), closed]);
    } while (pos < end);
    reusable = true;
  } finally {
    closeSync(fd);
    // A buffer a cut connection may still hold is left to the garbage collector.
    if (reusable && spareBuffers.length < SPARE_BUFFERS) spareBuffers.push(buf);
  }
}
