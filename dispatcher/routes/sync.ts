// Sync routes: an agent appends and uploads its job's files (the job's current host only); people
// read them. Uploads have their own, larger body limit (LABRIG_SYNC_BODY_LIMIT_MB); an
// application/octet-stream body is written to disk as it arrives (see server.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { forbidden, isAdmin } from "../http/auth.js";
import { syncAppendQuerySchema, syncAttemptQuerySchema, syncPutQuerySchema } from "../../core/api.js";
import { bodyChunks, jobOr404, parseQuery, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";
import type { Body } from "../sync-store.js";

type SyncReq = FastifyRequest<{ Params: { jobId: string; "*": string }; Querystring: { attempt?: string; offset?: string; sha256?: string } }>;

export function syncRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;

  /** The job and the attempt an upload or read is for; uploads must name the current attempt. */
  function syncTarget(req: FastifyRequest<{ Params: { jobId: string }; Querystring: { attempt?: string } }>, write: boolean) {
    const c = req.caller;
    if (write && c.kind === "person" && !isAdmin(c)) throw forbidden("only the job's agent uploads its files");
    const job = jobOr404(service, req.params.jobId);
    if (c.kind === "agent" && job.hostId !== c.hostId) {
      throw new HttpError(write ? 409 : 403, write ? "stale_attempt" : "forbidden", `job ${job.id} is not on host ${c.hostId} now`);
    }
    const asked = parseQuery(syncAttemptQuerySchema, req.query).attempt;
    const attempt = asked ?? job.attempt;
    if (asked !== undefined) {
      if (write && attempt !== job.attempt) {
        throw new HttpError(409, "stale_attempt", `attempt ${attempt} of job ${job.id} is not current (current: ${job.attempt}); stop this attempt`);
      }
    }
    return { job, attempt };
  }

  const upload = { config: { access: "agent-or-person" as const, streamBody: true }, bodyLimit: ctx.syncBodyLimit };

  app.post("/api/sync/:jobId/files/*", upload, async (req: SyncReq) => {
    const { job, attempt } = syncTarget(req, true);
    const { offset } = parseQuery(syncAppendQuerySchema, req.query);
    const path = req.params["*"];
    const r = await service.sync.append(job.project, job.id, attempt, path, offset, uploadBody(req.body));
    if (r.written > 0) service.events.emit({ type: "log", jobId: job.id, attempt, path, offset: r.size - r.written, size: r.size });
    return { size: r.size };
  });

  app.put("/api/sync/:jobId/files/*", upload, async (req: SyncReq) => {
    const { job, attempt } = syncTarget(req, true);
    const { sha256 } = parseQuery(syncPutQuerySchema, req.query);
    const r = await service.sync.put(job.project, job.id, attempt, req.params["*"], uploadBody(req.body), sha256);
    service.events.emit({ type: "log", jobId: job.id, attempt, path: req.params["*"], offset: 0, size: r.size });
    return r;
  });

  app.get(
    "/api/sync/:jobId/status",
    { config: { access: "agent-or-person" } },
    async (req: FastifyRequest<{ Params: { jobId: string }; Querystring: { attempt?: string } }>) => {
      const { job, attempt } = syncTarget(req, false);
      return { attempt, files: service.sync.list(job.project, job.id, attempt) };
    },
  );

  app.get("/api/sync/:jobId/files/*", { config: { access: "agent-or-person" } }, async (req: SyncReq, reply: FastifyReply) => {
    const { job, attempt } = syncTarget(req, false);
    const file = service.sync.openRead(job.project, job.id, attempt, req.params["*"]);
    if (!file) throw new HttpError(404, "not_found", `no file ${req.params["*"]} for attempt ${attempt} of job ${job.id}`);
    return reply.header("content-type", "application/octet-stream").header("content-length", file.size).send(file.stream);
  });
}

/** The upload's bytes: the streamed body, or the chunks of a body sent with another content type. */
function uploadBody(body: unknown): Body {
  if (body !== null && typeof body === "object" && Symbol.asyncIterator in body) return body as AsyncIterable<Buffer>;
  return bodyChunks(body);
}
