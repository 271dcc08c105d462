// What every route module shares: the service and people store, body parsing with the zod
// schemas of core/api.ts, job lookups, and the view of a job a caller may see.
import type { FastifyRequest } from "fastify";
import type { z } from "zod";
import type { SlurmView } from "../../core/api.js";
import type { CodeStore } from "../code-store.js";
import type { PeopleStore } from "../people.js";
import type { DispatcherService } from "../service.js";
import type { StoredJob } from "../store.js";
import { isAdmin, type Caller } from "./auth.js";
import { HttpError } from "./errors.js";

export interface RouteContext {
  service: DispatcherService;
  people: PeopleStore;
  code: CodeStore;
  maxLeaseWaitS: number;
  /** Body limit of sync uploads, in bytes. */
  syncBodyLimit: number;
  /** Called by streams that must end when the server closes. */
  closers: Set<() => void>;
  /** Slurm's view of the cluster; absent when the dispatcher schedules its own jobs. */
  slurmView?: () => Promise<SlurmView>;
}

/** Upload bodies as the chunks they arrived in (see server.ts). */
export interface Chunks {
  parts: Buffer[];
  length: number;
}

export const isChunks = (body: unknown): body is Chunks => !!body && typeof body === "object" && Array.isArray((body as Chunks).parts);

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (isChunks(body) || typeof body === "string") throw new HttpError(415, "invalid_body", "(body): send JSON with content-type: application/json", { field: "(body)" });
  return parsedOr400(schema, body, "invalid_body", "(body)");
}

/** Reads a query string by its schema; a bad value is 400 `invalid_query` naming the parameter. */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  return parsedOr400(schema, query, "invalid_query", "(query)");
}

/** `input` read by `schema`, or a 400 `code` naming the first field that is wrong (`whole` when it is the input itself). */
function parsedOr400<S extends z.ZodType>(schema: S, input: unknown, code: string, whole: string): z.output<S> {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const field = [...issue.path, issue.keys[0]!].join(".");
    const more = issue.keys.length > 1 ? ` (and ${issue.keys.slice(1).join(", ")})` : "";
    throw new HttpError(400, code, `${field}: no such field in this API${more}; check its spelling`, { field });
  }
  const field = issue.path.join(".") || whole;
  const message = issue.message.startsWith(`${field}:`) ? issue.message : `${field}: ${issue.message}`;
  throw new HttpError(400, code, message, { field });
}

export function bodyChunks(body: unknown): Buffer[] {
  if (isChunks(body)) return body.parts;
  if (Buffer.isBuffer(body)) return [body];
  if (body === undefined || body === null) return [];
  if (typeof body === "string") return [Buffer.from(body)];
  return [Buffer.from(JSON.stringify(body))];
}

export function jobOr404(service: DispatcherService, id: string): StoredJob {
  const job = service.store.getJob(id);
  if (!job) throw new HttpError(404, "not_found", `job ${id} does not exist`);
  return job;
}

export const HIDDEN = "<hidden>";

/** A job as `caller` may see it: env values in full only for its owner and admins (names stay). */
export function viewJob<J extends { env: Record<string, string>; owner?: string | null }>(job: J, caller: Caller): J {
  if (isAdmin(caller) || (caller.kind === "person" && job.owner === caller.name)) return job;
  if (caller.kind === "agent") return job; // routes give agents only their own jobs
  const env: Record<string, string> = {};
  for (const k of Object.keys(job.env)) env[k] = HIDDEN;
  return { ...job, env };
}

/** A member may change only their own jobs; admins any. */
export function requireOwnerOrAdmin(caller: Caller, job: StoredJob, action: string): void {
  if (isAdmin(caller)) return;
  if (caller.kind === "person" && job.owner === caller.name) return;
  const who = caller.kind === "person" ? caller.name : `the agent of ${caller.kind === "agent" ? caller.hostId : "?"}`;
  throw new HttpError(403, "forbidden", `${who} cannot ${action} job ${job.id}: it belongs to ${job.owner ?? "no one (made before people existed)"}; ask its owner or an admin`);
}

export const callerOf = (req: FastifyRequest): Caller => req.caller;
