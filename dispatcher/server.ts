// The dispatcher's HTTP API v1 (Fastify): one onRequest hook that authenticates every request and
// refuses an oversized declared body before a byte of it is read, body limits on every route,
// the API's JSON errors, and the route modules in ./routes. Errors are JSON {error, message, field?}.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { SlurmView } from "../core/api.js";
import { CvlabYamlError } from "../core/cvlab-config.js";
import { RequestProblem, yamlProblemBody } from "./cvlab.js";
import { StoreConflict } from "./store.js";
import { SyncGapError, SyncHashError, SyncPathError } from "./sync-store.js";
import type { DispatcherMetrics } from "./metrics.js";
import { PeopleError, type PeopleStore } from "./people.js";
import type { DispatcherService } from "./service.js";
import { authorize, bearerToken, type AuthOptions } from "./http/auth.js";
import { viewJob, type Chunks, type RouteContext } from "./http/common.js";
import { HttpError } from "./http/errors.js";
import { agentRoutes } from "./routes/agents.js";
import { deviceRoutes } from "./routes/devices.js";
import { eventRoutes } from "./routes/events.js";
import { jobRoutes } from "./routes/jobs.js";
import { logRoutes } from "./routes/logs.js";
import { peopleErrorReply, peopleRoutes } from "./routes/people.js";
import { syncRoutes } from "./routes/sync.js";
import { codeRoutes } from "./routes/code.js";
import { slurmRoutes } from "./routes/slurm.js";
import { CodeBlobError, type CodeStore } from "./code-store.js";

export const DISPATCHER_VERSION = "0.1.0";

/** JSON bodies are small; sync uploads get their own limit. */
export const JSON_BODY_LIMIT = 1024 * 1024;
export const DEFAULT_SYNC_BODY_LIMIT = 1024 * 1024 * 1024;

export interface ServerOptions {
  service: DispatcherService;
  people: PeopleStore;
  metrics: DispatcherMetrics;
  adminToken: string;
  joinToken: string;
  maxLeaseWaitS?: number;
  /** Names this dispatcher's state in /api/health, so an agent sends its saved token only to the dispatcher that issued it. */
  instanceId?: string;
  /** Largest sync upload body in bytes (default 1 GiB). */
  syncBodyLimit?: number;
  /** Code snapshots (blobs under the state folder). */
  code: CodeStore;
  /** Slurm's view of the cluster, in slurm mode (GET /api/slurm/status). */
  slurmView?: () => Promise<SlurmView>;
  logger?: boolean;
}

export function buildServer(opts: ServerOptions): FastifyInstance {
  const { service, metrics } = opts;
  const syncBodyLimit = opts.syncBodyLimit ?? DEFAULT_SYNC_BODY_LIMIT;
  // At shutdown idle keep-alive connections close at once; requests in flight finish first.
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: JSON_BODY_LIMIT, forceCloseConnections: "idle" });
  const auth: AuthOptions = { service, people: opts.people, adminToken: opts.adminToken, joinToken: opts.joinToken };
  const closers = new Set<() => void>();
  const ctx: RouteContext = { service, people: opts.people, code: opts.code, maxLeaseWaitS: opts.maxLeaseWaitS ?? 60, syncBodyLimit, closers, ...(opts.slurmView ? { slurmView: opts.slurmView } : {}) };

  // Who calls, before anything else: no body is read for a caller that may not call the route,
  // and an unknown route needs a valid token too, so 401 always comes before 404.
  app.decorateRequest("caller", null as never);
  app.addHook("onRequest", async (req, reply) => {
    const config = req.routeOptions.config;
    const access = config?.access ?? "any";
    let token = bearerToken(req.headers.authorization);
    if (token === undefined && config?.queryToken) token = (req.query as { token?: string }).token || undefined;
    try {
      const caller = authorize(access, token, auth, req.params as { hostId?: string });
      if (caller) req.caller = caller;
      const declared = Number(req.headers["content-length"] ?? 0);
      const limit = req.routeOptions.bodyLimit ?? JSON_BODY_LIMIT;
      if (declared > limit) throw tooLarge(limit);
    } catch (err) {
      // The body is not read: close the connection after the answer instead of draining it.
      if (hasBody(req)) reply.header("connection", "close");
      throw err;
    }
  });

  // Upload bodies stay as the chunks they arrived in: joining a large body into one fresh buffer
  // before writing it costs more than the write itself. A route with `streamBody` (sync uploads)
  // gets the stream itself and writes it as it arrives. The route's limit applies while they arrive.
  const collectChunks = (req: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: Chunks) => void) => {
    const limit = req.routeOptions.bodyLimit ?? JSON_BODY_LIMIT;
    const parts: Buffer[] = [];
    let length = 0;
    let over = false;
    const onData = (c: Buffer) => {
      if (over) return;
      length += c.length;
      if (length > limit) {
        over = true;
        parts.length = 0;
        payload.removeListener("data", onData);
        done(tooLarge(limit));
        return;
      }
      parts.push(c);
    };
    payload.on("data", onData);
    payload.on("end", () => !over && done(null, { parts, length }));
    payload.on("error", (e: Error) => !over && done(e));
  };
  app.addContentTypeParser("*", collectChunks);
  app.addContentTypeParser("application/octet-stream", (req: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: unknown) => void) => {
    if (!req.routeOptions.config?.streamBody) return collectChunks(req, payload, done);
    done(null, limitedBody(payload, req.routeOptions.bodyLimit ?? JSON_BODY_LIMIT));
  });

  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.url ?? "unknown";
    if (route !== "/api/agents/:hostId/lease" && route !== "/api/events" && route !== "/api/jobs/:id/log") {
      metrics.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    }
    done();
  });

  app.setErrorHandler((err: unknown, req, reply) => errorReply(app, err, req, reply));
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: "not_found", message: `no route ${req.method} ${req.url.split("?")[0]}` }));

  // ---- public ----
  app.get("/api/health", { config: { access: "public" } }, async () => ({
    status: "ok",
    version: DISPATCHER_VERSION,
    api: 1,
    ...(opts.instanceId ? { instance: opts.instanceId } : {}),
    queued: service.jobs.queuedCount,
  }));
  app.get("/metrics", { config: { access: "public" } }, async (_req, reply) => {
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  agentRoutes(app, ctx);
  jobRoutes(app, ctx);
  logRoutes(app, ctx);
  deviceRoutes(app, ctx);
  syncRoutes(app, ctx);
  codeRoutes(app, ctx);
  peopleRoutes(app, ctx);
  slurmRoutes(app, ctx);
  eventRoutes(app, ctx, DISPATCHER_VERSION);

  app.addHook("onClose", async () => {
    for (const c of closers) c();
  });
  app.addHook("preClose", async () => {
    for (const c of closers) c();
    closers.clear();
  });

  return app;
}

/** A streamed body as it arrives; past `limit` bytes it ends with 413. */
async function* limitedBody(payload: NodeJS.ReadableStream, limit: number): AsyncGenerator<Buffer> {
  let length = 0;
  for await (const chunk of payload) {
    length += chunk.length;
    if (length > limit) throw tooLarge(limit);
    yield chunk as Buffer;
  }
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, "body_too_large", `(body): larger than this route takes (${limit} bytes)`, { field: "(body)", limit });
}

