// The one-file agent GPU hosts run: built with esbuild, copied where no node_modules can be found,
// and run as a real agent against a real dispatcher. It runs with this Node; set
// LABRIG_TEST_NODE18=/path/to/node (v18) to run it with the oldest Node it targets as well.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleAgent } from "../../agent/bundle.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { steadyDispatcherEnv, waitForState } from "./agent-helpers.js";

const nodes = [process.execPath, ...(process.env.LABRIG_TEST_NODE18 ? [process.env.LABRIG_TEST_NODE18] : [])];
let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "labrig-bundle-"));
  const built = await bundleAgent(join(dir, "build", "labrig-agent.mjs"));
  // A folder of its own, like /opt/labrig/agent on a GPU host: nothing to resolve modules from.
  bundle = join(dir, "labrig-agent.mjs");
  copyFileSync(built.path, bundle);
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the bundled agent", () => {
  it("holds no native module and no ssh2", () => {
    const text = readFileSync(bundle, "utf8");
    expect(text).not.toMatch(/require\(["'](ssh2|cpu-features)["']\)/);
    expect(text).not.toMatch(/\.node["']\)/);
    expect(text.startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it.each(nodes)("answers --help and --version with %s", async (node) => {
    const help = await execa(node, [bundle, "--help"], { cwd: dir });
    expect(help.stdout).toContain("--join-token <token>");
    expect(help.stdout).toContain("LABRIG_AGENT_ADMIN_TOKENS");
    const version = await execa(node, [bundle, "--version"], { cwd: dir });
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync("package.json", "utf8")).version);
  });

  describe.each(nodes)("run with %s against a real dispatcher", (node) => {
    let d: DispatcherProcess;
    let a: AgentProcess;
    beforeAll(async () => {
      d = await startDispatcher({ env: steadyDispatcherEnv });
      // No engine at this socket: a container job must fail on the connection, not on a missing module.
      a = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-bundle", command: [node, bundle], env: { DOCKER_HOST: "unix:///nonexistent/docker.sock" } });
    });
    afterAll(async () => {
      await a?.stop();
      a?.cleanup();
      await d?.stop();
      d?.cleanup();
    });

    it("runs a job and syncs its log", async () => {
      const admin = d.admin();
      const job = await admin.submit({ command: "echo from the bundle; echo 1 > f.txt", gpus: 1 });
      await waitForState(admin, job.id, "succeeded");
      expect((await admin.syncGet(job.id, "job.log")).toString()).toBe("from the bundle\n");
      expect((await d.admin().devices())[0]).toMatchObject({ hostId: "gpu-bundle", agentVersion: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    });

    it("loads dockerode for an image job and fails it on the missing engine", async () => {
      const admin = d.admin();
      const job = await admin.submit({ command: "true", image: "busybox:latest", gpus: 0 });
      const done = await waitForState(admin, job.id, "failed");
      expect(done.reason).toMatch(/could not start image busybox:latest .*ENOENT/);
    });
  });
});
