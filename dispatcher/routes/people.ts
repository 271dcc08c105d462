// People and join tokens (admins only), and `whoami` for anyone with a token.
import type { FastifyInstance } from "fastify";
import { addPersonRequestSchema, createJoinTokenRequestSchema, personLimitsRequestSchema } from "../../core/api.js";
import { parseBody, type RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";
import { PeopleError } from "../people.js";

export function peopleRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { people } = ctx;
  const byName = (req: { caller: { kind: string; name?: string } }) => (req.caller.kind === "person" ? req.caller.name! : null);

  app.get("/api/whoami", { config: { access: "any" } }, async (req) => {
    const c = req.caller;
    return c.kind === "person" ? { kind: "person", name: c.name, role: c.role } : c.kind === "agent" ? { kind: "agent", hostId: c.hostId } : { kind: "join" };
  });

  app.get("/api/users", { config: { access: "admin" } }, async () => ({ users: people.list() }));

  app.post("/api/users", { config: { access: "admin" } }, async (req, reply) => {
    const body = parseBody(addPersonRequestSchema, req.body);
    const { person, token } = people.add(body.name, body.role, byName(req));
    return reply.code(201).send({ ...person, token });
  });

  app.post<{ Params: { name: string } }>("/api/users/:name/revoke", { config: { access: "admin" } }, async (req) => people.revoke(req.params.name));

  app.get("/api/users/limits", { config: { access: "admin" } }, async () => ({ limits: [...people.limits().values()] }));

  app.put<{ Params: { name: string } }>("/api/users/:name/limits", { config: { access: "admin" } }, async (req) => {
    const body = parseBody(personLimitsRequestSchema, req.body);
    const limits = people.setLimits(req.params.name, body, byName(req));
    ctx.service.requestSchedule();
    return limits;
  });

  app.get("/api/join-tokens", { config: { access: "admin" } }, async () => ({ joinTokens: people.listJoinTokens() }));

  app.post("/api/join-tokens", { config: { access: "admin" } }, async (req, reply) => {
    const body = parseBody(createJoinTokenRequestSchema, req.body);
    const { info, token } = people.createJoinToken({ ...body, createdBy: byName(req) });
    return reply.code(201).send({ ...info, token });
  });

  app.post<{ Params: { id: string } }>("/api/join-tokens/:id/revoke", { config: { access: "admin" } }, async (req) => people.revokeJoinToken(req.params.id));
}

export function peopleErrorReply(err: PeopleError): HttpError {
  return new HttpError(err.code === "exists" ? 409 : 404, err.code === "exists" ? "exists" : "not_found", err.message);
}
