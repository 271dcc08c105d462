// The Job view: what the job is (command, image, project, priority), where and how it ran
// (host, GPUs, attempts, exit code, reason, times), the files synced to the dispatcher, and the
// tail of its job.log, which follows new output while following is on.
import { Box, Text } from "ink";
import { bytes, clock, commandText, fit, jobStateColour, age } from "../format.js";
import { describeCode } from "../../core/code.js";
import { Line, Note, type ViewProps } from "./common.js";

export function JobView({ state, width, height, now }: ViewProps) {
  const id = state.detailJobId;
  if (!id) return <Note lines={["no job open: pick one in the Queue (2) and press Enter, or press l on it for its log"]} />;
  const j = state.jobs[id];
  if (!j) return <Note lines={[`loading job ${id}…`]} />;

  const head: React.ReactNode[] = [];
  head.push(
    <Text key="title" wrap="truncate-end">
      <Text bold>job {j.id}</Text> {j.name} · {j.project} · <Text color={jobStateColour[j.state]}>{j.state}</Text> · attempt {j.attempt}/{j.maxRetries + 1} · {j.priority} priority
    </Text>,
  );
  const where = j.hostId ? `host ${j.hostId}${j.gpuIndices.length ? ` GPUs ${j.gpuIndices.join(",")}` : ""}` : "not placed yet";
  const exit = j.exitCode === null ? "" : ` · exit code ${j.exitCode}`;
  head.push(
    <Line key="where">
      {where} · wants {j.gpus} GPU{j.gpus === 1 ? "" : "s"}
      <Text color={j.exitCode ? "red" : undefined}>{exit}</Text>
      {j.reason && j.reason !== `exit code ${j.exitCode}` ? ` · ${j.reason}` : ""}
    </Line>,
  );
  if (j.state === "queued" && j.waiting) head.push(<Line key="waiting" color="yellow">waits: {j.waiting}</Line>);
  const times = [`created ${clock(j.createdAt)} (${age(j.createdAt, now)} ago)`];
  if (j.startedAt) times.push(`started ${clock(j.startedAt)}`);
  if (j.endedAt) times.push(`ended ${clock(j.endedAt)}`);
  if (j.timeoutS) times.push(`timeout ${j.timeoutS}s`);
  head.push(<Line key="times" dim>{times.join(" · ")}</Line>);
  const cmd = `$ ${commandText(j.command)}`;
  const cmdLines = height >= 20 && cmd.length > width ? 2 : 1;
  for (let i = 0; i < cmdLines; i++) {
    head.push(
      <Line key={`cmd${i}`} color="cyan">
        {cmd.slice(i * width, (i + 1) * width)}
      </Line>,
    );
  }
  if (j.image) head.push(<Line key="image" dim>image {j.image}{j.workdir ? ` · workdir ${j.workdir}` : ""}</Line>);
  if (j.code) head.push(<Line key="code" dim>code {describeCode(j.code)}{!j.image && j.workdir ? ` · runs in ${j.workdir}` : ""}</Line>);

  const synced = state.synced?.jobId === j.id ? state.synced : null;
  const files = synced?.files ?? [];
  const syncedText = !synced
    ? "synced files: loading…"
    : synced.error
      ? `synced files: ${synced.error}`
      : files.length === 0
        ? "synced files: none yet"
        : `synced (attempt ${synced.attempt}): ${files.map((f) => `${f.path} ${bytes(f.size)}`).join(" · ")}`;
  head.push(<Line key="synced" dim={!synced || files.length === 0}>{syncedText}</Line>);

  const log = state.log?.jobId === j.id ? state.log : null;
  const logHeight = Math.max(1, height - head.length - 1);
  const source = !log ? "not open (press f)" : log.source === "agent" ? "live from the agent" : log.source === "dispatcher" ? "synced copy" : "connecting…";
  const title = `── job.log · ${source}${log ? (log.following ? " · following" : " · paused (f follows)") : ""} `;
  const lines = log ? (log.partial ? [...log.lines, log.partial] : log.lines) : [];
  const shown = lines.slice(Math.max(0, lines.length - logHeight));
  return (
    <Box flexDirection="column">
      {head}
      <Line dim>{fit(title + "─".repeat(Math.max(0, width)), width)}</Line>
      {log?.error ? <Line color="yellow">{log.error}</Line> : null}
      {shown.length === 0 && !log?.error ? <Line dim>{log ? "(no output yet)" : ""}</Line> : null}
      {shown.slice(log?.error ? 1 : 0).map((l, i) => (
        <Line key={i}>{l.replace(/\t/g, "  ").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "")}</Line>
      ))}
    </Box>
  );
}
