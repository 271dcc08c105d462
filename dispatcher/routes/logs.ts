// `GET /api/jobs/{id}/log?tail=N&follow=1&attempt=N`: a job's job.log for people. While the job
// runs it is relayed from its agent's local server, which the dispatcher calls with the relay
// token it gave that agent at registration, so no person's token ever goes to an agent's URL
// (the agent chose that URL itself). Otherwise, or when the agent does not answer, it streams
// the copy synced to the dispatcher, following it as the agent appends.
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import { isTerminalJobState } from "../../core/api.js";
import { tailOffset } from "../../core/log-tail.js";
import { jobOr404, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";
import type { DispatcherService } from "../service.js";
import type { StoredJob } from "../store.js";

const LOG = "job.log";
/** How long an agent has to start answering before the synced copy is served instead. */
const AGENT_ANSWER_MS = 5_000;
/** How long an ended job's synced log must stay the same size before a follow ends. */
const SETTLE_MS = 2_000;

export function logRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;

  app.get<{ Params: { id: string }; Querystring: { follow?: string; tail?: string; attempt?: string } }>(
    "/api/jobs/:id/log",
    { config: { access: "person" } },
    async (req, reply) => {
      const job = jobOr404(service, req.params.id);
      const attempt = wholeQuery(req.query.attempt, "attempt", 1) ?? job.attempt;
      const tail = wholeQuery(req.query.tail, "tail", 0);
      const follow = ["1", "true", "yes"].includes(req.query.follow ?? "");
      const gone = new AbortController();
      reply.raw.on("close", () => gone.abort());

      const live = attempt === job.attempt && (job.state === "running" || job.state === "assigned") && job.hostId !== null;
      const relay = live ? service.relayTarget(job.hostId!) : undefined;
      if (relay) {
        const body = await fromAgent(relay, job.id, attempt, tail, follow, gone.signal);
        if (body) {
          return reply.header("content-type", "text/plain; charset=utf-8").header("cache-control", "no-store").header("x-labrig-log-source", "agent").send(body);
        }
      }
      const stream = Readable.from(syncedLog(service, job, attempt, tail, follow, gone.signal));
      return reply.header("content-type", "text/plain; charset=utf-8").header("cache-control", "no-store").header("x-labrig-log-source", "dispatcher").send(stream);
    },
  );
}

function wholeQuery(v: string | undefined, field: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min) throw new HttpError(400, "invalid_query", `${field}: a whole number >= ${min}`, { field });
  return n;
}

/** The agent's log stream, or undefined when it does not answer 200 in time. */
async function fromAgent(
  relay: { agentUrl: string; relayToken: string },
  jobId: string,
  attempt: number,
  tail: number | undefined,
  follow: boolean,
  gone: AbortSignal,
): Promise<Readable | undefined> {
  const q = new URLSearchParams({ attempt: String(attempt) });
  if (tail !== undefined) q.set("tail", String(tail));
  if (follow) q.set("follow", "1");
  const url = `${relay.agentUrl.replace(/\/+$/, "")}/jobs/${encodeURIComponent(jobId)}/log?${q}`;
  const abort = new AbortController();
  const onGone = () => abort.abort();
  gone.addEventListener("abort", onGone, { once: true });
  const timer = setTimeout(() => abort.abort(), AGENT_ANSWER_MS);
  try {
    // redirect: "error": the agent's URL may not send the dispatcher anywhere else.
    const res = await fetch(url, { headers: { authorization: `Bearer ${relay.relayToken}` }, redirect: "error", signal: abort.signal });
    clearTimeout(timer);
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel().catch(() => {});
      return undefined;
    }
    return Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  } catch {
    clearTimeout(timer);
    return undefined;
  }
}

/** The synced job.log from `tail` lines before its end; with follow, what is appended until the attempt ends and the file settles. */
async function* syncedLog(service: DispatcherService, job: StoredJob, attempt: number, tail: number | undefined, follow: boolean, gone: AbortSignal): AsyncGenerator<Buffer> {
  const path = service.sync.safeFile(job.project, job.id, attempt, LOG, false);
  let pos = tail !== undefined && existsSync(path) ? await tailOffset(path, tail) : 0;
  let settledSince: number | undefined;
  const buf = Buffer.alloc(256 * 1024);
  while (!gone.aborted) {
    const size = service.sync.info(job.id, attempt, LOG)?.size ?? 0;
    if (size > pos) {
      settledSince = undefined;
      const fh = await open(path, "r");
      try {
        while (pos < size && !gone.aborted) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          yield Buffer.from(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
    }
    if (!follow) return;
    const now = service.store.getJob(job.id);
    const over = !now || now.attempt !== attempt || isTerminalJobState(now.state);
    if (over) {
      settledSince ??= Date.now();
      if (Date.now() - settledSince >= SETTLE_MS) return;
    }
    await sleep(500, undefined, { signal: gone }).catch(() => {});
  }
}
