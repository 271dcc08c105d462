// The Queue view: running, assigned and queued jobs (queued ones in the order the scheduler ranks
// them: priority, then age), then recently finished ones, with name, project, owner, GPUs, host, age and state.
import { Box, Text } from "ink";
import type { Job } from "../../core/api.js";
import { cursorOf, visibleJobs } from "../derive.js";
import { age, fit, jobStateColour } from "../format.js";
import { Line, Note, type ViewProps, clampNum, scrollOffset } from "./common.js";

export function QueueView({ state, width, height, now }: ViewProps) {
  const jobs = visibleJobs(state);
  if (Object.keys(state.jobs).length === 0) {
    return <Note lines={["no jobs yet: submit one with", "  pnpm submit -- python train.py", "(or from a job file: `pnpm submit --config job.yaml`); it shows up here at once."]} />;
  }
  if (jobs.length === 0) return <Note lines={[`no job matches the filter "${state.filter}" (Esc clears it)`]} />;
  const counts = { running: 0, assigned: 0, queued: 0, finished: 0 };
  for (const j of jobs) {
    if (j.state === "running" || j.state === "assigned" || j.state === "queued") counts[j.state]++;
    else counts.finished++;
  }
  const cursor = cursorOf(state, "queue", jobs.length);
  const bodyHeight = height - 2;
  const offset = scrollOffset(jobs.length, bodyHeight, cursor, cursor);
  const cols = columns(width);
  return (
    <Box flexDirection="column">
      <Line dim>
        {`${counts.running} running · ${counts.assigned} assigned · ${counts.queued} queued · ${counts.finished} finished`}
        {jobs.length > bodyHeight ? `  (${offset + 1}-${Math.min(jobs.length, offset + bodyHeight)} of ${jobs.length})` : ""}
      </Line>
      <Line bold>
        {"  "}
        {fit("ID", 10)} {fit("NAME", cols.name)} {fit("PROJECT", cols.project)} {fit("OWNER", OWNER_WIDTH)} {fit("PRI", 4)} {fit("GPUS", 4, "right")} {fit("HOST", cols.host)} {fit("AGE", 5, "right")} {fit("STATE", 9)}
      </Line>
      {jobs.slice(offset, offset + bodyHeight).map((j, i) => (
        <JobRow key={j.id} job={j} selected={offset + i === cursor} cols={cols} now={now} />
      ))}
    </Box>
  );
}

const OWNER_WIDTH = 8;

function columns(width: number) {
  const fixed = 2 + 10 + 1 + 1 + 1 + OWNER_WIDTH + 1 + 4 + 1 + 4 + 1 + 1 + 5 + 1 + 9;
  const rest = Math.max(24, width - fixed);
  const project = clampNum(Math.floor(rest * 0.2), 7, 24);
  const host = clampNum(Math.floor(rest * 0.3), 12, 28);
  return { name: rest - project - host, project, host };
}

/** How long a job has been in its state: waiting, running, or since it ended. */
function jobAge(j: Job, now: number): string {
  if (j.endedAt) return age(j.endedAt, now);
  if (j.state === "running" && j.startedAt) return age(j.startedAt, now);
  if (j.state === "assigned" && j.assignedAt) return age(j.assignedAt, now);
  return age(j.createdAt, now);
}

function JobRow({ job: j, selected, cols, now }: { job: Job; selected: boolean; cols: ReturnType<typeof columns>; now: number }) {
  const host = j.hostId ? (j.gpuIndices.length && j.state !== "queued" ? `${j.hostId}:${j.gpuIndices.join(",")}` : j.hostId) : "—";
  const state = j.state === "failed" && j.reason === "lost" ? "lost" : j.state === "timed_out" ? "timeout" : j.state;
  return (
    <Text wrap="truncate-end" inverse={selected}>
      {selected ? "▸ " : "  "}
      <Text dimColor>{fit(j.id, 10)}</Text> {fit(j.name, cols.name)} {fit(j.project, cols.project)} <Text dimColor={!j.owner}>{fit(j.owner ?? "—", OWNER_WIDTH)}</Text>{" "}
      <Text color={j.priority === "high" ? "magenta" : j.priority === "low" ? "gray" : undefined}>{fit(j.priority.slice(0, 4), 4)}</Text> {fit(String(j.gpus), 4, "right")}{" "}
      {fit(host, cols.host)} {fit(jobAge(j, now), 5, "right")} <Text color={jobStateColour[j.state]}>{fit(state, 9)}</Text>
    </Text>
  );
}
