// Agents' routes: register (a join token only for a host id that does not exist yet; an existing
// host with its own agent token), heartbeats, long-poll leases, job state events; and an admin's
// reset of a host that lost its token.
import { configForLease } from "../cvlab.js";
import type { FastifyInstance } from "fastify";
import { heartbeatRequestSchema, hostIdSchema, jobEventRequestSchema, leaseQuerySchema, registerRequestSchema } from "../../core/api.js";
import { forbidden } from "../http/auth.js";
import { jobOr404, parseBody, parseQuery, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";

export function agentRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service, people } = ctx;

  app.post("/api/agents/register", { config: { access: "register" } }, async (req, reply) => {
    const c = req.caller;
    const body = parseBody(registerRequestSchema, req.body);
    if (c.kind === "agent" && c.hostId !== body.hostId) throw forbidden(`an agent of host ${c.hostId} cannot register host ${body.hostId}`);
    if (c.kind !== "agent" && service.hostIsClaimed(body.hostId)) {
      throw new HttpError(
        409,
        "host_exists",
        `host ${body.hostId} is already registered; its agent re-registers with its own agent token. If that agent lost its token, an admin runs: labrig hosts reset ${body.hostId}`,
      );
    }
    if (c.kind === "join" && c.joinTokenId !== null && !people.useJoinToken(c.joinTokenId)) {
      throw new HttpError(401, "unauthorized", "the join token was used up or revoked meanwhile; ask an admin for a new one (labrig join-tokens create)");
    }
    return reply.code(200).send(service.register(body));
  });

  app.post<{ Params: { hostId: string } }>("/api/agents/:hostId/heartbeat", { config: { access: "agent" } }, async (req) => {
    const body = parseBody(heartbeatRequestSchema, req.body);
    return service.heartbeat(req.params.hostId, body);
  });

  app.get<{ Params: { hostId: string } }>("/api/agents/:hostId/lease", { config: { access: "agent" } }, async (req, reply) => {
    const { wait } = parseQuery(leaseQuerySchema, req.query);
    const aborted = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) aborted.abort();
    });
    const grant = await service.lease(req.params.hostId, Math.min(wait, ctx.maxLeaseWaitS) * 1000, aborted.signal);
    if (!grant) return reply.code(204).send();
    const config = service.store.jobConfig(grant.job.id);
    return { job: grant.job, attempt: grant.attempt, gpuIndices: grant.gpuIndices, ...(config !== undefined ? { config: configForLease(config, grant.gpuIndices.length) } : {}) };
  });

  app.post<{ Params: { id: string } }>("/api/jobs/:id/events", { config: { access: "agent-or-person" } }, async (req) => {
    const c = req.caller;
    if (c.kind === "person" && c.role !== "admin") throw forbidden("job state events come from the job's agent");
    const body = parseBody(jobEventRequestSchema, req.body);
    const job = jobOr404(service, req.params.id);
    if (c.kind === "agent" && job.hostId !== c.hostId) {
      // Not this agent's job (any more): it learns only that, never the job.
      throw new HttpError(409, "stale_attempt", `job ${job.id} attempt ${body.attempt} is not on host ${c.hostId} now; stop it`);
    }
    const hostId = c.kind === "agent" ? c.hostId : job.hostId;
    if (!hostId) throw new HttpError(409, "stale_attempt", `job ${job.id} is ${job.state} and on no host`);
    return service.agentReport(job.id, hostId, body);
  });

  app.post<{ Params: { hostId: string } }>("/api/hosts/:hostId/reset", { config: { access: "admin" } }, async (req) => {
    const hostId = hostIdSchema.safeParse(req.params.hostId);
    if (!hostId.success) throw new HttpError(400, "invalid_path", `hostId: ${hostId.error.issues[0]!.message}`, { field: "hostId" });
    if (!service.resetHost(hostId.data)) throw new HttpError(404, "not_found", `no host ${hostId.data} (see labrig devices)`);
    return { hostId: hostId.data, reset: true, message: `host ${hostId.data}'s agent token no longer works; its agent registers again with a join token` };
  });
}
