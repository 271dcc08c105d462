// The dispatcher in this test process, on a loopback port: the same openDispatcher the command runs
// (state folder, database, service, HTTP server), without a child process to start. For contract
// tests that need no crash or restart; those keep startDispatcher's real process.
//   const d = await startInProcessDispatcher({ env: { LABRIG_HEARTBEAT_S: "1" } });
//   await d.admin().submit({ command: ["true"] });  ...  await d.stop(); d.cleanup();
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DispatcherClient } from "../../core/client.js";
import { openDispatcher } from "../../dispatcher/main.js";
import { SMALL_JOB_DEFAULTS } from "./dispatcher-process.js";

export interface InProcessDispatcher {
  url: string;
  port: number;
  stateDir: string;
  adminToken: string;
  joinToken: string;
  admin(): DispatcherClient;
  /** Stops the service and closes the server and the database. */
  stop(): Promise<void>;
  /** Removes the state folder. */
  cleanup(): void;
}

export async function startInProcessDispatcher(opts: { env?: Record<string, string> } = {}): Promise<InProcessDispatcher> {
  const stateDir = mkdtempSync(join(tmpdir(), "labrig-dispatcher-"));
  // Only the settings given: the test process's own LABRIG_* variables do not leak in.
  const d = openDispatcher(stateDir, { ...SMALL_JOB_DEFAULTS, ...opts.env });
  await d.app.listen({ port: 0, host: "127.0.0.1" });
  d.service.start();
  const addr = d.app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  const url = `http://127.0.0.1:${port}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    stateDir,
    adminToken: d.admin.token,
    joinToken: d.join.token,
    admin: () => new DispatcherClient({ url, token: d.admin.token }),
    stop: () => (closed ??= d.close()),
    cleanup: () => rmSync(stateDir, { recursive: true, force: true }),
  };
}
