// The bare server of sync-throughput-ratio: the least a server must do for a delta append (write the
// bytes at the offset the query names, hash them for the status's sha256, answer the size held),
// on bare node:http with no routing, auth, database or events. Run as its own process, as the
// dispatcher is, so the benchmark's uploader crosses the same process boundary; prints its port.
import { createHash, type Hash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "labrig-bare-sync-"));
const files = new Map<string, { fd: number; size: number; hash: Hash }>();

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const offset = Number(url.searchParams.get("offset"));
  let f = files.get(url.pathname);
  if (!f) files.set(url.pathname, (f = { fd: openSync(join(dir, String(files.size)), "w"), size: 0, hash: createHash("sha256") }));
  const file = f;
  if (offset !== file.size) {
    res.writeHead(409, { "content-type": "application/json" }).end(JSON.stringify({ error: "offset_gap", size: file.size }));
    return void req.resume();
  }
  req.on("data", (chunk: Buffer) => {
    writeSync(file.fd, chunk, 0, chunk.length, file.size);
    file.hash.update(chunk);
    file.size += chunk.length;
  });
  req.on("end", () => {
    const answer = JSON.stringify({ size: file.size });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) }).end(answer);
  });
});

const stop = () => {
  for (const f of files.values()) closeSync(f.fd);
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("disconnect", stop);
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  process.stdout.write(`${typeof addr === "object" && addr ? addr.port : 0}\n`);
});
