// Jobs' routes for people: submit (the caller becomes the owner), list (paged), show, cancel,
// retry, re-prioritise (members: their own jobs only), CVLab-Kit's queue/add, and notices.
import type { FastifyInstance } from "fastify";
import { jobActionRequestSchema, jobListQuerySchema, noticeRequestSchema, priorities, submitJobRequestSchema, type Priority } from "../../core/api.js";
import { assertPriorityAllowed, type Role } from "../cvlab.js";
import { registerCvlabRoutes } from "../cvlab-routes.js";
import { isAdmin, type Caller } from "../http/auth.js";
import { FIRST_ADMIN } from "../people.js";
import { jobOr404, parseBody, parseQuery, requireOwnerOrAdmin, viewJob, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";
import { settleJobCode } from "./code.js";

export const ownerOf = (c: Caller): string | null => (c.kind === "person" ? c.name : null);
/** The caller's role for priority rules (`urgent` is an admin's). */
export const roleOf = (c: Caller): Role => (c.kind === "person" && c.role === "admin" ? "admin" : "member");

export function jobRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;
  /** A queued job with why it waits, as the last scheduling decision said. */
  const withWaiting = <J extends { id: string; state: string }>(j: J): J & { waiting?: string } => {
    const why = j.state === "queued" ? service.waitingReason(j.id) : null;
    return why ? { ...j, waiting: why } : j;
  };

  app.post("/api/jobs", { config: { access: "person" } }, async (req, reply) => {
    const body = parseBody(submitJobRequestSchema, req.body);
    assertPriorityAllowed(body.priority, roleOf(req.caller));
    service.admit([body], ownerOf(req.caller), isAdmin(req.caller));
    return reply.code(201).send(service.submit(settleJobCode(ctx.code, body), ownerOf(req.caller)));
  });

  app.get(
    "/api/jobs",
    { config: { access: "person" } },
    async (req) => {
      const q = parseQuery(jobListQuerySchema, req.query);
      const filter = { states: q.state, project: q.project, hostId: q.host, owner: q.owner, group: q.group };
      const limit = q.limit;
      const beforeSeq = q.cursor;
      const page = service.store.listJobsPage({ ...filter, limit, beforeSeq });
      return { jobs: page.jobs.map((j) => withWaiting(viewJob(j, req.caller))), total: page.total, nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: { id: string } }>("/api/jobs/:id", { config: { access: "person" } }, async (req) => {
    const job = jobOr404(service, req.params.id);
    return { ...withWaiting(viewJob(job, req.caller)), hasConfig: service.store.jobConfig(job.id) !== undefined, history: service.store.transitions(job.id) };
  });

  app.get("/api/usage", { config: { access: "person" } }, async () => ({ ...service.usageReport(), code: ctx.code.usage() }));

  app.post<{ Params: { id: string } }>("/api/jobs/:id/cancel", { config: { access: "person" } }, async (req) => {
    requireOwnerOrAdmin(req.caller, jobOr404(service, req.params.id), "cancel");
    return service.cancel(req.params.id, actorOf(req.caller, req.body));
  });

  app.post<{ Params: { id: string } }>("/api/jobs/:id/retry", { config: { access: "person" } }, async (req) => {
    requireOwnerOrAdmin(req.caller, jobOr404(service, req.params.id), "retry");
    return service.retry(req.params.id, actorOf(req.caller, req.body));
  });

  app.post<{ Params: { id: string }; Body: { priority?: unknown } }>("/api/jobs/:id/priority", { config: { access: "person" } }, async (req) => {
    requireOwnerOrAdmin(req.caller, jobOr404(service, req.params.id), "re-prioritise");
    const p = (req.body ?? {}).priority;
    if (typeof p !== "string" || !(priorities as readonly string[]).includes(p)) {
      throw new HttpError(400, "invalid_body", `priority: one of ${priorities.join(", ")}`, { field: "priority" });
    }
    assertPriorityAllowed(p as Priority, roleOf(req.caller));
    return service.setPriority(req.params.id, p as Priority);
  });

  registerCvlabRoutes(app, ctx);

  app.post("/api/notices", { config: { access: "admin" } }, async (req, reply) => {
    const body = parseBody(noticeRequestSchema, req.body);
    const notice = { type: "notice" as const, level: body.level, message: body.message, at: new Date().toISOString() };
    service.events.emit(notice);
    return reply.code(202).send(notice);
  });
}

/**
 * Who acts on a job, for its history: a named person (and the client they came through), or for
 * the state dir's admin token the client alone ("the CLI", "the dashboard").
 */
export function actorOf(caller: Caller, body: unknown): string {
  const via = parseBody(jobActionRequestSchema, body ?? {}).via;
  if (caller.kind === "person" && caller.name !== FIRST_ADMIN) return via ? `${caller.name} (${via})` : caller.name;
  return via ?? "an API client";
}
