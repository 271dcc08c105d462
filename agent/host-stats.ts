// The host's figures the agent heartbeats besides its GPUs: CPU busy % since the last reading,
// the cores and memory jobs may use, and free disk where job outputs go. An agent inside a cgroup
// with a CPU or memory limit (a container, a slice with CPUQuota/MemoryMax) reports that limit
// rather than the machine's, so the dispatcher does not reserve what its jobs cannot have.
import * as fs from "node:fs";
import * as os from "node:os";

export interface HostStats {
  cpuPct?: number;
  /** CPU cores jobs may use: the cgroup's quota when one is set, else the CPUs this process may run on. */
  cpuCount: number;
  memoryUsedMiB: number;
  /** The machine's memory, or the cgroup's limit when that is lower. */
  memoryTotalMiB: number;
  diskFreeGiB?: number;
}

interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/** Busy share of all CPUs between two readings, 0..100; undefined when no time passed. */
export function cpuBusyPct(before: CpuTimes, after: CpuTimes): number | undefined {
  const total = after.total - before.total;
  if (total <= 0) return undefined;
  return Math.round(((total - (after.idle - before.idle)) / total) * 1000) / 10;
}

// ---- cgroups (pure: file contents in, figures out) ----

/** Where a process sits: its cgroup v2 path (`0::/…`) and its v1 path per controller (`4:memory:/…`). */
export interface CgroupMembership {
  v2?: string;
  v1: Record<string, string>;
}

/** Parses /proc/<pid>/cgroup. On a hybrid host both kinds of line are there. */
export function parseProcCgroup(text: string): CgroupMembership {
  const m: CgroupMembership = { v1: {} };
  for (const line of text.split("\n")) {
    const match = /^(\d+):([^:]*):(.+)$/.exec(line.trim());
    if (!match) continue;
    const [, id, controllers = "", path = "/"] = match;
    if (id === "0" && controllers === "") m.v2 = path;
    else for (const c of controllers.split(",")) if (c) m.v1[c] = path;
  }
  return m;
}

/** cgroup v2 `cpu.max` ("150000 100000" → 1.5 cores; "max 100000" → no limit). */
export function parseCpuMax(text: string | undefined): number | undefined {
  const [quota, period] = (text ?? "").trim().split(/\s+/);
  return quotaCores(quota, period);
}

/** cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (a quota of -1: no limit). */
export function parseCfsQuota(quota: string | undefined, period: string | undefined): number | undefined {
  return quotaCores(quota?.trim(), period?.trim());
}

function quotaCores(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota);
  const p = Number(period ?? "100000");
  if (!quota || quota === "max" || !Number.isFinite(q) || q <= 0 || !Number.isFinite(p) || p <= 0) return undefined;
  return q / p;
}

