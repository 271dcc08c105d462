// The Queue view: running, assigned and queued jobs (queued ones in the order the scheduler ranks
// them: priority, then age), then recently finished ones, with name, project, owner, GPUs, host, age
// and state. A sweep's jobs are one row (its group: name, per-state counts, GPUs, owner) where its
// first job sorts; opened, its jobs follow it, indented. On a queued job, the top line says why it
// waits (the dispatcher's last scheduling decision).
import { Box, Text } from "ink";
import { Fragment } from "react";
import type { Job } from "../../core/api.js";
import { type GroupSummary, type QueueRow, cursorOf, visibleQueueRows } from "../derive.js";
import { age, fit, groupStateOrder, groupStatesText, jobCount, jobStateColour, memberName, stateWords } from "../format.js";
import { Line, Note, type ViewProps, clampNum, scrollOffset } from "./common.js";

export function QueueView({ state, width, height, now }: ViewProps) {
  const rows = visibleQueueRows(state);
  if (Object.keys(state.jobs).length === 0) {
    return <Note lines={["no jobs yet: submit one with", "  pnpm submit -- python train.py", "(or from a job file: `pnpm submit --config job.yaml`); it shows up here at once."]} />;
  }
  if (rows.length === 0) return <Note lines={[`no job matches the filter "${state.filter}" (Esc clears it)`]} />;
  const counts = { running: 0, assigned: 0, queued: 0, finished: 0 };
  let groups = 0;
  const count = (j: Job) => {
    if (j.state === "running" || j.state === "assigned" || j.state === "queued") counts[j.state]++;
    else counts.finished++;
  };
  for (const r of rows) {
    if (r.kind === "group") {
      groups++;
      r.group.jobs.forEach(count);
    } else if (!r.inGroup) count(r.job);
  }
  const cursor = cursorOf(state, "queue", rows.length);
  const bodyHeight = height - 2;
  const offset = scrollOffset(rows.length, bodyHeight, cursor, cursor);
  const cols = columns(width);
  const selected = rows[cursor];
  const waits = selected?.kind === "job" && selected.job.state === "queued" ? selected.job.waiting : undefined;
  return (
    <Box flexDirection="column">
      <Line dim={!waits} color={waits ? "yellow" : undefined}>
        {waits
          ? `${selected!.kind === "job" ? selected!.job.id : ""} waits: ${waits}`
          : `${counts.running} running · ${counts.assigned} assigned · ${counts.queued} queued · ${counts.finished} finished`}
        {!waits && groups ? ` · ${groups} sweep group${groups === 1 ? "" : "s"}` : ""}
        {!waits && rows.length > bodyHeight ? `  (${offset + 1}-${Math.min(rows.length, offset + bodyHeight)} of ${rows.length})` : ""}
      </Line>
      <Line bold>
        {"  "}
        {fit("ID", ID_WIDTH)} {fit("NAME", cols.name)} {fit("PROJECT", cols.project)} {fit("OWNER", OWNER_WIDTH)} {fit("PRI", 4)} {fit("GPUS", 4, "right")} {fit("HOST", cols.host)} {fit("AGE", 5, "right")} {fit("STATE", 9)}
      </Line>
      {rows.slice(offset, offset + bodyHeight).map((r, i) =>
        r.kind === "group" ? (
          <GroupRow key={`group:${r.group.id}`} group={r.group} expanded={r.expanded} selected={offset + i === cursor} width={width} />
        ) : (
          <JobRow key={r.job.id} row={r} selected={offset + i === cursor} cols={cols} now={now} />
        ),
      )}
    </Box>
  );
}

/** Wide enough for a group's id (`g` and a job id's 10 characters). */
const ID_WIDTH = 11;
const OWNER_WIDTH = 8;

function columns(width: number) {
  const fixed = 2 + ID_WIDTH + 1 + 1 + 1 + OWNER_WIDTH + 1 + 4 + 1 + 4 + 1 + 1 + 5 + 1 + 9;
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

function JobRow({ row, selected, cols, now }: { row: Extract<QueueRow, { kind: "job" }>; selected: boolean; cols: ReturnType<typeof columns>; now: number }) {
  const j = row.job;
  const host = j.hostId ? (j.gpuIndices.length && j.state !== "queued" ? `${j.hostId}:${j.gpuIndices.join(",")}` : j.hostId) : "—";
  const state = j.state === "failed" && j.reason === "lost" ? "lost" : j.state === "timed_out" ? "timeout" : j.state;
  const tree = row.inGroup ? (row.last ? "└ " : "├ ") : "";
  return (
    <Text wrap="truncate-end" inverse={selected}>
      {selected ? "▸ " : "  "}
      <Text dimColor>{fit(j.id, ID_WIDTH)}</Text> <Text dimColor>{tree}</Text>
      {fit(row.inGroup ? memberName(j.name, row.inGroup.name) : j.name, cols.name - tree.length)} {fit(j.project, cols.project)} <Text dimColor={!j.owner}>{fit(j.owner ?? "—", OWNER_WIDTH)}</Text>{" "}
      <Text color={j.priority === "high" ? "magenta" : j.priority === "low" ? "gray" : undefined}>{fit(j.priority.slice(0, 4), 4)}</Text> {fit(String(j.gpus), 4, "right")}{" "}
      {fit(host, cols.host)} {fit(jobAge(j, now), 5, "right")} <Text color={jobStateColour[j.state]}>{fit(state, 9)}</Text>
    </Text>
  );
}

/**
 * A group's row does not keep the job columns (its jobs differ in host, age and state): after its
 * id, `+ name · 6 jobs: 2 running · 3 queued · 1 succeeded · 6 GPUs · owner`, the name cut first
 * so the counts stay on an 80-column screen.
 */
function GroupRow({ group: g, expanded, selected, width }: { group: GroupSummary; expanded: boolean; selected: boolean; width: number }) {
  const states = groupStateOrder.filter((s) => g.states[s]);
  const tail = ` · ${g.gpus} GPU${g.gpus === 1 ? "" : "s"} · ${g.owner ?? "—"}`;
  const counts = ` · ${jobCount(g.jobs.length)}: ${groupStatesText(g.states)}`;
  const room = width - (2 + ID_WIDTH + 1) - 2;
  const name = g.name.length + counts.length + tail.length <= room ? g.name : fit(g.name, Math.max(Math.min(g.name.length, 8), room - counts.length - tail.length));
  return (
    <Text wrap="truncate-end" inverse={selected}>
      {selected ? "▸ " : "  "}
      <Text color="cyan">{fit(g.id, ID_WIDTH)}</Text> {expanded ? "- " : "+ "}
      <Text bold>{name}</Text>
      {` · ${jobCount(g.jobs.length)}: `}
      {states.map((s, i) => (
        <Fragment key={s}>
          {i ? " · " : ""}
          <Text color={jobStateColour[s]}>{`${g.states[s]} ${stateWords(s)}`}</Text>
        </Fragment>
      ))}
      {tail}
    </Text>
  );
}
