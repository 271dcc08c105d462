// Pure parts of CPU and memory limits: the cgroup files the heartbeat's cores and memory come
// from (as the kernel writes them: v1 and hybrid ones recorded on this project's CI machine, in a
// container there and in a systemd test host; v2 in the kernel's format), the decision how a job
// is held to its reservation, and the argv and container spec that do it.
import { describe, expect, it } from "vitest";
import { buildContainerSpec, containerLimits } from "../../agent/container-spec.js";
import { cgroupAncestors, cgroupLimits, type FileReader, parseCfsQuota, parseCpuMax, parseMemoryMax, parseProcCgroup, usableCapacity } from "../../agent/host-stats.js";
import {
  appliedLimits,
  containerLimitPlan,
  judgeProbe,
  PROBE_LIMITS,
  processLimitPlan,
  scopeManagersToTry,
  scopeProperties,
  scopeSupportFrom,
  scopeUnitName,
  systemdRunArgv,
} from "../../agent/job-limits.js";
import { wrappedArgv } from "../../agent/process-job.js";

const MiB = 1024 * 1024;
const files = (map: Record<string, string>): FileReader => (p) => map[p];

// A Docker container on a cgroup v1 (hybrid) host, `--cpus 1.5 --memory 512m`: /proc/self/cgroup
// names the host's paths, while the container's own cgroup is mounted at each hierarchy's root.
const CONTAINER_V1_CGROUP = `21:net_cls,net_prio:/
20:hugetlb:/
18:perf_event:/
9:name=systemd:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
8:pids:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
7:blkio:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
6:freezer:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
5:devices:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
4:memory:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
3:cpuset:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
2:cpuacct:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
1:cpu:/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
0::/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df
`;
// A process in a systemd scope made with CPUQuota=150% MemoryMax=256M on the same hybrid host (a
// test host sharing the host's cgroup namespace).
const SCOPE = "/docker/11d2d3d4c75e012655e7df32fd6aadcf2c967778e94e1c6bb58a0c8486c3ab9a/system.slice/labrig-probe-1.scope";
const SCOPE_V1_CGROUP = `21:net_cls,net_prio:/
9:name=systemd:${SCOPE}
4:memory:${SCOPE}
3:cpuset:/docker/11d2d3d4c75e012655e7df32fd6aadcf2c967778e94e1c6bb58a0c8486c3ab9a
2:cpuacct:/docker/11d2d3d4c75e012655e7df32fd6aadcf2c967778e94e1c6bb58a0c8486c3ab9a
1:cpu:${SCOPE}
0::${SCOPE}
`;

