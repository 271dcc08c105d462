// Who is calling, and whether a route lets them: each route declares its `access` in its config,
// and one onRequest hook (see server.ts) identifies the bearer token and checks it before any
// body is read, for every route including unknown ones, so a missing token is always 401 first.
import type { Role } from "../../core/api.js";
import { FIRST_ADMIN, type PeopleStore } from "../people.js";
import type { DispatcherService } from "../service.js";
import { tokensEqual } from "../tokens.js";
import { HttpError } from "./errors.js";

export type Caller =
  | { kind: "person"; name: string; role: Role }
  | { kind: "agent"; hostId: string }
  /** A join token: it may only register a new host. `joinTokenId` is null for the state dir's join token. */
  | { kind: "join"; joinTokenId: string | null }
  /** A Slurm batch script: its claim token stands for one attempt of one job, and nothing else. */
  | { kind: "slurm-claim"; jobId: string; attempt: number };

/**
 * - public: no token.
 * - any: any person or agent (unknown routes: 401 before 404).
 * - person: an admin or a member. admin: an admin.
 * - agent: the agent of the `:hostId` in the path.
 * - register: a join token, or the host's own agent token (re-registering).
 * - agent-or-person: job events and sync (the route narrows further).
 * - slurm-claim: a Slurm batch script's claim token, and no other (not even an admin's).
 */
export type Access = "public" | "any" | "person" | "admin" | "agent" | "register" | "agent-or-person" | "slurm-claim";

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
    /** Also take the token from ?token= (browsers' EventSource cannot send headers). */
    queryToken?: boolean;
    /** An application/octet-stream body reaches the handler as the stream it arrives as (sync uploads). */
    streamBody?: boolean;
  }
  interface FastifyRequest {
    caller: Caller;
  }
}

export interface AuthOptions {
  service: DispatcherService;
  people: PeopleStore;
  adminToken: string;
  joinToken: string;
}

/** The caller a token stands for, or undefined when it stands for no one (a join token counts only where `joinAllowed`). */
export function identify(opts: AuthOptions, token: string, joinAllowed: boolean): Caller | undefined {
  if (tokensEqual(token, opts.adminToken)) return { kind: "person", name: FIRST_ADMIN, role: "admin" };
  const hostId = opts.service.hostForAgentToken(token);
  if (hostId) return { kind: "agent", hostId };
  const person = opts.people.personForToken(token);
  if (person) return { kind: "person", name: person.name, role: person.role };
  if (joinAllowed) {
    if (tokensEqual(token, opts.joinToken)) return { kind: "join", joinTokenId: null };
    const id = opts.people.usableJoinToken(token);
    if (id) return { kind: "join", joinTokenId: id };
  }
  return undefined;
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header || !header.startsWith("Bearer ")) return undefined;
  const t = header.slice(7).trim();
  return t === "" ? undefined : t;
}

/** Throws the 401 or 403 a caller gets for a route, or returns when it may go on. */
export function authorize(access: Access, token: string | undefined, opts: AuthOptions, params: { hostId?: string }): Caller | undefined {
  if (access === "public") return undefined;
  if (token === undefined) throw new HttpError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
  if (access === "slurm-claim") {
    const claim = opts.service.slurmJobs.forClaimToken(token);
    if (!claim) throw new HttpError(401, "unauthorized", "not a claim token of a job labrig handed to Slurm (or that attempt is forgotten)");
    return { kind: "slurm-claim", jobId: claim.jobId, attempt: claim.attempt };
  }
  const caller = identify(opts, token, access === "register");
  if (!caller) {
    if (access === "register") throw new HttpError(401, "unauthorized", "registering needs a valid join token (or this host's own agent token)");
    // Agents react to 401 unknown_agent by registering again.
    if (access === "agent") throw new HttpError(401, "unknown_agent", "the token is not valid here; an agent should register again");
    throw new HttpError(401, "unauthorized", "wrong or revoked token: use your own (labrig login), LABRIG_TOKEN, or the state dir's admin-token file");
  }
  switch (access) {
    case "any":
    case "agent-or-person":
    case "register":
      if (access === "register" && caller.kind === "person" && caller.role !== "admin") throw forbidden("registering a host needs a join token, not a member's token");
      return caller;
    case "person":
      if (caller.kind !== "person") throw forbidden("this call is for people (admins and members), not an agent's token");
      return caller;
    case "admin":
      if (caller.kind !== "person") throw forbidden("this call needs an admin's token, not an agent's");
      if (caller.role !== "admin") throw forbidden(`this call needs an admin; ${caller.name} is a member`);
      return caller;
    case "agent":
      if (caller.kind !== "agent") throw forbidden("this call is made with the host's agent token");
      if (params.hostId !== undefined && caller.hostId !== params.hostId) throw forbidden(`an agent of host ${caller.hostId} cannot act for host ${params.hostId}`);
      return caller;
  }
}

export function forbidden(message: string): HttpError {
  return new HttpError(403, "forbidden", message);
}

export const isAdmin = (c: Caller): boolean => c.kind === "person" && c.role === "admin";
