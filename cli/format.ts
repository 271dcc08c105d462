// Turns jobs and devices into the plain-text tables and detail blocks the CLI prints. Pure:
// callers pass "now" so output is the same in tests as in a terminal.
import { describeCode } from "../core/code.js";
import { type Device, isTerminalJobState, type Job, type SlurmView } from "../core/api.js";
import { commandLine } from "../core/shell.js";
import { visible } from "../core/visible.js";

/** Columns padded to their widest cell, separated by two spaces; no trailing spaces. Cells come from the API: control characters are made visible. */
export function formatTable(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map(visible));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** 42s, 3m05s, 2h04m, 3d02h: two units at most, enough to read at a glance. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  const d = Math.floor(h / 24);
  return `${d}d${String(h % 24).padStart(2, "0")}h`;
}

/** How long a job ran (or has been running); "-" before it started. */
export function jobRuntime(job: Job, now: number): string {
  if (!job.startedAt) return "-";
  const end = job.endedAt ? Date.parse(job.endedAt) : now;
  return formatDuration(end - Date.parse(job.startedAt));
}

export function formatCommand(command: string | string[]): string {
  return commandLine(command);
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/**
 * How an ended job ended, to follow its state: ", exit code 3", " (lost)", ", exit code 143
 * (cancelled by the CLI)". The reason is left out where it only repeats the exit code.
 */
export function jobOutcome(j: Job): string {
  const ended = isTerminalJobState(j.state);
  const exit = ended && j.exitCode !== null ? `, exit code ${j.exitCode}` : "";
  const reason = j.reason && j.reason !== `exit code ${j.exitCode}` ? ` (${j.reason})` : "";
  return `${exit}${reason}`;
}

/** "2", or "2 (retried automatically up to 1 time if its host is lost)": never "2 of at most 1" after a manual retry. */
export function describeAttempt(j: Job): string {
  if (j.maxRetries === 0) return String(j.attempt);
  return `${j.attempt} (retried automatically up to ${j.maxRetries} time${j.maxRetries === 1 ? "" : "s"} if its host is lost)`;
}

export function formatJobsTable(jobs: Job[], now: number): string {
  if (jobs.length === 0) return "no jobs";
  return formatTable(
    ["ID", "NAME", "PROJECT", "OWNER", "STATE", "GPUS", "HOST", "AGE", "RUNTIME"],
    jobs.map((j) => [
      j.id,
      truncate(j.name, 32),
      truncate(j.project, 20),
      truncate(j.owner ?? "-", 16),
      j.state + (j.attempt > 1 ? ` (attempt ${j.attempt})` : ""),
      j.gpuIndices.length > 0 ? `${j.gpus} [${j.gpuIndices.join(",")}]` : String(j.gpus),
      j.hostId ?? "-",
      formatDuration(now - Date.parse(j.createdAt)),
      jobRuntime(j, now),
    ]),
  );
}

export function formatDevicesTable(devices: Device[], now: number): string {
  if (devices.length === 0) return "no devices registered";
  return formatTable(
    ["HOST", "STATUS", "GPUS", "FREE", "JOBS", "GPU MODELS", "LAST SEEN"],
    devices.map((d) => [
      d.hostId,
      d.status + (d.draining && d.status !== "draining" ? " (draining)" : ""),
      String(d.gpus.length),
      String(d.freeGpus),
      String(d.runningJobs.length),
      gpuModels(d) || (d.gpuProblem ? `none: ${truncate(d.gpuProblem, 40)}` : "none"),
      d.lastSeenAt ? `${formatDuration(now - Date.parse(d.lastSeenAt))} ago` : "never",
    ]),
  );
}

/**
 * Slurm's view, for a lab whose scheduler is Slurm: its nodes (state, CPUs, memory, GPUs, why a node
 * is down) and its queue, headed so that no one takes it for labrig's own table above it.
 */
export function formatSlurmView(view: SlurmView, now: number): string {
  const read = view.readAt ? `read from the controller ${formatDuration(now - Date.parse(view.readAt))} ago` : "not read yet";
  const lines = [`Slurm schedules this lab (${read})`];
  if (view.error) lines.push(`  the last read failed${view.readAt ? "; this is the view before it" : ""}: ${visible(view.error)}`);
  if (view.nodes.length > 0)
    lines.push(
      formatTable(
        ["NODE", "SLURM STATE", "PARTITIONS", "CPUS ALLOC/TOTAL", "MEMORY", "GRES", "REASON"],
        view.nodes.map((n) => [n.name, n.state, n.partitions.join(","), `${n.cpus.allocated}/${n.cpus.total}`, `${Math.round(n.memoryMiB / 1024)} GiB`, n.gres || "-", n.reason || "-"]),
      ),
    );
  else if (view.readAt) lines.push("no nodes in sinfo");
  if (view.readAt) {
    lines.push("");
    lines.push(
      view.queue.length === 0
        ? "Slurm's queue is empty"
        : formatTable(
            ["SLURM JOB", "STATE", "NODES / REASON", "TIME", "LIMIT", "TRES/NODE", "NAME"],
            view.queue.map((j) => [j.id, j.state, j.nodes || `(${j.reason})`, j.timeUsed, j.timeLimit, j.tresPerNode || "-", j.name]),
          ),
    );
  }
  return lines.join("\n");
}

/**
 * Who is on each GPU, one row a process, for the GPUs whose agent reports it: a labrig job's, or
 * one outside labrig, which keeps the GPU from the queue until it ends. "" when none runs anything.
 */
export function formatGpuProcessesTable(devices: Device[]): string {
  const rows: string[][] = [];
  for (const d of devices) {
    for (const g of d.gpus) {
      for (const p of g.processes ?? []) {
        rows.push([
          d.hostId,
          String(g.index),
          p.jobId ? `job ${p.jobId}` : "not labrig (GPU busy)",
          String(p.pid),
          p.user ?? "?",
          p.usedMemoryMiB === null ? "-" : `${(p.usedMemoryMiB / 1024).toFixed(1)} GiB`,
          truncate(p.command ?? "?", 60),
        ]);
      }
    }
  }
  return rows.length ? formatTable(["HOST", "GPU", "USED BY", "PID", "USER", "MEMORY", "COMMAND"], rows) : "";
}

/** "2× A100-SXM4-80GB, 1× RTX 4090", vendor prefix dropped. */
export function gpuModels(d: Device): string {
  const counts = new Map<string, number>();
  for (const g of d.gpus) {
    const name = g.name.replace(/^NVIDIA /, "");
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].map(([name, n]) => `${n}× ${name}`).join(", ");
}

/** One line of a job's history as GET /api/jobs/{id} returns it. */
export interface JobTransition {
  attempt: number;
  fromState: string | null;
  toState: string;
  hostId: string | null;
  message: string | null;
  at: string;
}

export function formatJobDetail(job: Job & { history?: JobTransition[] }, now: number): string {
  const rows: [string, string][] = [
    ["id", job.id],
    ["name", job.name],
    ["project", job.project],
    ["owner", job.owner ?? "-"],
    ["state", job.state + (job.reason && job.reason !== `exit code ${job.exitCode}` ? ` (${job.reason})` : "")],
    ["attempt", describeAttempt(job)],
    ["command", formatCommand(job.command)],
    ["gpus", `${job.gpus}${job.gpuIndices.length ? ` (indices ${job.gpuIndices.join(",")})` : ""}`],
    ["host", job.hostId ?? "-"],
    ["priority", job.priority],
  ];
  if (job.image) rows.push(["image", job.image]);
  if (job.workdir) rows.push(["workdir", job.code ? `${job.workdir} (inside the code snapshot)` : job.workdir]);
  if (job.code) rows.push(["code", `${describeCode(job.code)}; labrig code get ${job.id} gives it back`]);
  if (job.timeoutS) rows.push(["timeout", `${job.timeoutS}s`]);
  const env = Object.entries(job.env);
  if (env.length) rows.push(["env", env.map(([k, v]) => `${k}=${v}`).join(" ")]);
  const c = job.constraints;
  const cs = [
    c.hostId && `host=${c.hostId}`,
    ...Object.entries(c.labels ?? {}).map(([k, v]) => `${k}=${v}`),
    c.gpuName && `gpu~${c.gpuName}`,
    c.minMemoryMiB !== undefined && `memory>=${c.minMemoryMiB}MiB`,
  ].filter(Boolean);
  if (cs.length) rows.push(["constraints", cs.join(" ")]);
  if (job.cpus !== undefined || job.memoryMiB !== undefined) rows.push(["holds", `${job.cpus ?? "?"} CPU cores, ${job.memoryMiB !== undefined ? `${Math.round((job.memoryMiB / 1024) * 10) / 10} GiB` : "?"} memory`]);
  if (job.waiting) rows.push(["waiting", job.waiting]);
  if (job.exitCode !== null) rows.push(["exit code", String(job.exitCode)]);
  rows.push(["created", `${job.createdAt} (${formatDuration(now - Date.parse(job.createdAt))} ago)`]);
  if (job.startedAt) rows.push(["started", job.startedAt]);
  if (job.endedAt) rows.push(["ended", job.endedAt]);
  if (job.startedAt) rows.push(["runtime", jobRuntime(job, now)]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${visible(v)}`);
  if (job.history && job.history.length > 0) {
    lines.push("", "history:");
    for (const h of job.history) {
      const from = h.fromState ? `${h.fromState} → ` : "";
      lines.push(visible(`  ${h.at}  #${h.attempt}  ${from}${h.toState}${h.hostId ? `  on ${h.hostId}` : ""}${h.message ? `  ${h.message}` : ""}`));
    }
  }
  return lines.join("\n");
}
