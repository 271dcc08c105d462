// The route a Slurm batch script calls on its compute node, with its attempt's claim token: claim
// the allocation for that node's labrig agent (POST), then ask whether the attempt is over (GET).
// A claim token opens these two routes for its own attempt and nothing else. Every person reads
// Slurm's own view of the cluster (GET /api/slurm/status); a dispatcher not in slurm mode has none.
import type { FastifyInstance } from "fastify";
import { slurmClaimRequestSchema } from "../../core/api.js";
import { parseBody, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";
import type { Caller } from "../http/auth.js";

type Claim = Extract<Caller, { kind: "slurm-claim" }>;

export function slurmRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;

  app.get("/api/slurm/status", { config: { access: "person" } }, async () => {
    if (!ctx.slurmView) throw new HttpError(404, "not_slurm", "this dispatcher schedules jobs itself (LABRIG_SCHEDULER=labrig): there is no Slurm view");
    return ctx.slurmView();
  });

  app.post("/api/slurm/claim", { config: { access: "slurm-claim" } }, async (req) => {
    const claim = req.caller as Claim;
    const body = parseBody(slurmClaimRequestSchema, req.body);
    // Another job's token (or another attempt's) is no token for this one: the same answer as a wrong token.
    if (body.jobId !== claim.jobId || body.attempt !== claim.attempt) {
      throw new HttpError(401, "unauthorized", `this claim token is not for job ${body.jobId} attempt ${body.attempt}`);
    }
    const job = service.claimForSlurm(claim.jobId, claim.attempt, body.hostId, body.gpuIndices);
    return { jobId: job.id, attempt: job.attempt, hostId: job.hostId, gpuIndices: job.gpuIndices, state: job.state };
  });

  app.get("/api/slurm/claim", { config: { access: "slurm-claim" } }, async (req) => {
    const claim = req.caller as Claim;
    return service.slurmClaimStatus(claim.jobId, claim.attempt);
  });
}
