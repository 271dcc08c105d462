// Routes for CVLab-Kit's clients (its queue calls, answered in its shapes), sweep groups, and
// imports of another queue's history. Registered with the job routes; auth is each route's
// `access` (the server's onRequest hook), members act on their own jobs only.
import type { FastifyInstance } from "fastify";
import { type CvlabQueueStatus, importRequestSchema, jobStates, queueAddRequestSchema, queueListQuerySchema, submitGroupRequestSchema, type Job, type JobState } from "../core/api.js";
import { assertPriorityAllowed, cvlabPriority, RequestProblem, toCvlabJob } from "./cvlab.js";
import { isAdmin } from "./http/auth.js";
import { jobOr404, parseBody, parseQuery, requireOwnerOrAdmin, viewJob, type RouteContext } from "./http/common.js";
import { settleJobCode } from "./routes/code.js";
import { actorOf, ownerOf, roleOf } from "./routes/jobs.js";
import type { StoredJob } from "./store.js";

/** CVLab-Kit's statuses back to labrig's states, for `GET /api/queue/list?status=`. */
const statesForCvlabStatus: Record<CvlabQueueStatus, JobState[]> = {
  pending: ["queued"],
  queued: ["queued"],
  assigned: ["assigned"],
  running: ["running"],
  completed: ["succeeded"],
  failed: ["failed", "timed_out"],
  cancelled: ["cancelled"],
};

export function registerCvlabRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;
  const h = { parse: parseBody, jobOr404: (id: string) => jobOr404(service, id) };
  const person = { config: { access: "person" as const } };
  const withConfig = (job: StoredJob): Job & { hasConfig: boolean } => ({ ...job, hasConfig: service.store.jobConfig(job.id) !== undefined });

  // ---- CVLab-Kit's queue calls (web_helper/backend/api/queue.py) ----

  app.post("/api/queue/add", person, async (req) => {
    const raw = (req.body ?? {}) as Record<string, unknown>;
    if (raw.config === undefined && raw.config_path === undefined) {
      throw new RequestProblem("config", "required: the experiment YAML as text (or config_path: a config file the GPU hosts can read)");
    }
    const body = h.parse(queueAddRequestSchema, req.body);
    assertPriorityAllowed(cvlabPriority(body.priority), roleOf(req.caller));
    const job = withConfig(viewJob(service.queueAdd(body, ownerOf(req.caller), isAdmin(req.caller)), req.caller));
    const cvlab = toCvlabJob(job, "device" in body ? body.device : undefined);
    // CVLab-Kit answers 200 with {job}; its UI also reads experiment_uid at the top (ExecuteView).
    return { ...job, job_id: job.id, experiment_uid: job.id, status: cvlab.status, job: cvlab };
  });

  app.get("/api/queue/list", person, async (req) => {
    const { status, project, limit, offset } = parseQuery(queueListQuerySchema, req.query);
    const states = status ? statesForCvlabStatus[status] : undefined;
    const all = service.store.listJobs({ states, project, limit: 100_000 });
    return { jobs: all.slice(offset, offset + limit).map((j) => toCvlabJob(withConfig(viewJob(j, req.caller)))), total: all.length };
  });

  const sendConfig = (id: string, reply: import("fastify").FastifyReply) => {
    h.jobOr404(id);
    const yaml = service.store.jobConfig(id);
    if (yaml === undefined) throw new RequestProblem("id", `job ${id} has no CVLab-Kit config`, 404, "not_found");
    return reply.header("content-type", "text/yaml; charset=utf-8").send(yaml);
  };
  app.get<{ Params: { uid: string } }>("/api/queue/config/:uid", person, async (req, reply) => {
    return sendConfig(req.params.uid, reply);
  });
  app.get<{ Params: { id: string } }>("/api/jobs/:id/config", person, async (req, reply) => {
    return sendConfig(req.params.id, reply);
  });

  // ---- groups (sweeps) ----

  const groupOr404 = (id: string) => {
    const group = service.groupView(id);
    if (!group) throw new RequestProblem("id", `group ${id} does not exist`, 404, "not_found");
    return group;
  };

  app.post("/api/groups", person, async (req, reply) => {
    const body = h.parse(submitGroupRequestSchema, req.body);
    for (const j of body.jobs) assertPriorityAllowed(j.priority, roleOf(req.caller));
    const jobs = body.jobs.map((j, i) => settleJobCode(ctx.code, j, `jobs.${i}.code`));
    service.admit(jobs, ownerOf(req.caller), isAdmin(req.caller));
    const r = service.submitGroup(body.name ?? "sweep", jobs, ownerOf(req.caller));
    return reply.code(201).send(r);
  });

  app.get<{ Params: { id: string } }>("/api/groups/:id", person, async (req) => {
    return { group: groupOr404(req.params.id), jobs: service.store.groupJobs(req.params.id).map((j) => viewJob(j, req.caller)) };
  });

  for (const action of ["cancel", "retry"] as const) {
    app.post<{ Params: { id: string } }>(`/api/groups/:id/${action}`, person, async (req) => {
      groupOr404(req.params.id);
      for (const j of service.store.groupJobs(req.params.id)) requireOwnerOrAdmin(req.caller, j, `${action} group ${req.params.id} with`);
      const by = actorOf(req.caller, req.body);
      const changed = action === "cancel" ? service.cancelGroup(req.params.id, by) : service.retryGroup(req.params.id, by);
      return { group: groupOr404(req.params.id), jobs: changed };
    });
  }

  // ---- imports ----

  app.post("/api/import/jobs", { config: { access: "admin" } }, async (req) => {
    const body = h.parse(importRequestSchema, req.body);
    body.jobs.forEach((j, i) => {
      if (j.state === "assigned" || j.state === "running") {
        throw new RequestProblem(`jobs.${i}.state`, `${j.externalId}: only queued or ended jobs can be imported (${jobStates.filter((s) => s !== "assigned" && s !== "running").join(", ")})`);
      }
    });
    return service.importJobs(body.source, body.jobs, body.dryRun);
  });
}
