// Routes for CVLab-Kit's clients (its queue calls, answered in its shapes), sweep groups, and
// imports of another queue's history. Registered by server.ts with its auth and parsing helpers.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { z } from "zod";
import { importRequestSchema, jobActionRequestSchema, jobStates, queueAddRequestSchema, submitGroupRequestSchema, type Job, type JobState } from "../core/api.js";
import { assertPriorityAllowed, cvlabPriority, RequestProblem, toCvlabJob, type Role } from "./cvlab.js";
import type { DispatcherService } from "./service.js";
import type { StoredJob } from "./store.js";

export interface RouteHelpers {
  service: DispatcherService;
  requireAdmin(req: FastifyRequest): void;
  roleOf(req: FastifyRequest): Role;
  parse<S extends z.ZodType>(schema: S, body: unknown): z.output<S>;
  jobOr404(id: string): StoredJob;
}

/** CVLab-Kit's statuses back to labrig's states, for `GET /api/queue/list?status=`. */
const statesForCvlabStatus: Record<string, JobState[]> = {
  pending: ["queued"],
  queued: ["queued"],
  assigned: ["assigned"],
  running: ["running"],
  completed: ["succeeded"],
  failed: ["failed", "timed_out"],
  cancelled: ["cancelled"],
};

export function registerCvlabRoutes(app: FastifyInstance, h: RouteHelpers): void {
  const { service } = h;
  const withConfig = (job: StoredJob): Job & { hasConfig: boolean } => ({ ...job, hasConfig: service.store.jobConfig(job.id) !== undefined });

  // ---- CVLab-Kit's queue calls (web_helper/backend/api/queue.py) ----

  app.post("/api/queue/add", async (req) => {
    h.requireAdmin(req);
    const raw = (req.body ?? {}) as Record<string, unknown>;
    if (raw.config === undefined && raw.config_path === undefined) {
      throw new RequestProblem("config", "required: the experiment YAML as text (or config_path: a config file the GPU hosts can read)");
    }
    const body = h.parse(queueAddRequestSchema, req.body);
    assertPriorityAllowed(cvlabPriority(body.priority), h.roleOf(req));
    const job = withConfig(service.queueAdd(body));
    const cvlab = toCvlabJob(job, "device" in body ? body.device : undefined);
    // CVLab-Kit answers 200 with {job}; its UI also reads experiment_uid at the top (ExecuteView).
    return { ...job, job_id: job.id, experiment_uid: job.id, status: cvlab.status, job: cvlab };
  });

  app.get<{ Querystring: { status?: string; project?: string; limit?: string; offset?: string } }>("/api/queue/list", async (req) => {
    h.requireAdmin(req);
    const states = req.query.status ? statesForCvlabStatus[req.query.status] : undefined;
    if (req.query.status && !states) throw new RequestProblem("status", `one of ${Object.keys(statesForCvlabStatus).join(", ")}`, 400, "invalid_query");
    const limit = req.query.limit ? Number(req.query.limit) : 50;
    const offset = req.query.offset ? Number(req.query.offset) : 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RequestProblem("limit", "a whole number from 1 to 1000", 400, "invalid_query");
    if (!Number.isInteger(offset) || offset < 0) throw new RequestProblem("offset", "a whole number >= 0", 400, "invalid_query");
    const all = service.store.listJobs({ states, project: req.query.project, limit: 100_000 });
    return { jobs: all.slice(offset, offset + limit).map((j) => toCvlabJob(withConfig(j))), total: all.length };
  });

  const sendConfig = (id: string, reply: import("fastify").FastifyReply) => {
    h.jobOr404(id);
    const yaml = service.store.jobConfig(id);
    if (yaml === undefined) throw new RequestProblem("id", `job ${id} has no CVLab-Kit config`, 404, "not_found");
    return reply.header("content-type", "text/yaml; charset=utf-8").send(yaml);
  };
  app.get<{ Params: { uid: string } }>("/api/queue/config/:uid", async (req, reply) => {
    h.requireAdmin(req);
    return sendConfig(req.params.uid, reply);
  });
  app.get<{ Params: { id: string } }>("/api/jobs/:id/config", async (req, reply) => {
    h.requireAdmin(req);
    return sendConfig(req.params.id, reply);
  });

  // ---- groups (sweeps) ----

  const groupOr404 = (id: string) => {
    const group = service.groupView(id);
    if (!group) throw new RequestProblem("id", `group ${id} does not exist`, 404, "not_found");
    return group;
  };

  app.post("/api/groups", async (req, reply) => {
    h.requireAdmin(req);
    const body = h.parse(submitGroupRequestSchema, req.body);
    for (const j of body.jobs) assertPriorityAllowed(j.priority, h.roleOf(req));
    const r = service.submitGroup(body.name ?? "sweep", body.jobs);
    return reply.code(201).send(r);
  });

  app.get<{ Params: { id: string } }>("/api/groups/:id", async (req) => {
    h.requireAdmin(req);
    return { group: groupOr404(req.params.id), jobs: service.store.groupJobs(req.params.id) };
  });

  for (const action of ["cancel", "retry"] as const) {
    app.post<{ Params: { id: string } }>(`/api/groups/:id/${action}`, async (req) => {
      h.requireAdmin(req);
      groupOr404(req.params.id);
      const by = h.parse(jobActionRequestSchema, req.body ?? {}).via ?? "an API client";
      const changed = action === "cancel" ? service.cancelGroup(req.params.id, by) : service.retryGroup(req.params.id, by);
      return { group: groupOr404(req.params.id), jobs: changed };
    });
  }

  // ---- imports ----

  app.post("/api/import/jobs", async (req) => {
    h.requireAdmin(req);
    const body = h.parse(importRequestSchema, req.body);
    body.jobs.forEach((j, i) => {
      if (j.state === "assigned" || j.state === "running") {
        throw new RequestProblem(`jobs.${i}.state`, `${j.externalId}: only queued or ended jobs can be imported (${jobStates.filter((s) => s !== "assigned" && s !== "running").join(", ")})`);
      }
    });
    return service.importJobs(body.source, body.jobs, body.dryRun);
  });
}