describe("cgroup files", () => {
  it("parses /proc/self/cgroup: the v2 path and each v1 controller's path", () => {
    const m = parseProcCgroup(CONTAINER_V1_CGROUP);
    expect(m.v2).toBe("/docker/4e7bdca1e2853b9e3bf937c88fe634e0faf92e08ccd321580ed6d79f3fc4d8df");
    expect(m.v1.cpu).toBe(m.v2);
    expect(m.v1.net_prio).toBe("/");
    expect(m.v1["name=systemd"]).toBe(m.v2);
    expect(parseProcCgroup("0::/system.slice/labrig-agent.service\n")).toEqual({ v2: "/system.slice/labrig-agent.service", v1: {} });
  });

  it("reads cpu.max and the v1 CFS quota as cores, 'max' and -1 as no limit", () => {
    expect(parseCpuMax("150000 100000\n")).toBe(1.5);
    expect(parseCpuMax("max 100000\n")).toBeUndefined();
    expect(parseCpuMax(undefined)).toBeUndefined();
    expect(parseCfsQuota("200000\n", "100000\n")).toBe(2);
    expect(parseCfsQuota("-1\n", "100000\n")).toBeUndefined();
  });

  it("reads memory.max and memory.limit_in_bytes as bytes, 'max' as no limit", () => {
    expect(parseMemoryMax("536870912\n")).toBe(512 * MiB);
    expect(parseMemoryMax("max\n")).toBeUndefined();
    // v1's "no limit" is a page-rounded 2^63; the host's total undercuts it (usableCapacity).
    expect(parseMemoryMax("9223372036854771712\n")).toBeGreaterThan(2 ** 62);
  });

  it("walks a cgroup's ancestors up to the root", () => {
    expect(cgroupAncestors("/system.slice/labrig-agent.service")).toEqual(["/system.slice/labrig-agent.service", "/system.slice", "/"]);
    expect(cgroupAncestors("/")).toEqual(["/"]);
  });

  it("finds a v1 container's quota and memory limit at its hierarchies' roots", () => {
    const limits = cgroupLimits(
      parseProcCgroup(CONTAINER_V1_CGROUP),
      files({
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "150000\n",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes": "10567680\n",
      }),
    );
    expect(limits).toEqual({ cpus: 1.5, memoryBytes: 512 * MiB, memoryUsedBytes: 10567680 });
  });

  it("takes the tightest limit on the way up a v2 tree, and that cgroup's use", () => {
    const limits = cgroupLimits(
      parseProcCgroup("0::/lab.slice/labrig-agent.service\n"),
      files({
        "/sys/fs/cgroup/lab.slice/labrig-agent.service/cpu.max": "max 100000\n",
        "/sys/fs/cgroup/lab.slice/labrig-agent.service/memory.max": "max\n",
        "/sys/fs/cgroup/lab.slice/labrig-agent.service/memory.current": "1048576\n",
        "/sys/fs/cgroup/lab.slice/cpu.max": "800000 100000\n",
        "/sys/fs/cgroup/lab.slice/memory.max": "34359738368\n",
        "/sys/fs/cgroup/lab.slice/memory.current": "2147483648\n",
      }),
    );
    expect(limits).toEqual({ cpus: 8, memoryBytes: 32 * 1024 * MiB, memoryUsedBytes: 2 * 1024 * MiB });
  });

  it("reads a scope's own limits only when asked to (the probe), from v1 on a hybrid host", () => {
    const read = files({
      [`/sys/fs/cgroup/cpu${SCOPE}/cpu.cfs_quota_us`]: "150000\n",
      [`/sys/fs/cgroup/cpu${SCOPE}/cpu.cfs_period_us`]: "100000\n",
      [`/sys/fs/cgroup/memory${SCOPE}/memory.limit_in_bytes`]: "268435456\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "50000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    });
    expect(cgroupLimits(parseProcCgroup(SCOPE_V1_CGROUP), read, { ownOnly: true })).toEqual({ cpus: 1.5, memoryBytes: 256 * MiB });
    expect(cgroupLimits(parseProcCgroup(SCOPE_V1_CGROUP), read).cpus).toBe(0.5);
  });

  it("has no limits where no cgroup file is readable (not Linux, or no cgroup fs)", () => {
    expect(cgroupLimits(parseProcCgroup(CONTAINER_V1_CGROUP), files({}))).toEqual({});
  });

  it("reports the lower of the host's and the cgroup's cores and memory, and the cgroup's use with its limit", () => {
    const host = { cpus: 32, memoryBytes: 256 * 1024 * MiB, memoryUsedBytes: 100 * 1024 * MiB };
    expect(usableCapacity(host, {})).toEqual({ cpuCount: 32, memoryTotalBytes: host.memoryBytes, memoryUsedBytes: host.memoryUsedBytes });
    expect(usableCapacity(host, { cpus: 1.5, memoryBytes: 512 * MiB, memoryUsedBytes: 10 * MiB })).toEqual({ cpuCount: 1.5, memoryTotalBytes: 512 * MiB, memoryUsedBytes: 10 * MiB });
    expect(usableCapacity(host, { cpus: 64, memoryBytes: 9223372036854771712 })).toMatchObject({ cpuCount: 32, memoryTotalBytes: host.memoryBytes });
    expect(usableCapacity({ ...host, cpus: 4 }, { cpus: 2 / 3 }).cpuCount).toBe(0.67);
    expect(usableCapacity(host, { cpus: 0.001 }).cpuCount).toBe(0.01);
  });
});

