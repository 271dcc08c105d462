// How the CPU cores and memory the dispatcher reserved for a job are held to on this host. A
// container gets Docker's NanoCpus/Memory (container-spec.ts). A process job runs in a transient
// systemd scope (`systemd-run --scope`, CPUQuota and MemoryMax) where systemd is PID 1 and lets
// the agent make scopes; elsewhere it runs as before and run.json says why nothing holds it.
// systemd-run --scope execs the command in place, so the job keeps its pid and stays the leader
// of its own process group: stopping the group and re-adoption after a restart work as without.
//
// The decision is pure over facts read at the edge (PID 1's name, systemd-run on PATH, the uid)
// and one probe scope made at the agent's start; the bottom of the file reads and probes.
import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { cgroupLimits, parseProcCgroup, readFileOrUndefined } from "./host-stats.js";

/** What the dispatcher reserved for a job; either may be absent (older dispatchers send neither). */
export interface JobLimits {
  cpus?: number;
  memoryMiB?: number;
}

/** The `limits` of run.json. `applied`: "container", "systemd scope <unit>", or "none: <why>". */
export interface AppliedLimits {
  cpus: number | null;
  memoryMiB: number | null;
  applied: string;
}

/** What the agent learns about the host once: is systemd PID 1, where is systemd-run, who are we. */
export interface ScopeFacts {
  /** /proc/1/comm, trimmed; undefined when unreadable. */
  pid1: string | undefined;
  /** systemd-run's path on PATH, undefined when missing. */
  systemdRun: string | undefined;
  /** The agent's uid (undefined off POSIX). */
  uid: number | undefined;
}

export type ScopeManager = "system" | "user";

/** How process jobs are held to their limits on this host. */
export type ScopeSupport = { kind: "scope"; systemdRun: string; manager: ScopeManager } | { kind: "none"; reason: string };

/**
 * The systemd managers worth asking for scopes, in order, or why there is none. Root asks the
 * system manager. Another user asks it too (a polkit rule may let it manage units), then its
 * own user manager (where one runs for it, with the cpu and memory controllers delegated).
 */
export function scopeManagersToTry(f: ScopeFacts): { systemdRun: string; managers: ScopeManager[] } | { none: string } {
  if (f.pid1 !== "systemd") return { none: `no systemd (PID 1 is ${f.pid1 ? `"${f.pid1}"` : "unknown"})` };
  if (!f.systemdRun) return { none: "no systemd-run on PATH" };
  return { systemdRun: f.systemdRun, managers: f.uid === 0 ? ["system"] : ["system", "user"] };
}

/** The scope's unit name for a job attempt (systemd-run adds `.scope`); ids are base32 already, anything else becomes `_`. */
export function scopeUnitName(jobId: string, attempt: number): string {
  return `labrig-job-${jobId.replace(/[^A-Za-z0-9_.-]/g, "_")}-a${attempt}`;
}

/** systemd's properties for the limits: CPUQuota in whole percent of one core, MemoryMax in MiB with no swap on top (as the container's MemorySwap = Memory). */
export function scopeProperties(limits: JobLimits): string[] {
  const props: string[] = [];
  if (limits.cpus !== undefined) props.push(`CPUQuota=${Math.max(1, Math.round(limits.cpus * 100))}%`);
  if (limits.memoryMiB !== undefined) props.push(`MemoryMax=${Math.max(1, Math.round(limits.memoryMiB))}M`, "MemorySwapMax=0");
  return props;
}

/** The argv that starts `command` in a scope (the command follows `--`). */
export function systemdRunArgv(support: { systemdRun: string; manager: ScopeManager }, unit: string, limits: JobLimits): string[] {
  return [
    support.systemdRun,
    ...(support.manager === "user" ? ["--user"] : []),
    "--scope", "--quiet", "--collect", "--no-ask-password",
    "--unit", unit,
    ...scopeProperties(limits).flatMap((p) => ["-p", p]),
    "--",
  ];
}

export function hasLimits(limits: JobLimits): boolean {
  return limits.cpus !== undefined || limits.memoryMiB !== undefined;
}

/** What run.json records: the job's figures and how they are held (`applied`). */
export function appliedLimits(limits: JobLimits, applied: string): AppliedLimits {
  return { cpus: limits.cpus ?? null, memoryMiB: limits.memoryMiB ?? null, applied };
}

const NO_LIMITS = "none: the job carries no cpus or memoryMiB";

/** A container job: Docker holds whatever the job carries. */
export function containerLimitPlan(limits: JobLimits): AppliedLimits {
  return appliedLimits(limits, hasLimits(limits) ? "container" : NO_LIMITS);
}

