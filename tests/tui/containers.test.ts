// The Containers view's data from a real Docker engine (the tests' private dockerd): labrig's job
// and dispatcher containers with a stats sample, others left out; an engine that is not there
// reported in place of rows; and the CPU/memory arithmetic on recorded stats shapes.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labContainerRole, listLabContainers, pollSources, usageFromStats } from "../../tui/containers.js";
import { docker, requireDocker } from "../infra/index.js";

const image = "labrig-test-tui-sleep:1";
const suffix = `${process.pid}`;
const names = { job: `labrig-tui-job-${suffix}`, dispatcher: `labrig-tui-dispatcher-${suffix}`, other: `labrig-tui-other-${suffix}` };

/** An image holding only `sleep` and the libraries it loads (no registry here). */
async function buildSleepImage(): Promise<void> {
  if ((await execa("docker", ["image", "inspect", image], { reject: false })).exitCode === 0) return;
  const root = mkdtempSync(join(tmpdir(), "labrig-sleep-rootfs-"));
  try {
    const files = new Set(["/bin/sleep"]);
    const { stdout } = await execa("ldd", ["/bin/sleep"]);
    for (const m of stdout.matchAll(/(\/\S+\.so[.\d]*)/g)) files.add(m[1]!);
    for (const f of files) {
      mkdirSync(join(root, f, ".."), { recursive: true });
      copyFileSync(f, join(root, f));
    }
    await execa("sh", ["-c", `tar -C '${root}' -c . | docker import - ${image}`]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe("containers on a real Docker engine", () => {
  beforeAll(async () => {
    await requireDocker();
    await buildSleepImage();
    const run = (name: string, labels: string[]) => docker(["run", "-d", "--name", name, "--label", "labrig-test=1", ...labels.flatMap((l) => ["--label", l]), image, "/bin/sleep", "60"]);
    await run(names.job, ["labrig.job=01tuijob00"]);
    await run(names.dispatcher, ["org.labrig.role=dispatcher"]);
    await run(names.other, []);
  }, 120_000);

  afterAll(async () => {
    if (!process.env.DOCKER_HOST) return;
    await docker(["rm", "-f", names.job, names.dispatcher, names.other]).catch(() => {});
  });

  it("lists labrig's job and dispatcher containers with state and a stats sample, and leaves others out", async () => {
    const rows = await listLabContainers(new Docker());
    const mine = rows.filter((r) => r.name.endsWith(`-${suffix}`));
    expect(mine.map((r) => [r.name, r.role, r.jobId])).toEqual([
      [names.dispatcher, "dispatcher", null],
      [names.job, "job", "01tuijob00"],
    ]);
    for (const r of mine) {
      expect(r.state).toBe("running");
      expect(r.image).toBe(image);
      // Figures as the engine gives them: a nested engine without cgroup accounting reports none
      // (`docker stats` shows 0B / 0B), and then the view shows dashes rather than zeros.
      const cli = await docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", r.name]);
      if (cli.startsWith("0B / 0B")) {
        expect(r.memUsedBytes).toBeNull();
      } else {
        expect(r.memUsedBytes).toBeGreaterThan(0);
        expect(r.memLimitBytes).toBeGreaterThan(r.memUsedBytes!);
        expect(r.cpuPct).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it("keeps a stopped job container in the list without figures", async () => {
    await docker(["stop", "-t", "0", names.job]);
    const row = (await listLabContainers(new Docker())).find((r) => r.name === names.job);
    expect(row).toMatchObject({ state: "exited", cpuPct: null, memUsedBytes: null });
  });
});

describe("container sources", () => {
  it("reports an engine that does not answer in place of its rows, and still answers for the others", async () => {
    const gone = new Docker({ socketPath: join(tmpdir(), `no-docker-here-${suffix}.sock`) });
    const hosts = await pollSources([
      { host: "gone", via: "a socket that is not there", list: () => listLabContainers(gone) },
      { host: "fine", via: "a list", list: async () => [] },
    ]);
    expect(hosts[0]).toMatchObject({ host: "gone", rows: [] });
    expect(hosts[0]!.error).toMatch(/no Docker engine answers \(ENOENT\)/);
    expect(hosts[1]).toMatchObject({ host: "fine", rows: [], error: null });
  });

  it("tells labrig's containers by their labels and the compose service", () => {
    expect(labContainerRole({ Id: "a", Labels: { "labrig.job": "01x" } })).toEqual({ role: "job", jobId: "01x" });
    expect(labContainerRole({ Id: "b", Labels: { "org.labrig.role": "dispatcher" } })).toEqual({ role: "dispatcher", jobId: null });
    expect(labContainerRole({ Id: "c", Image: "labrig/dispatcher:latest", Labels: { "com.docker.compose.service": "dispatcher" } })).toEqual({ role: "dispatcher", jobId: null });
    expect(labContainerRole({ Id: "d", Image: "postgres:16", Labels: { "com.docker.compose.service": "dispatcher" } })).toBeNull();
    expect(labContainerRole({ Id: "e", Labels: {} })).toBeNull();
  });

  it("computes CPU as docker stats does and leaves the reclaimable page cache out of memory", () => {
    // cgroup v2: 0.5 s of CPU over 2 s of all 4 CPUs' time = 100 % of one core; 100 MiB minus 40 MiB inactive files.
    const v2 = usageFromStats({
      cpu_stats: { cpu_usage: { total_usage: 1_500_000_000 }, system_cpu_usage: 10_000_000_000, online_cpus: 4 },
      precpu_stats: { cpu_usage: { total_usage: 1_000_000_000 }, system_cpu_usage: 8_000_000_000 },
      memory_stats: { usage: 100 * 2 ** 20, limit: 2 ** 30, stats: { inactive_file: 40 * 2 ** 20 } },
    });
    expect(v2).toEqual({ cpuPct: 100, memUsedBytes: 60 * 2 ** 20, memLimitBytes: 2 ** 30 });
    // cgroup v1 names it total_inactive_file and may lack online_cpus.
    const v1 = usageFromStats({
      cpu_stats: { cpu_usage: { total_usage: 200, percpu_usage: [1, 1] }, system_cpu_usage: 1000 },
      precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 800 },
      memory_stats: { usage: 1000, limit: 5000, stats: { total_inactive_file: 300 } },
    });
    expect(v1).toEqual({ cpuPct: 100, memUsedBytes: 700, memLimitBytes: 5000 });
    // A first sample has no previous one to compare with.
    expect(usageFromStats({ cpu_stats: { cpu_usage: { total_usage: 5 }, system_cpu_usage: 10 }, precpu_stats: {} }).cpuPct).toBeNull();
  });
});
