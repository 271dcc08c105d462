// CPU and memory limits on real hosts: the agent's limit code (tests/agent/limits-host-entry.ts,
// bundled as the agent is) run in a container with Docker limits, and in a systemd test host
// (tests/infra), where a process job runs in a `labrig-job-…` scope that systemd holds to its
// CPUQuota and MemoryMax, stays the leader of its process group (stopped as a group, also by a
// second process that adopts it, as an agent restarted under --keep-jobs does), and where an agent
// that may not make scopes runs the job as before and says why. This machine has no systemd as
// PID 1; the test host's systemd is the one these tests talk to.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { bundleAgent } from "../../agent/bundle.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostStats } from "../../agent/host-stats.js";
import type { AppliedLimits, ScopeSupport } from "../../agent/job-limits.js";
import type { JobExit } from "../../agent/job-handle.js";
import { createSshKey, createTestNetwork, docker, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { ensureNodeBaseImage } from "../infra/node-base-image.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { steadyDispatcherEnv, waitForJob, waitForState } from "./agent-helpers.js";

let dir: string;
let entry: string;
let agentMjs: string;

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-limits-"));
  entry = join(dir, "limits.mjs");
  await build({ entryPoints: [resolve(import.meta.dirname, "limits-host-entry.ts")], outfile: entry, bundle: true, platform: "node", target: "node18", format: "esm", logLevel: "warning" });
  agentMjs = (await bundleAgent(join(dir, "labrig-agent.mjs"))).path;
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("in a container with Docker's --cpus and --memory", () => {
  it("reports the container's quota as its cores and its memory limit as the total", async () => {
    const image = await ensureNodeBaseImage();
    const out = await docker(["run", "--rm", "--label", "labrig-test=1", "--cpus", "1.5", "--memory", "512m", "-v", `${dir}:/t:ro`, image, "node", "/t/limits.mjs", "stats"]);
    const stats = JSON.parse(out) as HostStats;
    expect(stats).toMatchObject({ cpuCount: 1.5, memoryTotalMiB: 512 });
    expect(stats.memoryUsedMiB).toBeLessThan(512);
  }, 300_000);
});

describe("on a systemd host", { timeout: 120_000 }, () => {
  let net: TestNetwork;
  let host: TestHost;
  const node = (args: string) => `/usr/local/bin/node /opt/limits.mjs ${args}`;
  const json = (v: unknown) => `'${JSON.stringify(v)}'`;
  const unitState = (unit: string) => host.sh(`systemctl show -p ActiveState --value ${unit}`);
  const showProps = async (unit: string, props: string[]) =>
    Object.fromEntries((await host.sh(`systemctl show ${props.map((p) => `-p ${p}`).join(" ")} ${unit}`)).split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

  beforeAll(async () => {
    await requireDocker();
    net = await createTestNetwork("limits");
    host = await startTestHost({ name: "gpu-lim", network: net, publicKey: createSshKey(dir).publicKey });
    // The Node running these tests, and the bundle: the image has neither (provisioning installs Node).
    await docker(["cp", process.execPath, `${host.container}:/usr/local/bin/node`]);
    await docker(["cp", entry, `${host.container}:/opt/limits.mjs`]);
    await docker(["cp", agentMjs, `${host.container}:/opt/labrig-agent.mjs`]);
    await host.sh("chmod 0755 /usr/local/bin/node /opt/limits.mjs && install -d -m 0777 /jobs");
  }, 300_000);

  afterAll(async () => {
    await host?.stop();
    await net?.remove();
  });

  it("finds that root may make scopes that hold their limits", async () => {
    expect(JSON.parse(await host.sh(node("support"))) as ScopeSupport).toEqual({ kind: "scope", systemdRun: "/usr/bin/systemd-run", manager: "system" });
    // The probe's scope is gone again.
    expect(await host.sh("systemctl list-units --all --no-legend 'labrig-probe-*' | wc -l")).toBe("0");
  });

  it("runs a job in its labrig-job scope with CPUQuota and MemoryMax; the job leads its group, and a second process that adopts the group stops all of it", async () => {
    const unit = "labrig-job-t1-a1.scope";
    const started = JSON.parse(
      await host.sh(node(`start ${json({ jobId: "t1", limits: { cpus: 1.5, memoryMiB: 300 }, command: "sleep 300 & sleep 301; wait", logFile: "/jobs/t1.log", exitFile: "/jobs/t1.exit" })}`)),
    ) as { pgid: number; limits: AppliedLimits };
    expect(started.limits).toEqual({ cpus: 1.5, memoryMiB: 300, applied: `systemd scope ${unit}` });
    const pgid = started.pgid;
    await waitFor(`${unit} active with the job's two sleeps`, () => host.sh(`systemctl show -p ActiveState --value ${unit}; ps -o comm= -g ${pgid}`), (s) => s.startsWith("active\n") && s.match(/^sleep$/gm)?.length === 2, 15_000);
    expect(await showProps(unit, ["CPUQuotaPerSecUSec", "MemoryMax", "MemorySwapMax"])).toEqual({ CPUQuotaPerSecUSec: "1.500000s", MemoryMax: "314572800", MemorySwapMax: "0" });
    // systemd-run exec'ed the wrapper in place: the group's leader is the wrapper sh, and every member is in the scope.
    expect(await host.sh(`tr '\\0' ' ' < /proc/${pgid}/cmdline`)).toMatch(/^(\/usr)?(\/bin\/)?sh -c .* labrig-job \/jobs\/t1\.exit sh -c /);
    const members = (await host.sh(`ps -o pid= -g ${pgid}`)).split(/\s+/);
    for (const pid of members) expect(await host.sh(`cat /proc/${pid}/cgroup`)).toContain(`/${unit}`);

    const stopped = JSON.parse(await host.sh(node(`stop ${json({ pgid, exitFile: "/jobs/t1.exit" })}`))) as { exit: JobExit };
    expect(stopped.exit.exitCode).toBeNull();
    expect((await host.exec(`ps -o pid= -g ${pgid}`)).stdout.trim()).toBe("");
    await waitFor(`${unit} collected`, () => unitState(unit), (s) => s === "inactive", 10_000);
  });

  it("ends a job that exits on its own with its exit code, its leftovers killed and its scope collected", async () => {
    const res = JSON.parse(
      await host.sh(node(`start ${json({ jobId: "t2", limits: { cpus: 0.5 }, command: 'sleep 100 & echo in $(grep -o "labrig-job-[^/]*" /proc/self/cgroup | sort -u); exit 3', logFile: "/jobs/t2.log", exitFile: "/jobs/t2.exit", wait: true })}`)),
    ) as { pgid: number; limits: AppliedLimits; exit: JobExit };
    expect(res.limits.applied).toBe("systemd scope labrig-job-t2-a1.scope");
    expect(res.exit).toMatchObject({ exitCode: 3 });
    expect(await host.sh("cat /jobs/t2.exit /jobs/t2.log")).toBe("3\nin labrig-job-t2-a1.scope");
    expect((await host.exec(`ps -o pid= -g ${res.pgid}`)).stdout.trim()).toBe("");
    await waitFor("labrig-job-t2-a1.scope collected", () => unitState("labrig-job-t2-a1.scope"), (s) => s === "inactive", 10_000);
  });

  it("kills a job that goes over its memory (the same job with room to spare runs through)", async () => {
    // 512 MiB, touched page by page.
    const grow = ["/usr/local/bin/node", "-e", 'const a = []; for (let i = 0; i < 32; i++) a.push(Buffer.alloc(16 << 20, 1)); console.log("survived")'];
    const run = async (jobId: string, memoryMiB: number) =>
      JSON.parse(await host.sh(node(`start ${json({ jobId, limits: { memoryMiB }, command: grow, logFile: `/jobs/${jobId}.log`, exitFile: `/jobs/${jobId}.exit`, wait: true })}`))) as { exit: JobExit };
    const over = await run("t3", 128);
    expect(over.exit.exitCode === 137 || over.exit.signal === "SIGKILL" || over.exit.signal === "SIGTERM", JSON.stringify(over.exit)).toBe(true);
    expect(await host.sh("cat /jobs/t3.log")).not.toContain("survived");
    expect((await run("t3b", 2048)).exit).toMatchObject({ exitCode: 0 });
    expect(await host.sh("cat /jobs/t3b.log")).toBe("survived");
  });

  it("reports a scope's CPUQuota and MemoryMax as the heartbeat's cores and memory", async () => {
    const stats = JSON.parse(await host.sh(`systemd-run --scope --quiet --collect -p CPUQuota=150% -p MemoryMax=512M -- ${node("stats")}`)) as HostStats;
    expect(stats).toMatchObject({ cpuCount: 1.5, memoryTotalMiB: 512 });
  });

  it("runs a job as before where the agent may not make scopes (another user, no polkit rule, no user manager), and says why", async () => {
    const res = JSON.parse(
      await host.sh(`runuser -u deploy -- ${node(`start ${json({ jobId: "t4", limits: { cpus: 1, memoryMiB: 256 }, command: "grep -c labrig-job /proc/self/cgroup; exit 0", logFile: "/jobs/t4.log", exitFile: "/jobs/t4.exit", wait: true })}`)}`),
    ) as { limits: AppliedLimits; exit: JobExit };
    expect(res.limits.applied).toMatch(/^none: systemd-run --scope did not work for uid \d+ \(system manager: .*; user manager: .*\)$/);
    expect(res.exit).toMatchObject({ exitCode: 0 });
    expect(await host.sh("cat /jobs/t4.log")).toBe("0");
  });

  describe("the bundled agent, as root in a systemd unit", () => {
    let d: DispatcherProcess;
    beforeAll(async () => {
      // 0.0.0.0: the agent inside the test host reaches it at the network's gateway. Slow disconnects: agent restarts are not a lost host.
      d = await startDispatcher({ args: ["--bind", "0.0.0.0"], env: { ...steadyDispatcherEnv, LABRIG_DISCONNECT_AFTER_S: "30" } });
    });
    afterAll(async () => {
      await d?.kill();
      d?.cleanup();
    });
    const startHostAgent = async (unit: string, args = "") => {
      await host.sh(
        `systemd-run --unit ${unit} -E LABRIG_KILL_GRACE_S=2 /usr/local/bin/node /opt/labrig-agent.mjs --url http://${net.gateway}:${d.port} --host-id gpu-lim ` +
          `--join-token ${d.joinToken} --workdir /var/lib/labrig-agent-lim --listen 127.0.0.1:0 ${args}`,
      );
      await waitFor(`${unit} registered`, () => d.admin().devices(), (ds) => ds.some((x) => x.hostId === "gpu-lim" && x.status === "healthy"), 30_000, 200);
    };
    const runJson = async (jobId: string) => JSON.parse(await host.sh(`cat /var/lib/labrig-agent-lim/jobs/${jobId}/attempt-1/run.json`)) as { limits: AppliedLimits };

    it("runs a job in its scope with the reservation's CPUQuota and MemoryMax, records it in run.json, and re-adopts it after a --keep-jobs restart", async () => {
      await startHostAgent("labrig-agent-lim1", "--keep-jobs");
      const admin = d.admin();
      const job = await admin.submit({
        command: 'echo in $(grep -o "labrig-job-[^/]*" /proc/self/cgroup | sort -u); for i in $(seq 1 30); do echo line $i; sleep 0.1; done; exit 4',
        gpus: 0, cpus: 1.5, memoryGiB: 0.5, constraints: { hostId: "gpu-lim" },
      });
      await waitForState(admin, job.id, "running");
      const unit = `labrig-job-${job.id}-a1.scope`;
      expect((await runJson(job.id)).limits).toEqual({ cpus: 1.5, memoryMiB: 512, applied: `systemd scope ${unit}` });
      expect(await showProps(unit, ["ActiveState", "CPUQuotaPerSecUSec", "MemoryMax"])).toEqual({ ActiveState: "active", CPUQuotaPerSecUSec: "1.500000s", MemoryMax: String(512 * 1024 * 1024) });
      expect(await host.sh("journalctl -u labrig-agent-lim1 --no-pager -o cat")).toContain("CPU and memory limits of process jobs: systemd scopes (system manager)");

      // Stopping the agent's unit leaves the job (in its own scope, and --keep-jobs); the next agent re-adopts it by its group.
      await host.sh("systemctl stop labrig-agent-lim1");
      expect(await unitState(unit)).toBe("active");
      await startHostAgent("labrig-agent-lim2");
      const done = await waitForState(admin, job.id, "failed", 30_000);
      expect(done).toMatchObject({ attempt: 1, exitCode: 4 });
      expect((await admin.syncGet(job.id, "job.log")).toString()).toBe(`in ${unit}\n` + Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(""));
      expect(await host.sh("journalctl -u labrig-agent-lim2 --no-pager -o cat")).toMatch(new RegExp(`job ${job.id} attempt 1: re-adopted \\(process group \\d+\\)`));
      expect((await runJson(job.id)).limits.applied).toBe(`systemd scope ${unit}`);
      await waitFor(`${unit} collected`, () => unitState(unit), (st) => st === "inactive", 10_000);
    });

    it("stops a job in its scope when the agent stops without --keep-jobs: reported 'agent stopped', the scope gone", async () => {
      const admin = d.admin();
      const job = await admin.submit({ command: "sleep 300 & sleep 301", gpus: 0, cpus: 0.5, memoryGiB: 0.25, constraints: { hostId: "gpu-lim" } });
      await waitForState(admin, job.id, "running");
      const unit = `labrig-job-${job.id}-a1.scope`;
      await waitFor(`${unit} active`, () => unitState(unit), (st) => st === "active", 10_000);
      await host.sh("systemctl stop labrig-agent-lim2");
      expect(await waitForJob(admin, job.id, (j) => j.state === "failed", "to fail")).toMatchObject({ reason: "agent stopped" });
      expect(await unitState(unit)).toBe("inactive");
      expect((await host.exec("pgrep -x sleep")).exitCode).toBe(1);
    });
  });
});
