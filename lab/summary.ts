// The local lab's plain summary, used until (or instead of) the Ink dashboard: a full screen of
// devices and recent jobs for a terminal, and one line per change for logs and CI. Pure.
import { type Device, isTerminalJobState, type Job } from "../core/api.js";
import { formatDevicesTable, formatJobsTable, jobOutcome } from "../cli/format.js";

export interface LabSnapshot {
  devices: Device[];
  jobs: Job[];
}

export function describeDevice(d: Device): string {
  const gpus =
    d.gpus.length === 0 ? `no GPUs${d.gpuProblem ? ` (${d.gpuProblem})` : ""}` : `${d.gpus.length} GPU${d.gpus.length === 1 ? "" : "s"} (${d.freeGpus} free)`;
  const jobs = d.runningJobs.length ? `, ${d.runningJobs.length} job${d.runningJobs.length === 1 ? "" : "s"} running` : "";
  return `device ${d.hostId}: ${d.status}${d.draining && d.status !== "draining" ? " (draining)" : ""}, ${gpus}${jobs}`;
}

export function describeJob(j: Job): string {
  const attempt = j.attempt > 1 ? ` (attempt ${j.attempt})` : "";
  const host = j.hostId && j.state !== "queued" ? ` on ${j.hostId}` : "";
  return `job ${j.id} ${j.name}: ${j.state}${attempt}${host}${jobOutcome(j)}`;
}

/** What a terminal shows, redrawn every second. */
export function renderSummaryScreen(s: LabSnapshot, now: number, header: string[], maxJobs = 12): string {
  return [
    ...header,
    "",
    "DEVICES",
    formatDevicesTable(s.devices, now),
    "",
    `RECENT JOBS${s.jobs.length > maxJobs ? ` (newest ${maxJobs})` : ""}`,
    formatJobsTable(s.jobs.slice(0, maxJobs), now),
    "",
    "q or Ctrl-C stops the lab",
  ].join("\n");
}

/**
 * The lines to print for what changed since `seen` (device status/GPU/job count, job state or
 * attempt), and the new memory of what was seen. A first call reports the devices and the jobs
 * still waiting or running; jobs that had ended before it (a restarted lab's history) are only
 * counted, since nothing happened to them now.
 */
export function summaryChanges(seen: ReadonlyMap<string, string>, s: LabSnapshot): { lines: string[]; seen: Map<string, string> } {
  const next = new Map(seen);
  const lines: string[] = [];
  if (seen.size === 0) {
    const ended = s.jobs.filter((j) => isTerminalJobState(j.state));
    for (const j of ended) next.set(`job:${j.id}`, describeJob(j));
    if (ended.length > 0) {
      lines.push("jobs that had ended before this start are not repeated here; list them with: pnpm labrig jobs");
    }
  }
  for (const d of s.devices) {
    const line = describeDevice(d);
    if (seen.get(`device:${d.hostId}`) !== line) lines.push(line);
    next.set(`device:${d.hostId}`, line);
  }
  // Oldest first, so a job's lines read in the order things happened.
  for (const j of [...s.jobs].reverse()) {
    const line = describeJob(j);
    if (next.get(`job:${j.id}`) !== line) lines.push(line);
    next.set(`job:${j.id}`, line);
  }
  return { lines, seen: next };
}