function hasBody(req: FastifyRequest): boolean {
  return req.headers["content-length"] !== undefined ? req.headers["content-length"] !== "0" : req.headers["transfer-encoding"] !== undefined;
}

function errorReply(app: FastifyInstance, err: unknown, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof HttpError) {
    if (err.status === 413) reply.header("connection", "close");
    return reply.code(err.status).send({ error: err.code, message: err.message, ...err.extra });
  }
  if (err instanceof StoreConflict) {
    const status = err.code === "not_found" ? 404 : 409;
    // A job goes back only to a person (as they may see it); an agent learns nothing of a job that is not its own now.
    const job = err.job && req.caller?.kind === "person" ? { job: viewJob(err.job, req.caller) } : {};
    return reply.code(status).send({ error: err.code, message: err.message, ...job });
  }
  if (err instanceof PeopleError) {
    const e = peopleErrorReply(err);
    return reply.code(e.status).send({ error: e.code, message: e.message });
  }
  if (err instanceof CvlabYamlError) return reply.code(400).send(yamlProblemBody(err));
  if (err instanceof RequestProblem) return reply.code(err.status).send({ error: err.code, message: err.message, field: err.field });
  if (err instanceof SyncPathError) return reply.code(400).send({ error: "bad_path", message: err.message, field: "path" });
  if (err instanceof SyncGapError) return reply.code(409).send({ error: "offset_gap", message: err.message, size: err.size });
  if (err instanceof CodeBlobError) return reply.code(400).send({ error: err.field === "sha256" ? "sha256_mismatch" : "invalid_body", message: err.message, field: err.field });
  if (err instanceof SyncHashError) return reply.code(400).send({ error: "sha256_mismatch", message: err.message, field: "sha256" });
  const e = err as { statusCode?: number; code?: string; message?: string };
  // Fastify's own body parsing errors (not JSON, empty JSON, too large) speak the API's language too.
  if (e.code?.startsWith("FST_ERR_CTP_")) {
    if (e.statusCode === 413) reply.header("connection", "close");
    return reply.code(e.statusCode ?? 400).send({ error: e.statusCode === 413 ? "body_too_large" : "invalid_body", message: `(body): ${e.message}`, field: "(body)" });
  }
  if (e.statusCode && e.statusCode < 500) {
    return reply.code(e.statusCode).send({ error: e.code ?? "bad_request", message: e.message ?? "bad request" });
  }
  app.log.error(err);
  // Never a server path or an internal detail: the log has it.
  return reply.code(500).send({ error: "internal", message: "internal error; the dispatcher's log has the details" });
}
