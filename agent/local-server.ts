// The agent's small HTTP server (--listen): GET /status, GET /jobs/{id}/log?tail=N&follow=1
// (streamed while the job runs) and GET /metrics, for the dashboard and for a look at one host.
// Every route but /health needs a bearer token: this agent's own token, the dispatcher's relay
// token for it (live logs reach people through the dispatcher), or a person's token, which the
// agent checks by asking its dispatcher once (cached) or finds in LABRIG_AGENT_ADMIN_TOKENS.
import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { tailOffset } from "../core/log-tail.js";

export { tailOffset };

export function tokensEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Decides whether a token is a person's (an admin's or a member's) without holding it: tokens
 * listed in LABRIG_AGENT_ADMIN_TOKENS are accepted offline; any other is shown to the dispatcher
 * once (GET /api/jobs?limit=1 answers 200 only to people), and the answer is cached by the token's
 * hash — yes for 5 minutes, no for 30 seconds, so a wrong token cannot make the agent hammer the
 * dispatcher. When the dispatcher cannot be reached the answer is "unknown" (HTTP 503).
 */
export class AdminTokenCheck {
  private cache = new Map<string, { admin: boolean; until: number }>();

  constructor(
    private readonly dispatcherUrl: string,
    private readonly listed: string[] = [],
  ) {}

  async isAdmin(token: string): Promise<boolean | "unknown"> {
    if (this.listed.some((t) => tokensEqual(t, token))) return true;
    const key = createHash("sha256").update(token).digest("hex");
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.admin;
    let status: number;
    try {
      const res = await fetch(`${this.dispatcherUrl}/api/jobs?limit=1`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      return "unknown";
    }
    if (status >= 500) return "unknown";
    const admin = status === 200;
    if (this.cache.size > 1000) this.cache.clear();
    this.cache.set(key, { admin, until: Date.now() + (admin ? 300_000 : 30_000) });
    return admin;
  }
}

export interface LogFile {
  path: string;
  /** True while the job may still write to it. */
  active(): boolean;
}

export interface LocalServerSource {
  agentToken(): string | undefined;
  /** The dispatcher's credential for relaying logs (see dispatcher/routes/logs.ts). */
  relayToken(): string | undefined;
  adminCheck: AdminTokenCheck;
  status(): unknown;
  logFile(jobId: string, attempt?: number): LogFile | undefined;
  metrics(): Promise<{ contentType: string; body: string }>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

async function authorized(req: IncomingMessage, res: ServerResponse, src: LocalServerSource): Promise<boolean> {
  const h = req.headers.authorization;
  if (!h?.startsWith("Bearer ")) {
    sendJson(res, 401, { error: "unauthorized", message: "missing bearer token: use the agent's token or the lab's admin token" });
    return false;
  }
  const token = h.slice(7).trim();
  const own = src.agentToken();
  if (own && tokensEqual(own, token)) return true;
  const relay = src.relayToken();
  if (relay && tokensEqual(relay, token)) return true;
  const admin = await src.adminCheck.isAdmin(token);
  if (admin === true) return true;
  if (admin === "unknown") {
    sendJson(res, 503, { error: "cannot_verify", message: "the dispatcher, which checks admin tokens, cannot be reached; use the agent's own token" });
  } else {
    sendJson(res, 401, { error: "unauthorized", message: "wrong token: use the agent's token or the lab's admin token" });
  }
  return false;
}

/** Streams the file from `from`; with follow, keeps streaming what is appended until the job ends or the client leaves. */
async function streamLog(req: IncomingMessage, res: ServerResponse, log: LogFile, from: number, follow: boolean): Promise<void> {
  let closed = false;
  req.on("close", () => (closed = true));
  res.on("close", () => (closed = true));
  res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" });
  let pos = from;
  const buf = Buffer.alloc(256 * 1024);
  for (;;) {
    const wasActive = log.active();
    const size = existsSync(log.path) ? (await stat(log.path)).size : 0;
    if (size > pos) {
      const fh = await open(log.path, "r");
      try {
        while (pos < size && !closed) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          if (!res.write(Buffer.from(buf.subarray(0, bytesRead)))) await new Promise((r) => res.once("drain", r).once("close", r));
        }
      } finally {
        await fh.close();
      }
    }
    if (closed || !follow || !wasActive) break;
    await sleep(200);
  }
  res.end();
}

export function createLocalServer(src: LocalServerSource): Server {
  return createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://agent");
      if (req.method !== "GET") return sendJson(res, 405, { error: "method_not_allowed", message: "the agent's server only answers GET" });
      if (url.pathname === "/health") return sendJson(res, 200, { status: "ok" });
      if (!(await authorized(req, res, src))) return;
      if (url.pathname === "/status") return sendJson(res, 200, src.status());
      if (url.pathname === "/metrics") {
        const m = await src.metrics();
        res.writeHead(200, { "content-type": m.contentType });
        return res.end(m.body);
      }
      const m = /^\/jobs\/([^/]+)\/log$/.exec(url.pathname);
      if (m) {
        const jobId = safeDecode(m[1]!);
        // A job id names a folder under the workdir: nothing that could leave it (an encoded '..' or '/').
        if (jobId === undefined || !/^[A-Za-z0-9_-]{1,64}$/.test(jobId)) {
          return sendJson(res, 400, { error: "invalid_path", message: "job id: letters, digits, '_' or '-'", field: "id" });
        }
        const attemptQ = url.searchParams.get("attempt");
        const attempt = attemptQ === null ? undefined : Number(attemptQ);
        if (attempt !== undefined && (!Number.isInteger(attempt) || attempt < 1)) return sendJson(res, 400, { error: "invalid_query", message: "attempt: a whole number >= 1", field: "attempt" });
        const tailQ = url.searchParams.get("tail");
        const tail = tailQ === null ? undefined : Number(tailQ);
        if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) return sendJson(res, 400, { error: "invalid_query", message: "tail: a whole number of lines >= 0", field: "tail" });
        const log = src.logFile(jobId, attempt);
        if (!log || !existsSync(log.path)) return sendJson(res, 404, { error: "not_found", message: `no log of job ${jobId}${attempt ? ` attempt ${attempt}` : ""} on this host` });
        const follow = ["1", "true", "yes"].includes(url.searchParams.get("follow") ?? "");
        const from = tail === undefined ? 0 : await tailOffset(log.path, tail);
        return streamLog(req, res, log, from, follow);
      }
      sendJson(res, 404, { error: "not_found", message: `no route GET ${url.pathname} (try /status, /jobs/{id}/log, /metrics)` });
    })().catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: "internal", message: String(err) });
      else res.destroy();
    });
  });
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