describe("how a process job is held to its limits", () => {
  const systemd = { pid1: "systemd", systemdRun: "/usr/bin/systemd-run", uid: 0 };

  it("asks systemd only where it is PID 1 and systemd-run is on PATH: root the system manager, others the system then their user manager", () => {
    expect(scopeManagersToTry({ ...systemd, pid1: "process_api" })).toEqual({ none: 'no systemd (PID 1 is "process_api")' });
    expect(scopeManagersToTry({ ...systemd, pid1: undefined })).toEqual({ none: "no systemd (PID 1 is unknown)" });
    expect(scopeManagersToTry({ ...systemd, systemdRun: undefined })).toEqual({ none: "no systemd-run on PATH" });
    expect(scopeManagersToTry(systemd)).toEqual({ systemdRun: "/usr/bin/systemd-run", managers: ["system"] });
    expect(scopeManagersToTry({ ...systemd, uid: 998 })).toEqual({ systemdRun: "/usr/bin/systemd-run", managers: ["system", "user"] });
  });

  it("takes the first manager whose probe worked, else says what each said", () => {
    expect(scopeSupportFrom(systemd, [{ manager: "system" }])).toEqual({ kind: "scope", systemdRun: "/usr/bin/systemd-run", manager: "system" });
    expect(scopeSupportFrom({ ...systemd, uid: 998 }, [{ manager: "system", failure: "Failed to start transient scope unit: Access denied" }, { manager: "user" }])).toMatchObject({ kind: "scope", manager: "user" });
    expect(scopeSupportFrom({ ...systemd, uid: 998 }, [{ manager: "system", failure: "Failed to start transient scope unit: Access denied" }, { manager: "user", failure: "Failed to connect to bus: No medium found" }])).toEqual({
      kind: "none",
      reason: "systemd-run --scope did not work for uid 998 (system manager: Failed to start transient scope unit: Access denied; user manager: Failed to connect to bus: No medium found)",
    });
    expect(scopeSupportFrom({ pid1: "sh", systemdRun: undefined, uid: 0 }, [])).toEqual({ kind: "none", reason: 'no systemd (PID 1 is "sh")' });
  });

  it("runs the wrapper under systemd-run --scope with CPUQuota and MemoryMax (no swap on top) in a unit named after the attempt", () => {
    const plan = processLimitPlan({ cpus: 1.5, memoryMiB: 8192 }, { kind: "scope", systemdRun: "/usr/bin/systemd-run", manager: "system" }, "0c4h2m9qx7", 2);
    expect(plan.limits).toEqual({ cpus: 1.5, memoryMiB: 8192, applied: "systemd scope labrig-job-0c4h2m9qx7-a2.scope" });
    expect(plan.launcher).toEqual([
      "/usr/bin/systemd-run", "--scope", "--quiet", "--collect", "--no-ask-password", "--unit", "labrig-job-0c4h2m9qx7-a2",
      "-p", "CPUQuota=150%", "-p", "MemoryMax=8192M", "-p", "MemorySwapMax=0", "--",
    ]);
    const [file, args] = wrappedArgv(["python", "train.py"], "/w/state/exit/x", plan.launcher);
    expect(file).toBe("/usr/bin/systemd-run");
    expect(args.slice(args.indexOf("--"))).toEqual(["--", "sh", "-c", expect.stringContaining('"$@"'), "labrig-job", "/w/state/exit/x", "python", "train.py"]);
  });

  it("applies only the limits the job carries, and asks the user manager with --user", () => {
    expect(scopeProperties({ cpus: 0.1 })).toEqual(["CPUQuota=10%"]);
    expect(scopeProperties({ memoryMiB: 1536.4 })).toEqual(["MemoryMax=1536M", "MemorySwapMax=0"]);
    expect(systemdRunArgv({ systemdRun: "systemd-run", manager: "user" }, "u", { cpus: 2 }).slice(0, 3)).toEqual(["systemd-run", "--user", "--scope"]);
    expect(scopeUnitName("a/b c", 1)).toBe("labrig-job-a_b_c-a1");
  });

  it("runs as before and says why where the host cannot hold it, or the job carries no limits", () => {
    expect(processLimitPlan({ cpus: 4, memoryMiB: 1024 }, { kind: "none", reason: 'no systemd (PID 1 is "tini")' }, "j", 1)).toEqual({
      limits: { cpus: 4, memoryMiB: 1024, applied: 'none: no systemd (PID 1 is "tini")' },
    });
    expect(processLimitPlan({}, { kind: "scope", systemdRun: "/usr/bin/systemd-run", manager: "system" }, "j", 1)).toEqual({
      limits: { cpus: null, memoryMiB: null, applied: "none: the job carries no cpus or memoryMiB" },
    });
    expect(appliedLimits({ cpus: 2 }, "container")).toEqual({ cpus: 2, memoryMiB: null, applied: "container" });
  });

  it("trusts a probe scope only when its own cgroup holds both limits", () => {
    const unit = "labrig-probe-1-1";
    const inScope = `0::/system.slice/${unit}.scope\n`;
    expect(judgeProbe({ cpus: PROBE_LIMITS.cpus, memoryBytes: PROBE_LIMITS.memoryMiB * MiB }, unit, inScope)).toBeUndefined();
    expect(judgeProbe({ memoryBytes: PROBE_LIMITS.memoryMiB * MiB }, unit, inScope)).toBe("its scopes lack the cpu controller");
    expect(judgeProbe({}, unit, inScope)).toBe("its scopes lack the cpu and memory controllers");
    expect(judgeProbe({ cpus: 0.5, memoryBytes: 256 * MiB }, unit, "0::/user.slice/session-1.scope\n")).toBe(`the probe did not run in ${unit}.scope`);
  });
});

describe("a container job's limits", () => {
  const job = { jobId: "j1", attempt: 1, hostId: "gpu-a", image: "busybox", command: "true", env: {}, gpuIndices: [], outputDir: "/w/jobs/j1/attempt-1" };

  it("become NanoCpus and Memory, with MemorySwap equal so swap does not bypass it", () => {
    const spec = buildContainerSpec({ ...job, cpus: 2.5, memoryMiB: 4096 });
    expect(spec.HostConfig).toMatchObject({ NanoCpus: 2_500_000_000, Memory: 4096 * MiB, MemorySwap: 4096 * MiB, Init: true });
    expect(containerLimits({ cpus: 1 / 3 })).toEqual({ NanoCpus: 333_333_333 });
    expect(containerLimitPlan({ cpus: 2.5, memoryMiB: 4096 })).toEqual({ cpus: 2.5, memoryMiB: 4096, applied: "container" });
  });

  it("are left out for a job that carries none (an older dispatcher)", () => {
    const host = buildContainerSpec(job).HostConfig!;
    expect(host).not.toHaveProperty("NanoCpus");
    expect(host).not.toHaveProperty("Memory");
    expect(host).not.toHaveProperty("MemorySwap");
    expect(containerLimitPlan({})).toEqual({ cpus: null, memoryMiB: null, applied: "none: the job carries no cpus or memoryMiB" });
  });
});