/** A process job: the argv to put before its wrapper (none: run as it is) and what run.json says. */
export function processLimitPlan(limits: JobLimits, support: ScopeSupport, jobId: string, attempt: number): { launcher?: string[]; limits: AppliedLimits } {
  if (support.kind === "none") return { limits: appliedLimits(limits, `none: ${support.reason}`) };
  if (!hasLimits(limits)) return { limits: appliedLimits(limits, NO_LIMITS) };
  const unit = scopeUnitName(jobId, attempt);
  return { launcher: systemdRunArgv(support, unit, limits), limits: appliedLimits(limits, `systemd scope ${unit}.scope`) };
}

/** The probe's limits, and whether a scope made with them shows them in its own cgroup. */
export const PROBE_LIMITS: Required<JobLimits> = { cpus: 0.5, memoryMiB: 256 };

/**
 * Judges a probe scope from the cgroup its process found itself in (`/proc/self/cgroup` printed
 * inside it) and the limits read from that cgroup alone: the scope must hold both, else systemd
 * made it without the controllers (a user manager they were not delegated to).
 */
export function judgeProbe(limits: { cpus?: number; memoryBytes?: number }, unit: string, procCgroup: string): string | undefined {
  if (!procCgroup.includes(`/${unit}.scope`)) return `the probe did not run in ${unit}.scope`;
  const missing: string[] = [];
  if (limits.cpus === undefined || Math.abs(limits.cpus - PROBE_LIMITS.cpus) > 0.01) missing.push("cpu");
  if (limits.memoryBytes === undefined || limits.memoryBytes > PROBE_LIMITS.memoryMiB * 1024 * 1024) missing.push("memory");
  return missing.length > 0 ? `its scopes lack the ${missing.join(" and ")} controller${missing.length > 1 ? "s" : ""}` : undefined;
}

/** One line for the log and run.json from what the probes said. */
export function scopeSupportFrom(facts: ScopeFacts, probes: { manager: ScopeManager; failure?: string }[]): ScopeSupport {
  const plan = scopeManagersToTry(facts);
  if ("none" in plan) return { kind: "none", reason: plan.none };
  const ok = probes.find((p) => p.failure === undefined);
  if (ok) return { kind: "scope", systemdRun: plan.systemdRun, manager: ok.manager };
  const why = probes.map((p) => `${p.manager} manager: ${p.failure}`).join("; ");
  return { kind: "none", reason: `systemd-run --scope did not work for uid ${facts.uid ?? "?"} (${why || "not tried"})` };
}

// ---- the edge ----

/** The first executable `name` on PATH. */
export function findOnPath(name: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export function readScopeFacts(): ScopeFacts {
  let pid1: string | undefined;
  try {
    pid1 = readFileSync("/proc/1/comm", "utf8").trim();
  } catch {
    pid1 = undefined;
  }
  return { pid1, systemdRun: findOnPath("systemd-run"), uid: process.getuid?.() };
}

let probeSeq = 0;

/**
 * Makes one scope with PROBE_LIMITS around `sh -c 'cat /proc/self/cgroup; read x'`, reads the
 * limits of the cgroup it reports (while it waits on stdin), then lets it end. Resolves with why
 * it failed, undefined when scopes work.
 */
export function probeScope(systemdRun: string, manager: ScopeManager, timeoutMs = 10_000): Promise<string | undefined> {
  const unit = `labrig-probe-${process.pid}-${++probeSeq}`;
  const [file, ...args] = systemdRunArgv({ systemdRun, manager }, unit, PROBE_LIMITS);
  return new Promise((resolve) => {
    let out = "";
    let err = "";
    let verdict: string | undefined | null = null;
    const child = spawn(file!, [...args, "sh", "-c", "cat /proc/self/cgroup; read x"], { stdio: ["pipe", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      verdict ??= `systemd-run did not finish within ${timeoutMs / 1000} s`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      // The whole file is out once its v2 line (the last, or the only one) is.
      if (verdict !== null || !/(^|\n)0::[^\n]*\n/.test(out)) return;
      const limits = cgroupLimits(parseProcCgroup(out), readFileOrUndefined, { ownOnly: true });
      verdict = judgeProbe(limits, unit, out);
      child.stdin.end();
    });
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.stdin.on("error", () => undefined);
    child.once("error", (e) => {
      clearTimeout(timer);
      resolve(`could not run ${file}: ${e.message}`);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      if (verdict !== null) return resolve(verdict);
      const said = err.trim().split("\n")[0];
      resolve(code === 0 ? "the probe printed no cgroup" : `${said || `exit ${code}`}`);
    });
  });
}

/** Reads the facts and probes the managers worth asking, first that works wins. */
export async function detectScopeSupport(): Promise<ScopeSupport> {
  const facts = readScopeFacts();
  const plan = scopeManagersToTry(facts);
  if ("none" in plan) return scopeSupportFrom(facts, []);
  const probes: { manager: ScopeManager; failure?: string }[] = [];
  for (const manager of plan.managers) {
    const failure = await probeScope(plan.systemdRun, manager);
    probes.push({ manager, failure });
    if (failure === undefined) break;
  }
  return scopeSupportFrom(facts, probes);
}
