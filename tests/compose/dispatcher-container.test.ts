// The dispatcher image and its compose files, for real: built from a local base (no registry),
// started with docker-compose on the test engine, checked through its own HEALTHCHECK and HTTP,
// backed up from inside, replaced with its data kept, and stopped with SIGTERM.
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { DispatcherClient } from "../../core/client.js";
import { repoRoot } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { docker } from "../infra/docker.js";
import { ensureDispatcherImage } from "./dispatcher-image.js";

const plainFile = join(repoRoot, "compose", "docker-compose.yml");
const synologyFile = join(repoRoot, "compose", "docker-compose.synology.yml");

interface Project {
  name: string;
  file: string;
  env: Record<string, string>;
  compose(args: string[]): Promise<string>;
  containerId(): Promise<string>;
  down(): Promise<void>;
}

function project(file: string, env: Record<string, string>): Project {
  const name = `labrigtest${Math.random().toString(36).slice(2, 8)}`;
  const compose = async (args: string[]) => {
    const r = await execa("docker-compose", ["-p", name, "-f", file, ...args], { reject: false, env, timeout: 120_000 });
    if (r.exitCode !== 0) throw new Error(`docker-compose ${args.join(" ")} exited ${r.exitCode}: ${r.stderr.slice(-1500)}`);
    return r.stdout.trim();
  };
  return {
    name,
    file,
    env,
    compose,
    containerId: async () => compose(["ps", "-q", "dispatcher"]),
    down: async () => {
      await compose(["down", "-v", "-t", "2"]).catch(() => undefined);
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function health(id: string): Promise<string> {
  return docker(["inspect", id, "--format", "{{.State.Health.Status}}"]);
}

let image: string;
beforeAll(async () => {
  image = await ensureDispatcherImage();
}, 300_000);

describe("docker-compose.yml", () => {
  let p: Project;
  let port: number;
  let admin: DispatcherClient;
  beforeAll(async () => {
    port = await freePort();
    p = project(plainFile, { ...process.env, LABRIG_IMAGE: image, LABRIG_PORT: String(port) } as Record<string, string>);
    await p.compose(["up", "-d", "--no-build"]);
  }, 120_000);
  afterAll(async () => {
    await p?.down();
  });

  it("runs the image as a non-root user that becomes healthy through the image's own HEALTHCHECK, with the agent bundle inside", async () => {
    const id = await p.containerId();
    await waitFor("the container's health check to pass", () => health(id), (s) => s === "healthy", 40_000, 500);
    expect(await docker(["exec", id, "id", "-u"])).toBe("10001");
    expect(JSON.parse(await docker(["inspect", id, "--format", "{{json .HostConfig.Init}}"]))).toBe(true);
    // The agent bundle rides along for provisioning to fetch, and parses with the image's node.
    await docker(["exec", id, "node", "--check", "/opt/labrig/agent/labrig-agent.mjs"]);
    const res = await fetch(`http://127.0.0.1:${port}/api/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", api: 1 });
    admin = new DispatcherClient({ url: `http://127.0.0.1:${port}`, token: await docker(["exec", id, "cat", "/var/lib/labrig/admin-token"]) });
  });

  it("backs itself up from inside with its own restic and proves the backup restorable", async () => {
    const id = await p.containerId();
    await admin.submit({ name: "in-backup", project: "p", command: "true", gpus: 0 });
    await docker(["exec", id, "sh", "-c", "echo s3cret > /tmp/restic-pw"]);
    const backup = await execa("docker", ["exec", id, "labrig", "backup", "--state", "/var/lib/labrig", "--repo", "/tmp/repo", "--password-file", "/tmp/restic-pw", "--check-subset", "0", "--json"], { reject: false });
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ ok: true, database: { jobs: 1 } });
    const verify = await execa("docker", ["exec", id, "labrig", "restore", "--verify", "--repo", "/tmp/repo", "--password-file", "/tmp/restic-pw"], { reject: false });
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain("restore OK");
  });

  it("keeps its jobs and tokens when the container is replaced with the same volumes", async () => {
    const before = await p.containerId();
    const job = await admin.submit({ name: "survives-replace", project: "p", command: "true", gpus: 0 });
    await p.compose(["up", "-d", "--no-build", "--force-recreate"]);
    const after = await p.containerId();
    expect(after).not.toBe(before);
    await waitFor("the new container's health check to pass", () => health(after), (s) => s === "healthy", 40_000, 500);
    expect((await admin.job(job.id)).name).toBe("survives-replace");
    expect(await docker(["exec", after, "cat", "/var/lib/labrig/admin-token"])).toBe(admin.token);
  });

  it("stops cleanly on SIGTERM within 10 s, leaving no WAL behind", async () => {
    const id = await p.containerId();
    const t0 = Date.now();
    await p.compose(["stop", "-t", "10"]);
    const took = Date.now() - t0;
    expect(took).toBeLessThan(10_000);
    const state = JSON.parse(await docker(["inspect", id, "--format", "{{json .State}}"]));
    expect(state.ExitCode, "exit code after SIGTERM (137 would mean it was killed)").toBe(0);
    expect(await docker(["logs", id])).toContain("labrig dispatcher: stopped");
    // The volume as the next container sees it: the WAL checkpointed into labrig.db and removed.
    const files = await docker(["run", "--rm", "--entrypoint", "ls", "--volumes-from", id, image, "/var/lib/labrig"]);
    expect(files.split("\n")).toContain("labrig.db");
    expect(files.split("\n")).not.toContain("labrig.db-wal");
  });
});

describe("docker-compose.synology.yml", () => {
  it("defaults to the NAS's /volume1/docker/labrig folders, and runs on such folders owned by the DSM user", async () => {
    const config = parseYaml(readFileSync(synologyFile, "utf8"));
    const svc = config.services.dispatcher;
    expect(svc.volumes).toEqual([
      "${LABRIG_STATE_DIR:-/volume1/docker/labrig/state}:/var/lib/labrig",
      "${LABRIG_RUNS_DIR:-/volume1/docker/labrig/runs}:/var/lib/labrig/runs",
      "${LABRIG_CONFIG_DIR:-/volume1/docker/labrig/config}:/etc/labrig",
      "${LABRIG_BACKUP_DIR:-/volume1/docker/labrig/backup}:/var/lib/labrig-backup",
    ]);
    expect(svc).toMatchObject({ restart: "unless-stopped", init: true, ports: ["${LABRIG_PORT:-8000}:8000"] });

    // The same file with the folders somewhere this test owns, as a NAS admin (uid 1026, gid 100) would have them.
    const root = mkdtempSync(join(tmpdir(), "labrig-synology-"));
    const dirs = Object.fromEntries(["state", "runs", "config", "backup"].map((d) => [d, join(root, d)]));
    for (const d of Object.values(dirs)) {
      mkdirSync(d);
      chownSync(d, 1026, 100);
    }
    const port = await freePort();
    const p = project(synologyFile, {
      ...(process.env as Record<string, string>),
      LABRIG_IMAGE: image,
      LABRIG_PORT: String(port),
      LABRIG_CONTAINER: `labrig-synology-test-${port}`,
      LABRIG_STATE_DIR: dirs.state,
      LABRIG_RUNS_DIR: dirs.runs,
      LABRIG_CONFIG_DIR: dirs.config,
      LABRIG_BACKUP_DIR: dirs.backup,
      LABRIG_ADMIN_TOKEN: "lra_synology-test-admin-token",
    });
    try {
      const resolved = parseYaml(await p.compose(["config"]));
      expect(resolved.services.dispatcher.mem_limit).toBeDefined();
      await p.compose(["up", "-d", "--no-build"]);
      const id = await p.containerId();
      await waitFor("the Synology container's health check to pass", () => health(id), (s) => s === "healthy", 40_000, 500);
      const admin = new DispatcherClient({ url: `http://127.0.0.1:${port}`, token: "lra_synology-test-admin-token" });
      expect(await admin.jobs()).toEqual([]);
      expect(readFileSync(join(dirs.state, "admin-token"), "utf8").trim()).toBe("lra_synology-test-admin-token");
      expect(await docker(["exec", id, "id", "-u"])).toBe("1026");
    } finally {
      await p.down();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
