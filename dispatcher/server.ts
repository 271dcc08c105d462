// The dispatcher's HTTP API v1 (Fastify): authentication, validation with the zod schemas of
// core/api.ts, and routes that call the service. Errors are JSON {error, message, field?}.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { z } from "zod";
import {
  heartbeatRequestSchema,
  jobActionRequestSchema,
  jobEventRequestSchema,
  jobStates,
  priorities,
  noticeRequestSchema,
  registerRequestSchema,
  submitJobRequestSchema,
  type JobState,
  type Priority,
} from "../core/api.js";
import { CvlabYamlError } from "../core/cvlab-config.js";
import { assertPriorityAllowed, configForLease, RequestProblem, yamlProblemBody, type Role } from "./cvlab.js";
import { registerCvlabRoutes } from "./cvlab-routes.js";
import { sseFrame } from "./events.js";
import type { DispatcherMetrics } from "./metrics.js";
import type { DispatcherService } from "./service.js";
import { StoreConflict, type StoredJob } from "./store.js";
import { SyncGapError, SyncHashError, SyncPathError } from "./sync-store.js";
import { tokensEqual } from "./tokens.js";

export const DISPATCHER_VERSION = "0.1.0";

export interface ServerOptions {
  service: DispatcherService;
  metrics: DispatcherMetrics;
  adminToken: string;
  joinToken: string;
  maxLeaseWaitS?: number;
  logger?: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

type Caller = { kind: "admin" } | { kind: "agent"; hostId: string };

export function buildServer(opts: ServerOptions): FastifyInstance {
  const { service, metrics } = opts;
  const maxWaitS = opts.maxLeaseWaitS ?? 60;
  // At shutdown idle keep-alive connections close at once; requests in flight finish first.
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 1024 * 1024 * 1024, forceCloseConnections: "idle" });

  // Upload bodies stay as the chunks they arrived in: joining a large body into one fresh buffer
  // before writing it costs more than the write itself.
  const collectChunks = (_req: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: Chunks) => void) => {
    const parts: Buffer[] = [];
    let length = 0;
    payload.on("data", (c: Buffer) => {
      parts.push(c);
      length += c.length;
    });
    payload.on("end", () => done(null, { parts, length }));
    payload.on("error", (e: Error) => done(e));
  };
  app.addContentTypeParser("*", collectChunks);
  app.addContentTypeParser("application/octet-stream", collectChunks);

  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.url ?? "unknown";
    if (route !== "/api/agents/:hostId/lease" && route !== "/api/events") {
      metrics.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    }
    done();
  });

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).send({ error: err.code, message: err.message, ...err.extra });
    if (err instanceof StoreConflict) {
      const status = err.code === "not_found" ? 404 : 409;
      return reply.code(status).send({ error: err.code, message: err.message, ...(err.job ? { job: err.job } : {}) });
    }
    if (err instanceof CvlabYamlError) return reply.code(400).send(yamlProblemBody(err));
    if (err instanceof RequestProblem) return reply.code(err.status).send({ error: err.code, message: err.message, field: err.field });
    if (err instanceof SyncPathError) return reply.code(400).send({ error: "bad_path", message: err.message, field: "path" });
    if (err instanceof SyncGapError) return reply.code(409).send({ error: "offset_gap", message: err.message, size: err.size });
    if (err instanceof SyncHashError) return reply.code(400).send({ error: "sha256_mismatch", message: err.message, field: "sha256" });
    const e = err as { statusCode?: number; code?: string; message?: string };
    // Fastify's own body parsing errors (not JSON, empty JSON, too large) speak the API's language too.
    if (e.code?.startsWith("FST_ERR_CTP_")) {
      return reply.code(e.statusCode ?? 400).send({ error: "invalid_body", message: `(body): ${e.message}`, field: "(body)" });
    }
    if (e.statusCode && e.statusCode < 500) {
      return reply.code(e.statusCode).send({ error: e.code ?? "bad_request", message: e.message ?? "bad request" });
    }
    app.log.error(err);
    return reply.code(500).send({ error: "internal", message: e.message ?? "internal error" });
  });

  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: "not_found", message: `no route ${req.method} ${req.url}` }));

  // ---- auth ----

  function bearer(req: FastifyRequest): string {
    const h = req.headers.authorization;
    if (!h || !h.startsWith("Bearer ")) throw new HttpError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
    return h.slice(7).trim();
  }
  /** Who calls: the admin or a registered agent. An unknown token is 401 `unknown_agent`, which tells an agent to register again. */
  function caller(req: FastifyRequest, token = bearer(req)): Caller {
    if (tokensEqual(token, opts.adminToken)) return { kind: "admin" };
    const hostId = service.hostForAgentToken(token);
    if (hostId) return { kind: "agent", hostId };
    throw new HttpError(401, "unknown_agent", "the token is not valid here; an agent should register again with the join token");
  }
  function requireAdmin(req: FastifyRequest, token = bearer(req)): void {
    if (tokensEqual(token, opts.adminToken)) return;
    if (service.hostForAgentToken(token)) throw new HttpError(403, "forbidden", "this call needs the admin token, not an agent's");
    throw new HttpError(401, "unauthorized", "wrong token: this call needs the admin token (the state dir's admin-token file or LABRIG_ADMIN_TOKEN)");
  }
  /** The agent acting for `hostId` (or the admin); another agent → 403. */
  function requireHost(req: FastifyRequest, hostId: string): Caller {
    const c = caller(req);
    if (c.kind === "agent" && c.hostId !== hostId) {
      throw new HttpError(403, "forbidden", `an agent of host ${c.hostId} cannot act for host ${hostId}`);
    }
    return c;
  }

  /** The caller's role for priority rules. Every person's token is the admin token today; roles come with people's own tokens. */
  function roleOf(_req: FastifyRequest): Role {
    return "admin";
  }

  function parse<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
    if (isChunks(body) || typeof body === "string") throw new HttpError(415, "invalid_body", "(body): send JSON with content-type: application/json", { field: "(body)" });
    const r = schema.safeParse(body ?? {});
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const field = issue.path.join(".") || "(body)";
      throw new HttpError(400, "invalid_body", `${field}: ${issue.message}`, { field });
    }
    return r.data;
  }

  function jobOr404(id: string): StoredJob {
    const job = service.store.getJob(id);
    if (!job) throw new HttpError(404, "not_found", `job ${id} does not exist`);
    return job;
  }

  // ---- public ----

  app.get("/api/health", async () => ({
    status: "ok",
    version: DISPATCHER_VERSION,
    api: 1,
    queued: service.jobs.queuedCount,
  }));

  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // ---- agents ----

  app.post("/api/agents/register", async (req, reply) => {
    const token = bearer(req);
    if (!tokensEqual(token, opts.joinToken) && !tokensEqual(token, opts.adminToken)) {
      throw new HttpError(401, "unauthorized", "registering needs the join token");
    }
    const body = parse(registerRequestSchema, req.body);
    return reply.code(200).send(service.register(body));
  });

  app.post<{ Params: { hostId: string } }>("/api/agents/:hostId/heartbeat", async (req) => {
    const c = requireHost(req, req.params.hostId);
    if (c.kind === "admin") throw new HttpError(403, "forbidden", "heartbeats come from the host's agent token");
    const body = parse(heartbeatRequestSchema, req.body);
    return service.heartbeat(req.params.hostId, body);
  });

  app.get<{ Params: { hostId: string }; Querystring: { wait?: string } }>("/api/agents/:hostId/lease", async (req, reply) => {
    const c = requireHost(req, req.params.hostId);
    if (c.kind === "admin") throw new HttpError(403, "forbidden", "leases are taken with the host's agent token");
    const wait = req.query.wait === undefined ? 0 : Number(req.query.wait);
    if (!Number.isFinite(wait) || wait < 0) throw new HttpError(400, "invalid_query", "wait: a number of seconds >= 0", { field: "wait" });
    const aborted = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) aborted.abort();
    });
    const grant = await service.lease(req.params.hostId, Math.min(wait, maxWaitS) * 1000, aborted.signal);
    if (!grant) return reply.code(204).send();
    const config = service.store.jobConfig(grant.job.id);
    return { job: grant.job, attempt: grant.attempt, gpuIndices: grant.gpuIndices, ...(config !== undefined ? { config: configForLease(config, grant.gpuIndices.length) } : {}) };
  });

  app.post<{ Params: { id: string } }>("/api/jobs/:id/events", async (req) => {
    const c = caller(req);
    const body = parse(jobEventRequestSchema, req.body);
    const job = jobOr404(req.params.id);
    const hostId = c.kind === "agent" ? c.hostId : job.hostId;
    if (c.kind === "agent" && job.hostId !== null && job.hostId !== c.hostId && job.attempt === body.attempt) {
      throw new HttpError(403, "forbidden", `job ${job.id} runs on ${job.hostId}, not on ${c.hostId}`);
    }
    if (!hostId) throw new HttpError(409, "stale_attempt", `job ${job.id} is ${job.state} and on no host`);
    return service.agentReport(job.id, hostId, body);
  });

  // ---- jobs ----

  app.post("/api/jobs", async (req, reply) => {
    requireAdmin(req);
    const body = parse(submitJobRequestSchema, req.body);
    assertPriorityAllowed(body.priority, roleOf(req));
    return reply.code(201).send(service.submit(body));
  });

  app.get<{ Querystring: { state?: string; project?: string; host?: string; group?: string; limit?: string } }>("/api/jobs", async (req) => {
    requireAdmin(req);
    const states = req.query.state ? req.query.state.split(",").filter(Boolean) : undefined;
    for (const s of states ?? []) {
      if (!(jobStates as readonly string[]).includes(s)) {
        throw new HttpError(400, "invalid_query", `state: '${s}' is not one of ${jobStates.join(", ")}`, { field: "state" });
      }
    }
    const limit = req.query.limit ? Number(req.query.limit) : undefined;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new HttpError(400, "invalid_query", "limit: a whole number >= 1", { field: "limit" });
    return { jobs: service.store.listJobs({ states: states as JobState[] | undefined, project: req.query.project, hostId: req.query.host, group: req.query.group, limit }) };
  });

  app.get<{ Params: { id: string } }>("/api/jobs/:id", async (req) => {
    requireAdmin(req);
    const job = jobOr404(req.params.id);
    return { ...job, hasConfig: service.store.jobConfig(job.id) !== undefined, history: service.store.transitions(job.id) };
  });

  /** Who acts on a job, for its history: the client the request says it came through. */
  function actorOf(body: unknown): string {
    return parse(jobActionRequestSchema, body ?? {}).via ?? "an API client";
  }

  app.post<{ Params: { id: string } }>("/api/jobs/:id/cancel", async (req) => {
    requireAdmin(req);
    return service.cancel(req.params.id, actorOf(req.body));
  });

  app.post<{ Params: { id: string } }>("/api/jobs/:id/retry", async (req) => {
    requireAdmin(req);
    return service.retry(req.params.id, actorOf(req.body));
  });

  app.post<{ Params: { id: string }; Body: { priority?: unknown } }>("/api/jobs/:id/priority", async (req) => {
    requireAdmin(req);
    const p = (req.body ?? {}).priority;
    if (typeof p !== "string" || !(priorities as readonly string[]).includes(p)) {
      throw new HttpError(400, "invalid_body", `priority: one of ${priorities.join(", ")}`, { field: "priority" });
    }
    assertPriorityAllowed(p as Priority, roleOf(req));
    return service.setPriority(req.params.id, p as Priority);
  });

  registerCvlabRoutes(app, { service, requireAdmin, roleOf, parse, jobOr404 });

  app.post("/api/notices", async (req, reply) => {
    requireAdmin(req);
    const body = parse(noticeRequestSchema, req.body);
    const notice = { type: "notice" as const, level: body.level, message: body.message, at: new Date().toISOString() };
    service.events.emit(notice);
    return reply.code(202).send(notice);
  });

  // ---- devices ----

  app.get("/api/devices", async (req) => {
    requireAdmin(req);
    return { devices: service.listDevices() };
  });

  for (const action of ["drain", "undrain"] as const) {
    app.post<{ Params: { hostId: string } }>(`/api/devices/:hostId/${action}`, async (req) => {
      requireAdmin(req);
      const d = service.setDraining(req.params.hostId, action === "drain");
      if (!d) throw new HttpError(404, "not_found", `no device ${req.params.hostId}`);
      return d;
    });
  }

  // ---- sync ----

  /** The job and the attempt an upload or read is for; uploads must name the current attempt. */
  function syncTarget(req: FastifyRequest<{ Params: { jobId: string }; Querystring: { attempt?: string } }>, write: boolean) {
    const job = jobOr404(req.params.jobId);
    const c = caller(req);
    if (c.kind === "agent") {
      if (job.hostId !== c.hostId) throw new HttpError(write ? 409 : 403, write ? "stale_attempt" : "forbidden", `job ${job.id} is not on host ${c.hostId} now`);
    }
    let attempt = job.attempt;
    if (req.query.attempt !== undefined) {
      attempt = Number(req.query.attempt);
      if (!Number.isInteger(attempt) || attempt < 1) throw new HttpError(400, "invalid_query", "attempt: a whole number >= 1", { field: "attempt" });
      if (write && attempt !== job.attempt) {
        throw new HttpError(409, "stale_attempt", `attempt ${attempt} of job ${job.id} is not current (current: ${job.attempt}); stop this attempt`);
      }
    }
    return { job, attempt };
  }

  type SyncReq = FastifyRequest<{ Params: { jobId: string; "*": string }; Querystring: { attempt?: string; offset?: string; sha256?: string } }>;

  app.post("/api/sync/:jobId/files/*", async (req: SyncReq) => {
    const { job, attempt } = syncTarget(req, true);
    const offset = Number(req.query.offset);
    if (req.query.offset === undefined || !Number.isInteger(offset) || offset < 0) {
      throw new HttpError(400, "invalid_query", "offset: a whole number of bytes >= 0", { field: "offset" });
    }
    const body = bodyChunks(req.body);
    const path = req.params["*"];
    const r = service.sync.append(job.project, job.id, attempt, path, offset, body);
    if (r.written > 0) service.events.emit({ type: "log", jobId: job.id, attempt, path, offset: r.size - r.written, size: r.size });
    return { size: r.size };
  });

  app.put("/api/sync/:jobId/files/*", async (req: SyncReq) => {
    const { job, attempt } = syncTarget(req, true);
    if (!req.query.sha256 || !/^[0-9a-fA-F]{64}$/.test(req.query.sha256)) {
      throw new HttpError(400, "invalid_query", "sha256: the body's SHA-256 as 64 hex digits", { field: "sha256" });
    }
    const r = service.sync.put(job.project, job.id, attempt, req.params["*"], bodyChunks(req.body), req.query.sha256);
    service.events.emit({ type: "log", jobId: job.id, attempt, path: req.params["*"], offset: 0, size: r.size });
    return r;
  });

  app.get("/api/sync/:jobId/status", async (req: FastifyRequest<{ Params: { jobId: string }; Querystring: { attempt?: string } }>) => {
    const { job, attempt } = syncTarget(req, false);
    return { attempt, files: service.sync.list(job.project, job.id, attempt) };
  });

  app.get("/api/sync/:jobId/files/*", async (req: SyncReq, reply: FastifyReply) => {
    const { job, attempt } = syncTarget(req, false);
    const file = service.sync.openRead(job.project, job.id, attempt, req.params["*"]);
    if (!file) throw new HttpError(404, "not_found", `no file ${req.params["*"]} for attempt ${attempt} of job ${job.id}`);
    return reply.header("content-type", "application/octet-stream").header("content-length", file.size).send(file.stream);
  });

  // ---- events ----

  // Browsers' EventSource cannot send headers, so the admin token may come as ?token= here.
  app.get<{ Querystring: { token?: string } }>("/api/events", async (req, reply) => {
    requireAdmin(req, req.query.token ?? bearer(req));
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(`: labrig dispatcher ${DISPATCHER_VERSION}; events: job, device, log, notice\n\n`);
    const unsubscribe = service.events.subscribe((ev) => res.write(sseFrame(ev)));
    const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
    const stop = () => {
      clearInterval(ping);
      unsubscribe();
    };
    res.on("close", stop);
    closers.add(() => {
      stop();
      res.end();
    });
  });

  const closers = new Set<() => void>();
  app.addHook("onClose", async () => {
    for (const c of closers) c();
  });
  app.addHook("preClose", async () => {
    for (const c of closers) c();
    closers.clear();
  });

  return app;
}

interface Chunks {
  parts: Buffer[];
  length: number;
}

const isChunks = (body: unknown): body is Chunks => !!body && typeof body === "object" && Array.isArray((body as Chunks).parts);

function bodyChunks(body: unknown): Buffer[] {
  if (isChunks(body)) return body.parts;
  if (Buffer.isBuffer(body)) return [body];
  if (body === undefined || body === null) return [];
  if (typeof body === "string") return [Buffer.from(body)];
  return [Buffer.from(JSON.stringify(body))];
}