/** v2 `memory.max` or v1 `memory.limit_in_bytes` in bytes; "max" (v2) → no limit. v1's "no limit" is a huge number, which the host's total undercuts. */
export function parseMemoryMax(text: string | undefined): number | undefined {
  const t = (text ?? "").trim();
  if (t === "" || t === "max") return undefined;
  const n = Number(t);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** "/a/b" → ["/a/b", "/a", "/"]: a limit anywhere above a cgroup holds for it too. */
export function cgroupAncestors(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push("/" + parts.slice(0, i).join("/"));
  return out;
}

export interface CgroupLimits {
  /** Cores, from the tightest quota on the way up. */
  cpus?: number;
  memoryBytes?: number;
  /** What the cgroup whose memory limit is the tightest uses now (its memory.current / usage_in_bytes). */
  memoryUsedBytes?: number;
}

/** Reads a file's text, undefined when it is not there (or not readable). */
export type FileReader = (path: string) => string | undefined;

/**
 * The CPU and memory limits on a process's cgroup, read through `read` from the cgroup file
 * system at `root`: v2 where the unified hierarchy has the controllers, else the v1 `cpu` and
 * `memory` hierarchies. `ownOnly` looks at the process's own cgroup and not its ancestors.
 */
export function cgroupLimits(m: CgroupMembership, read: FileReader, opts: { root?: string; ownOnly?: boolean } = {}): CgroupLimits {
  const root = opts.root ?? "/sys/fs/cgroup";
  const levels = (path: string) => (opts.ownOnly ? [path] : cgroupAncestors(path));
  const dir = (base: string, path: string) => (path === "/" ? base : base + path);
  const out: CgroupLimits = {};
  const cpu = (cores: number | undefined) => {
    if (cores !== undefined && (out.cpus === undefined || cores < out.cpus)) out.cpus = cores;
  };
  const memory = (bytes: number | undefined, used: string | undefined) => {
    if (bytes === undefined || (out.memoryBytes !== undefined && bytes >= out.memoryBytes)) return;
    out.memoryBytes = bytes;
    const u = parseMemoryMax(used);
    if (u !== undefined) out.memoryUsedBytes = u;
    else delete out.memoryUsedBytes;
  };
  // The unified hierarchy counts where it holds the controllers (pure v2, or a hybrid host's v2
  // part, which holds none: then cpu.max is absent and v1 answers).
  let v2cpu = false;
  let v2memory = false;
  if (m.v2 !== undefined) {
    for (const p of levels(m.v2)) {
      const d = dir(root, p);
      const cpuMax = read(`${d}/cpu.max`);
      if (cpuMax !== undefined) v2cpu = true;
      cpu(parseCpuMax(cpuMax));
      const memMax = read(`${d}/memory.max`);
      if (memMax !== undefined) v2memory = true;
      memory(parseMemoryMax(memMax), read(`${d}/memory.current`));
    }
  }
  const v1cpu = m.v1.cpu;
  if (!v2cpu && v1cpu !== undefined) {
    for (const p of levels(v1cpu)) {
      const d = dir(`${root}/cpu`, p);
      cpu(parseCfsQuota(read(`${d}/cpu.cfs_quota_us`), read(`${d}/cpu.cfs_period_us`)));
    }
  }
  const v1memory = m.v1.memory;
  if (!v2memory && v1memory !== undefined) {
    for (const p of levels(v1memory)) {
      const d = dir(`${root}/memory`, p);
      memory(parseMemoryMax(read(`${d}/memory.limit_in_bytes`)), read(`${d}/memory.usage_in_bytes`));
    }
  }
  return out;
}

/**
 * Cores and memory jobs may use, from the host's figures and the cgroup's limits (the lower of
 * each). Cores keep two decimals: a quota of 150% is 1.5.
 */
export function usableCapacity(host: { cpus: number; memoryBytes: number; memoryUsedBytes: number }, limits: CgroupLimits): { cpuCount: number; memoryTotalBytes: number; memoryUsedBytes: number } {
  // The kernel's smallest quota is 1 ms a period; the heartbeat takes only a positive count.
  const cpuCount = Math.max(0.01, Math.round(Math.min(host.cpus, limits.cpus ?? Infinity) * 100) / 100);
  if (limits.memoryBytes !== undefined && limits.memoryBytes < host.memoryBytes) {
    return { cpuCount, memoryTotalBytes: limits.memoryBytes, memoryUsedBytes: Math.min(limits.memoryUsedBytes ?? host.memoryUsedBytes, limits.memoryBytes) };
  }
  return { cpuCount, memoryTotalBytes: host.memoryBytes, memoryUsedBytes: host.memoryUsedBytes };
}

// ---- the edge ----

export const readFileOrUndefined: FileReader = (path) => {
  try {
    return fs.readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
};

/** The limits on process `pid`'s cgroup (this process by default); none where /proc or the cgroup files are not there. */
export function processCgroupLimits(pid: number | "self" = "self", opts: { ownOnly?: boolean } = {}): CgroupLimits {
  const text = readFileOrUndefined(`/proc/${pid}/cgroup`);
  return text === undefined ? {} : cgroupLimits(parseProcCgroup(text), readFileOrUndefined, opts);
}

/** The CPUs this process may run on (availableParallelism came in Node 18.14). */
export function onlineCpus(): number {
  return os.availableParallelism?.() ?? os.cpus().length;
}

export class HostStatsReader {
  private last = cpuTimes();

  constructor(private readonly diskPath: string) {}

  read(): HostStats {
    const now = cpuTimes();
    const cpuPct = cpuBusyPct(this.last, now);
    this.last = now;
    const MiB = 1024 * 1024;
    let diskFreeGiB: number | undefined;
    try {
      // statfs came in Node 18.15; older Nodes leave the figure out.
      const s = fs.statfsSync?.(this.diskPath);
      if (s) diskFreeGiB = Math.round(((s.bavail * s.bsize) / 1024 ** 3) * 100) / 100;
    } catch {
      /* not here: leave it out */
    }
    const total = os.totalmem();
    // Read every time: a limit can change under a running agent (systemctl set-property).
    const usable = usableCapacity({ cpus: onlineCpus(), memoryBytes: total, memoryUsedBytes: total - os.freemem() }, processCgroupLimits());
    return {
      cpuPct,
      cpuCount: usable.cpuCount,
      memoryUsedMiB: Math.round(usable.memoryUsedBytes / MiB),
      memoryTotalMiB: Math.round(usable.memoryTotalBytes / MiB),
      diskFreeGiB,
    };
  }
}
