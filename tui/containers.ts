// The Containers view's data: labrig's job containers and the dispatcher container on each host's
// Docker engine, with CPU and memory from one stats sample each. The local engine comes from
// DOCKER_HOST (or the default socket); with an inventory, each host's engine is reached over SSH
// (best effort: a host that cannot be reached shows its error instead of rows).
import Docker from "dockerode";
import { errorMessage } from "../core/errors.js";
import type { SshTarget } from "../provision/ssh-remote.js";
import type { DockerConnection } from "../provision/steps/dispatcher-container-docker.js";
import type { ContainerHost, ContainerRow } from "./state.js";
import { CONTAINER_LABELS } from "../core/labels.js";

export interface ContainerSource {
  host: string;
  via: string;
  list(): Promise<ContainerRow[]>;
}

export interface ListedContainer {
  Id: string;
  Names?: string[];
  Image?: string;
  State?: string;
  Status?: string;
  Labels?: Record<string, string>;
}

/** Whether a listed container is labrig's, and as what. */
export function labContainerRole(c: ListedContainer): { role: ContainerRow["role"]; jobId: string | null } | null {
  const labels = c.Labels ?? {};
  if (labels[CONTAINER_LABELS.job] !== undefined) return { role: "job", jobId: labels[CONTAINER_LABELS.job] || null };
  if (labels[CONTAINER_LABELS.role] === "dispatcher") return { role: "dispatcher", jobId: null };
  // The compose files name the service "dispatcher" and run a labrig image.
  if (labels["com.docker.compose.service"] === "dispatcher" && /labrig/.test(c.Image ?? "")) return { role: "dispatcher", jobId: null };
  return null;
}

/** The parts of `docker stats` (one sample, stream=false) used here. */
export interface StatsSample {
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
}

/** CPU as % of one core (like `docker stats`) and memory without the page cache. */
export function usageFromStats(s: StatsSample): { cpuPct: number | null; memUsedBytes: number | null; memLimitBytes: number | null } {
  const cpu = s.cpu_stats;
  const pre = s.precpu_stats;
  let cpuPct: number | null = null;
  if (cpu?.cpu_usage?.total_usage !== undefined && pre?.cpu_usage?.total_usage !== undefined && cpu.system_cpu_usage !== undefined && pre.system_cpu_usage !== undefined) {
    const cpuDelta = cpu.cpu_usage.total_usage - pre.cpu_usage.total_usage;
    const sysDelta = cpu.system_cpu_usage - pre.system_cpu_usage;
    const cpus = cpu.online_cpus ?? cpu.cpu_usage.percpu_usage?.length ?? 1;
    cpuPct = sysDelta > 0 && cpuDelta >= 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0;
  }
  const mem = s.memory_stats;
  let memUsedBytes: number | null = null;
  if (mem?.usage !== undefined) {
    // cgroup v2 reports inactive_file, v1 total_inactive_file (or cache): both are reclaimable.
    const cache = mem.stats?.inactive_file ?? mem.stats?.total_inactive_file ?? mem.stats?.cache ?? 0;
    memUsedBytes = Math.max(0, mem.usage - cache);
  }
  return { cpuPct, memUsedBytes, memLimitBytes: mem?.limit ?? null };
}

/** Lists labrig's containers on one engine, with a stats sample for each running one. */
export async function listLabContainers(docker: Docker): Promise<ContainerRow[]> {
  const all = (await docker.listContainers({ all: true })) as ListedContainer[];
  const rows: ContainerRow[] = [];
  await Promise.all(
    all.map(async (c) => {
      const role = labContainerRole(c);
      if (!role) return;
      const row: ContainerRow = {
        id: c.Id.slice(0, 12),
        name: (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, ""),
        image: c.Image ?? "",
        state: c.State ?? "unknown",
        status: c.Status ?? "",
        role: role.role,
        jobId: role.jobId,
        cpuPct: null,
        memUsedBytes: null,
        memLimitBytes: null,
      };
      if (row.state === "running") {
        try {
          Object.assign(row, usageFromStats((await docker.getContainer(c.Id).stats({ stream: false })) as StatsSample));
        } catch {
          /* it stopped between the listing and the sample: keep the row without figures */
        }
      }
      rows.push(row);
    }),
  );
  return rows.sort((a, b) => (a.role === b.role ? a.name.localeCompare(b.name) : a.role === "dispatcher" ? -1 : 1));
}

/** The engine DOCKER_HOST names, or the default socket. */
export function localSource(env: NodeJS.ProcessEnv = process.env): ContainerSource {
  const docker = new Docker();
  return { host: "local", via: env.DOCKER_HOST ? `DOCKER_HOST ${env.DOCKER_HOST}` : "/var/run/docker.sock", list: () => listLabContainers(docker) };
}

/**
 * An inventory host's engine over SSH, the same path provisioning uses (connectDockerOverSsh: jump
 * hosts, `docker system dial-stdio`, sudo where the socket is root-only), but only to a host whose
 * key provisioning pinned in knownHostsFile: the dashboard pins nothing itself. One SSH connection
 * is kept between polls and made again after a failure.
 */
export function sshSource(target: SshTarget, knownHostsFile: string): ContainerSource {
  let conn: Promise<DockerConnection> | undefined;
  const list = async () => {
    // Loaded on first use: a dashboard without an inventory never needs ssh2.
    conn ??= import("../provision/steps/dispatcher-container-docker.js").then(({ connectDockerOverSsh }) =>
      connectDockerOverSsh(target, { knownHostsFile, pinNew: false, connectTimeoutMs: 10_000 }),
    );
    const current = conn;
    try {
      return await listLabContainers((await current).docker);
    } catch (err) {
      if (conn === current) conn = undefined;
      await current.then((c) => c.close()).catch(() => undefined);
      throw err;
    }
  };
  const jumps = target.jumps?.length ? ` via ${target.jumps.map((j) => j.address).join(" → ")}` : "";
  return { host: target.host, via: `ssh ${target.user}@${target.address}:${target.port}${jumps}`, list };
}

/**
 * One source per inventory host, loaded lazily so the dashboard does not need the inventory. Host
 * keys must be the ones provisioning pinned in `knownHostsFile` (default ~/.labrig/known_hosts).
 */
export async function inventorySources(inventoryPath: string, knownHostsFile?: string): Promise<ContainerSource[]> {
  const { loadInventory } = await import("../provision/inventory.js");
  const { defaultKnownHostsFile } = await import("../provision/known-hosts.js");
  const { sshTarget } = await import("../provision/ssh-remote.js");
  const file = knownHostsFile ?? defaultKnownHostsFile();
  return loadInventory(inventoryPath).hosts.map((h) => sshSource(sshTarget(h), file));
}

/** Asks every source at once; one that fails reports its error in place of its rows. */
export async function pollSources(sources: ContainerSource[], now: Date = new Date()): Promise<ContainerHost[]> {
  return Promise.all(
    sources.map(async (src): Promise<ContainerHost> => {
      try {
        return { host: src.host, via: src.via, rows: await src.list(), error: null, updatedAt: now.toISOString() };
      } catch (err) {
        return { host: src.host, via: src.via, rows: [], error: describeDockerError(err), updatedAt: now.toISOString() };
      }
    }),
  );
}

function describeDockerError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ECONNREFUSED") return `no Docker engine answers (${code}); set DOCKER_HOST or start Docker`;
  return errorMessage(err);
}
