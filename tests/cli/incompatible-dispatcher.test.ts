// The client checks what the dispatcher answers against the API's schemas (core/api.ts): a
// dispatcher of another version, here a loopback HTTP server answering in an older shape, gets
// "incompatible dispatcher" naming the call and the field, from the client and from `labrig jobs`,
// instead of a crash deep in whatever reads the field. A real dispatcher's answers all fit: every
// other test that uses the client checks that.
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherClient } from "../../core/client.js";
import { IncompatibleDispatcherError } from "../../core/errors.js";
import { cliEnv, runCli } from "./cli-process.js";

/** An older dispatcher: jobs without `priority`, states under another name, API 0 in /api/health. */
const answers: Record<string, unknown> = {
  "/api/health": { status: "ok", version: "0.3.0", api: 0 },
  "/api/jobs": { jobs: [{ id: "j1", status: "waiting", command: "echo hi" }] },
  "/api/jobs/j1": { id: "j1", status: "waiting", command: "echo hi" },
  "/api/devices": { hosts: [] },
};

let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const body = answers[(req.url ?? "").split("?")[0]!];
    res.writeHead(body === undefined ? 404 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(body ?? { error: "not_found", message: "no such route" }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("a dispatcher that answers in another API's shape", () => {
  it("is refused by the client, naming the call and the field", async () => {
    const c = new DispatcherClient({ url, token: "t" });
    const job = c.job("j1");
    await expect(job).rejects.toBeInstanceOf(IncompatibleDispatcherError);
    await expect(job).rejects.toThrow(new RegExp(`incompatible dispatcher at ${url}: its answer to GET /api/jobs/j1 does not fit API 1 at name \\(.*expected string, received undefined\\), project .* and \\d+ more\\. Is it another labrig version\\?`));
    await expect(c.jobs()).rejects.toThrow(/GET \/api\/jobs does not fit API 1 at jobs\.0\.name /);
    await expect(c.devices()).rejects.toThrow(/GET \/api\/devices does not fit API 1 at devices/);
    await expect(c.health()).rejects.toThrow(/\(version 0\.3\.0\) speaks API 0; this labrig speaks API 1/);
  });

  it("makes `labrig jobs` exit non-zero with that message and no stack trace", async () => {
    const r = await runCli(["jobs"], cliEnv({ LABRIG_URL: url, LABRIG_TOKEN: "t", LABRIG_HOME: "/nonexistent-labrig-home" }));
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/incompatible dispatcher at http:\/\/127\.0\.0\.1:\d+: its answer to GET \/api\/jobs/);
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
    expect(r.stdout).toBe("");
  }, 60_000);
});
