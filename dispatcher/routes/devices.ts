// Devices' routes: every person reads them; only an admin drains and undrains a host.
import type { FastifyInstance } from "fastify";
import type { RouteContext } from "../http/common.js";
import { HttpError } from "../http/errors.js";

export function deviceRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service } = ctx;

  app.get("/api/devices", { config: { access: "person" } }, async () => ({ devices: service.listDevices() }));

  for (const action of ["drain", "undrain"] as const) {
    app.post<{ Params: { hostId: string } }>(`/api/devices/:hostId/${action}`, { config: { access: "admin" } }, async (req) => {
      const d = service.setDraining(req.params.hostId, action === "drain");
      if (!d) throw new HttpError(404, "not_found", `no device ${req.params.hostId}`);
      return d;
    });
  }
}
