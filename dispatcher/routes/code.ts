// Code snapshot routes: people offer a manifest and upload the blobs it lacks; a job's agent (while
// the job is on its host) and people read snapshots back. Submitting a job with `code` checks that
// the snapshot is here (settleJobCode).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CodeManifestError, type CodeSummary } from "../../core/code.js";
import { checkRelativePath, RelativePathError } from "../../core/relative-path.js";
import type { CodeStore } from "../code-store.js";
import { bodyChunks, isChunks, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";

type SnapshotReq = FastifyRequest<{ Params: { id: string; sha256?: string } }>;

export function codeRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { code } = ctx;

  app.post("/api/code/snapshots", { config: { access: "person" }, bodyLimit: 64 * 1024 * 1024 }, async (req) => {
    if (isChunks(req.body) || typeof req.body === "string") throw new HttpError(415, "invalid_body", "(body): send the manifest as JSON", { field: "(body)" });
    try {
      return code.offer(req.body, req.caller.kind === "person" ? req.caller.name : null);
    } catch (err) {
      if (err instanceof CodeManifestError) throw new HttpError(400, "invalid_manifest", err.message, { field: err.path ? `manifest: ${err.path}` : "manifest" });
      throw err;
    }
  });

  app.put<{ Params: { sha256: string } }>("/api/code/blobs/:sha256", { config: { access: "person" }, bodyLimit: code.maxBytes }, async (req) => {
    return code.putBlob(req.params.sha256, bodyChunks(req.body));
  });

  /** The snapshot a caller may read: any for people; for an agent, one a job on its host uses now. */
  function readable(req: SnapshotReq) {
    const info = code.snapshot(req.params.id);
    const c = req.caller;
    if (c.kind === "agent" && (!info || !code.usedOnHost(req.params.id, c.hostId))) {
      throw new HttpError(403, "forbidden", `no job on host ${c.hostId} uses snapshot ${req.params.id} now`);
    }
    if (!info) throw new HttpError(404, "not_found", `snapshot ${req.params.id} is not on this dispatcher`);
    return info;
  }

  app.get("/api/code/snapshots/:id", { config: { access: "agent-or-person" } }, async (req: SnapshotReq) => readable(req));

  app.get("/api/code/snapshots/:id/blobs/:sha256", { config: { access: "agent-or-person" } }, async (req: SnapshotReq, reply: FastifyReply) => {
    readable(req);
    const blob = code.openBlob(req.params.id, req.params.sha256 ?? "");
    if (!blob) throw new HttpError(404, "not_found", `snapshot ${req.params.id} has no blob ${req.params.sha256}`);
    return reply.header("content-type", "application/octet-stream").header("content-length", blob.size).send(blob.stream);
  });

  app.get("/api/code/usage", { config: { access: "person" } }, async () => code.usage());
}

/**
 * A submitted job's snapshot, settled: it must be on this dispatcher, and a workdir given with it
 * is a folder inside the tree. Returns the job with what it shows of the snapshot.
 */
export function settleJobCode<J extends { code?: string; workdir?: string }>(code: CodeStore, job: J, field = "code"): J & { codeSummary?: CodeSummary } {
  if (job.code === undefined) return job;
  const codeSummary = code.summary(job.code);
  if (!codeSummary) throw new HttpError(400, "invalid_body", `${field}: snapshot ${job.code} is not on this dispatcher; offer it first (labrig submit --code does)`, { field });
  if (job.workdir !== undefined) {
    try {
      checkRelativePath(job.workdir, "the snapshot");
    } catch (err) {
      if (err instanceof RelativePathError) throw new HttpError(400, "invalid_body", `workdir: with code, a folder inside the snapshot: ${err.message}`, { field: "workdir" });
      throw err;
    }
  }
  return { ...job, codeSummary };
}
