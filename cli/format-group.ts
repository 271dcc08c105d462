// A sweep group as text: a summary line of its jobs' states, then its jobs' table.
import type { Job, JobGroup } from "../core/api.js";
import { formatJobsTable } from "./format.js";

export function formatGroup(group: JobGroup, jobs: Job[], now: number): string {
  const states = Object.entries(group.states)
    .map(([s, n]) => `${n} ${s}`)
    .join(", ");
  return `group ${group.id} (${group.name}): ${group.jobs} jobs: ${states || "none"}\n${formatJobsTable(jobs, now)}`;
}
