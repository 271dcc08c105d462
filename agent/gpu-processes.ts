// Who is using each GPU: nvidia-smi's compute processes (GPU, pid, memory), each with its owner and
// command line from /proc, and the labrig job it belongs to (a process job's process group, or a
// container job's cgroup), so the dispatcher can tell a GPU its own job holds from one a person's
// notebook holds, and leave the latter alone.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import type { GpuProcess } from "../core/api.js";

export const COMPUTE_APPS_ARGS = ["--query-compute-apps=gpu_uuid,pid,used_memory", "--format=csv,noheader,nounits"];
/** More than this many processes on one GPU are not listed (the count of GPUs in use stays right). */
export const MAX_PROCESSES_PER_GPU = 16;
const MAX_COMMAND_CHARS = 160;

export interface ComputeApp {
  gpuUuid: string;
  pid: number;
  /** MiB; null where nvidia-smi cannot say ("[N/A]" under MIG or without permission). */
  usedMemoryMiB: number | null;
}

/** Parses `--query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits`. Pure. */
export function parseComputeApps(text: string): ComputeApp[] {
  const apps: ComputeApp[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const fields = raw.split(/,\s*/).map((f) => f.trim());
    if (fields.length < 3 || !fields[0]!.startsWith("GPU-")) continue;
    const pid = Number(fields[1]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const mem = Number(fields[2]);
    apps.push({ gpuUuid: fields[0]!, pid, usedMemoryMiB: fields[2] !== "" && Number.isFinite(mem) ? mem : null });
  }
  return apps;
}

/** What /proc says about a process; every field null when it is gone or not readable. */
export interface ProcessFacts {
  uid: number | null;
  pgid: number | null;
  /** The command line, its arguments joined by spaces. */
  command: string | null;
  cgroup: string | null;
}

export interface ProcReader {
  facts(pid: number): ProcessFacts;
  /** uid → user name. */
  userName(uid: number): string | null;
}

/** The running labrig jobs as the agent knows them. */
export interface OwnedJob {
  jobId: string;
  pgid?: number;
  containerId?: string;
}

/**
 * Joins the compute apps with /proc and the agent's jobs: the processes on each GPU (by uuid),
 * each marked with its labrig job or null. Pure given `proc`.
 */
export function describeGpuProcesses(apps: ComputeApp[], jobs: OwnedJob[], proc: ProcReader): Map<string, GpuProcess[]> {
  const byGpu = new Map<string, GpuProcess[]>();
  for (const app of apps) {
    const list = byGpu.get(app.gpuUuid) ?? [];
    byGpu.set(app.gpuUuid, list);
    if (list.length >= MAX_PROCESSES_PER_GPU) continue;
    const f = proc.facts(app.pid);
    const owner = jobs.find((j) => (j.pgid !== undefined && f.pgid === j.pgid) || (j.containerId !== undefined && f.cgroup !== null && f.cgroup.includes(j.containerId)));
    list.push({
      pid: app.pid,
      usedMemoryMiB: app.usedMemoryMiB,
      user: f.uid === null ? null : (proc.userName(f.uid) ?? String(f.uid)),
      command: f.command === null ? null : f.command.length > MAX_COMMAND_CHARS ? `${f.command.slice(0, MAX_COMMAND_CHARS - 1)}…` : f.command,
      jobId: owner?.jobId ?? null,
    });
  }
  return byGpu;
}

/** /proc/PID/stat's fields after the command name (which may hold spaces and parentheses). */
export function parseStatPgid(stat: string): number | null {
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is the state, then ppid, pgrp.
  const pgid = Number(rest[2]);
  return Number.isInteger(pgid) ? pgid : null;
}

/** uid → name from /etc/passwd's text. Pure. */
export function parsePasswd(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split("\n")) {
    const [name, , uid] = line.split(":");
    if (name && uid !== undefined && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), name);
  }
  return names;
}

/** The real /proc and /etc/passwd. */
export function linuxProcReader(): ProcReader {
  let users: Map<number, string> | undefined;
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return null;
    }
  };
  return {
    facts(pid) {
      const status = read(`/proc/${pid}/status`);
      const uid = status?.match(/^Uid:\s+(\d+)/m)?.[1];
      const stat = read(`/proc/${pid}/stat`);
      const cmdline = read(`/proc/${pid}/cmdline`);
      return {
        uid: uid === undefined ? null : Number(uid),
        pgid: stat === null ? null : parseStatPgid(stat),
        command: cmdline ? cmdline.replace(/\0+$/, "").split("\0").join(" ") : null,
        cgroup: read(`/proc/${pid}/cgroup`),
      };
    },
    userName(uid) {
      users ??= parsePasswd(read("/etc/passwd") ?? "");
      return users.get(uid) ?? null;
    },
  };
}

/** Runs nvidia-smi's compute-apps query; an error or a missing driver is no processes. */
export function probeComputeApps(nvidiaSmi = "nvidia-smi", timeoutMs = 10_000): Promise<ComputeApp[]> {
  return new Promise((resolve) => {
    execFile(nvidiaSmi, COMPUTE_APPS_ARGS, { timeout: timeoutMs, encoding: "utf8" }, (_err, stdout) => resolve(parseComputeApps(stdout ?? "")));
  });
}
