// Server-sent events for people: job, device, log and notice events, each job as the subscriber
// may see it (env values only for its owner and admins).
import type { FastifyInstance } from "fastify";
import { sseFrame } from "../events.js";
import { viewJob, type RouteContext } from "../http/common.js";

export function eventRoutes(app: FastifyInstance, ctx: RouteContext, version: string): void {
  const { service, closers } = ctx;

  app.get("/api/events", { config: { access: "person", queryToken: true } }, async (req, reply) => {
    const caller = req.caller;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(`: labrig dispatcher ${version}; events: job, device, log, notice\n\n`);
    const unsubscribe = service.events.subscribe((ev) => res.write(sseFrame(ev.type === "job" ? { ...ev, job: viewJob(ev.job, caller) } : ev)));
    const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
    const stop = () => {
      clearInterval(ping);
      unsubscribe();
    };
    res.on("close", stop);
    closers.add(() => {
      stop();
      res.end();
    });
  });
}
