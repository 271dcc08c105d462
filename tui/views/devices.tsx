// The Devices view: one row per host (status, last seen, a cell per GPU, busy GPUs, hottest GPU,
// power, running jobs) and, for the selected host (or every host when they all fit), a line per
// GPU with its utilisation bar, memory, temperature and power, and who is on it (a labrig job, or a
// process outside labrig that keeps the GPU busy); under them the jobs that ended last, and in a
// lab whose scheduler is Slurm, Slurm's own view: its nodes' states, its queue, the nodes out.
import { Box, Text } from "ink";
import { memo } from "react";
import { type Device, type DeviceGpu, type GpuProcess, type Job, type SlurmView, hasForeignProcesses } from "../../core/api.js";
import { cursorOf, recentJobEnds, type SlurmSummary, slurmSummary, visibleDevices } from "../derive.js";
import { age, bar, deviceStatusColour, fit, gib, jobStateColour, sparkCell, temperatureColour, utilisationColour } from "../format.js";
import { Line, Note, type ViewProps, clampNum, scrollOffset } from "./common.js";

type Row =
  | { kind: "host"; device: Device; index: number }
  | { kind: "gpu"; device: Device; gpu: DeviceGpu }
  | { kind: "process"; device: Device; gpu: DeviceGpu; process: GpuProcess }
  | { kind: "problem"; device: Device }
  | { kind: "nogpu"; device: Device };

export function DevicesView({ state, width, height, now }: ViewProps) {
  if (Object.keys(state.devices).length === 0) return <EmptyLab url={state.url} connected={state.connection.status === "connected"} />;
  const devices = visibleDevices(state);
  if (devices.length === 0) return <Note lines={[`no host matches the filter "${state.filter}" (Esc clears it)`]} />;
  const cursor = cursorOf(state, "devices", devices.length);
  // Jobs that ended lately, under the hosts: a job that ran and ended before anyone looked is
  // otherwise nowhere on the first screen.
  const ends = recentJobEnds(state, RECENT_ENDS);
  const showEnds = ends.length > 0 && height - 2 - ends.length >= 3;
  // At most a third of the view: labrig's own table stays the first thing seen.
  const slurm = state.slurm ? { view: state.slurm, summary: slurmSummary(state.slurm) } : undefined;
  const slurmLines = slurm ? slurmPanelLines(slurm.view, slurm.summary, Math.max(1, Math.floor(height / 3))) : 0;
  const bodyHeight = height - 1 - (showEnds ? ends.length + 1 : 0) - slurmLines;

  const detailRows = (d: Device): Row[] => {
    const rows: Row[] = d.gpus.flatMap((gpu): Row[] => [{ kind: "gpu", device: d, gpu }, ...(gpu.processes ?? []).map((process): Row => ({ kind: "process", device: d, gpu, process }))]);
    if (d.gpus.length === 0) rows.push({ kind: "nogpu", device: d });
    if (d.gpuProblem) rows.push({ kind: "problem", device: d });
    return rows;
  };
  // Counted, not built, and only until they no longer fit: with 200 hosts that is after a few.
  let expandedLines = 0;
  for (const d of devices) {
    expandedLines += 1 + detailLines(d);
    if (expandedLines > bodyHeight) break;
  }
  const expandAll = expandedLines <= bodyHeight;

  const rows: Row[] = [];
  let selStart = 0;
  let selEnd = 0;
  devices.forEach((d, index) => {
    if (index === cursor) selStart = rows.length;
    rows.push({ kind: "host", device: d, index });
    if (expandAll || index === cursor) rows.push(...detailRows(d));
    if (index === cursor) selEnd = rows.length - 1;
  });
  const offset = scrollOffset(rows.length, bodyHeight, selStart, selEnd);
  const cols = hostColumns(width);
  const gcols = gpuColumns(width);
  return (
    <Box flexDirection="column">
      <Line bold>
        {"  "}
        {fit("HOST", cols.host)} {fit("STATUS", 12)} {fit("SEEN", 5, "right")} {fit("GPUS", cols.spark)} {fit("BUSY", 5, "right")} {fit("TEMP", 5, "right")}{" "}
        {fit("POWER", 6, "right")} {fit("JOBS", cols.jobs)}
      </Line>
      {rows.slice(offset, offset + bodyHeight).map((r, i) => {
        const key = `${r.device.hostId}:${r.kind}:${r.kind === "gpu" ? r.gpu.index : r.kind === "process" ? `${r.gpu.index}:${r.process.pid}` : i}`;
        switch (r.kind) {
          case "host":
            return <HostRow key={key} d={r.device} selected={r.index === cursor} host={cols.host} jobs={cols.jobs} seen={age(r.device.lastSeenAt, now)} />;
          case "gpu":
            return <GpuRow key={key} g={r.gpu} name={gcols.name} bar={gcols.bar} />;
          case "process":
            return <ProcessRow key={key} p={r.process} />;
          case "problem":
            return (
              <Line key={key} color="red">
                {"    GPU problem: "}
                {r.device.gpuProblem}
              </Line>
            );
          case "nogpu":
            return (
              <Line key={key} dim>
                {"    no GPUs reported (runs gpus: 0 jobs only)"}
              </Line>
            );
        }
      })}
      {showEnds ? <RecentEnds jobs={ends} width={width} now={now} /> : null}
      {slurm ? <SlurmPanel view={slurm.view} sum={slurm.summary} lines={slurmLines} width={width} now={now} /> : null}
    </Box>
  );
}

/** How many rows `detailRows` makes for a host. */
function detailLines(d: Device): number {
  let n = d.gpus.length === 0 ? 1 : 0;
  for (const g of d.gpus) n += 1 + (g.processes?.length ?? 0);
  return n + (d.gpuProblem ? 1 : 0);
}

const RECENT_ENDS = 3;

function RecentEnds({ jobs, width, now }: { jobs: Job[]; width: number; now: number }) {
  return (
    <>
      <Line dim>{fit("recently ended (2 Queue lists every job)", width)}</Line>
      {jobs.map((j) => {
        const where = j.hostId ? ` on ${j.hostId}${j.gpuIndices.length ? `:${j.gpuIndices.join(",")}` : ""}` : "";
        const exit = j.exitCode !== null ? ` · exit ${j.exitCode}` : "";
        const reason = j.reason && j.state !== "succeeded" ? ` · ${j.reason}` : "";
        return (
          <Text key={j.id} wrap="truncate-end">
            {"  "}
            <Text color={jobStateColour[j.state]}>{fit(j.state, 9)}</Text> {fit(`${age(j.endedAt, now)} ago`, 8, "right")}  <Text dimColor>{j.id}</Text> {j.name}
            {where}
            {exit}
            {reason}
          </Text>
        );
      })}
    </>
  );
}

/** How many lines the Slurm panel takes: its heading, a line if the last read failed, and a line per node out, within `room`. */
function slurmPanelLines(view: SlurmView, sum: SlurmSummary, room: number): number {
  return Math.min(room, 1 + (view.error ? 1 : 0) + sum.troubled.length);
}

function SlurmPanel({ view, sum, lines, width, now }: { view: SlurmView; sum: SlurmSummary; lines: number; width: number; now: number }) {
  const counts = (c: [string, number][]) => c.map(([state, n]) => `${n} ${state}`).join(", ");
  const nodes = `${view.nodes.length} node${view.nodes.length === 1 ? "" : "s"}${sum.nodeStates.length ? `: ${counts(sum.nodeStates)}` : ""}`;
  const queue = view.queue.length ? `queue: ${counts(sum.queueStates)}${sum.pendingReasons.length ? ` (waiting: ${sum.pendingReasons.slice(0, 2).join(", ")})` : ""}` : "queue empty";
  const read = view.readAt ? `read ${age(view.readAt, now)} ago` : "not read yet";
  const rest = lines - 1 - (view.error ? 1 : 0);
  return (
    <>
      <Text wrap="truncate-end">
        <Text color="magenta" bold>
          Slurm
        </Text>
        <Text dimColor>{" schedules this lab · "}</Text>
        {nodes} · {queue} <Text dimColor>· {read} (labrig devices --slurm)</Text>
      </Text>
      {view.error && lines > 1 ? <Line color="red">{fit(`  the last read of Slurm failed: ${view.error}`, width)}</Line> : null}
      {sum.troubled.slice(0, Math.max(0, rest)).map((n) => (
        <Text key={n.name} wrap="truncate-end">
          {"  "}
          <Text bold>{n.name}</Text> <Text color="red">{n.state}</Text>
          {n.reason ? ` · ${n.reason}` : ""}
        </Text>
      ))}
    </>
  );
}

function hostColumns(width: number) {
  const fixed = 2 + 1 + 12 + 1 + 5 + 1 + 8 + 1 + 5 + 1 + 5 + 1 + 6 + 1;
  const rest = Math.max(10, width - fixed);
  const host = clampNum(Math.floor(rest * 0.55), 8, 40);
  return { host, spark: SPARK_CELLS, jobs: Math.max(4, rest - host) };
}

function gpuColumns(width: number) {
  const fixed = 4 + 2 + 1 + 1 + 1 + 4 + 1 + 15 + 1 + 5 + 1 + 6 + 1 + 6;
  const rest = Math.max(16, width - fixed);
  const name = clampNum(Math.floor(rest * 0.45), 14, 28);
  return { name, bar: clampNum(rest - name, 6, 60) };
}

const SPARK_CELLS = 8;

/** One cell per GPU, coloured by use (red when hot), with neighbours of one colour drawn together. */
function sparkRuns(gpus: DeviceGpu[]): { colour: string | undefined; cells: string }[] {
  const runs: { colour: string | undefined; cells: string }[] = [];
  for (const g of gpus.slice(0, SPARK_CELLS)) {
    const colour = temperatureColour(g.temperatureC) === "red" ? "red" : utilisationColour(g.utilizationPct);
    const last = runs.at(-1);
    if (last && last.colour === colour) last.cells += sparkCell(g.utilizationPct);
    else runs.push({ colour, cells: sparkCell(g.utilizationPct) });
  }
  return runs;
}

// Memoised: the rows drawn are redrawn from their props only when a host's figures, the cursor,
// its age or the column widths changed.
const HostRow = memo(function HostRow({ d, selected, host, jobs: jobsWidth, seen }: { d: Device; selected: boolean; host: number; jobs: number; seen: string }) {
  const busy = d.gpus.filter((g) => g.busy || hasForeignProcesses(g)).length;
  let hottest: number | null = null;
  let power: number | null = null;
  for (const g of d.gpus) {
    if (g.temperatureC != null) hottest = Math.max(hottest ?? -Infinity, g.temperatureC);
    if (g.powerW != null) power = (power ?? 0) + g.powerW;
  }
  const status = d.draining && d.status !== "draining" ? `${d.status}/drain` : d.status;
  const cells = Math.min(d.gpus.length, SPARK_CELLS);
  const jobs = d.runningJobs.length ? d.runningJobs.length === 1 ? d.runningJobs[0]! : `${d.runningJobs[0]} +${d.runningJobs.length - 1}` : "";
  // Trailing blanks of an unselected row look like the empty screen behind it; not handing them to
  // Ink spares it measuring and laying out half the row.
  const end = ` ${fit(jobs, jobsWidth)}`;
  return (
    <Text wrap="truncate-end" inverse={selected}>
      {selected ? "▸ " : "  "}
      <Text bold>{fit(d.hostId, host)}</Text> <Text color={deviceStatusColour[d.status]}>{fit(`● ${status}`, 12)}</Text> {fit(seen, 5, "right")}{" "}
      {cells === 0 ? (
        <Text dimColor>{fit("none", SPARK_CELLS)}</Text>
      ) : (
        sparkRuns(d.gpus).map((run, i) => (
          <Text key={i} color={run.colour}>
            {run.cells}
          </Text>
        ))
      )}
      {cells ? " ".repeat(SPARK_CELLS - cells) : ""} {fit(`${busy}/${d.gpus.length}`, 5, "right")}{" "}
      <Text color={temperatureColour(hottest)}>{fit(hottest == null ? "—" : `${Math.round(hottest)}°C`, 5, "right")}</Text> {fit(power == null ? "—" : `${Math.round(power)}W`, 6, "right")}
      {selected ? end : end.trimEnd()}
    </Text>
  );
});

const GpuRow = memo(function GpuRow({ g, name: nameWidth, bar: barWidth }: { g: DeviceGpu; name: number; bar: number }) {
  const name = g.name.replace(/^NVIDIA\s+/, "").replace(/^GeForce\s+/, "");
  const mem = `${gib(g.memoryUsedMiB)}/${gib(g.memoryTotalMiB)} GiB`;
  const pct = g.utilizationPct == null ? "—" : `${Math.round(g.utilizationPct)}%`;
  return (
    <Text wrap="truncate-end">
      {"    "}
      {fit(String(g.index), 2, "right")} {fit(name, nameWidth)} <Text color={utilisationColour(g.utilizationPct)}>{bar(g.utilizationPct, barWidth)}</Text> {fit(pct, 4, "right")}{" "}
      {fit(mem, 15, "right")} <Text color={temperatureColour(g.temperatureC)} bold={(g.temperatureC ?? 0) >= 80}>{fit(g.temperatureC == null ? "—" : `${Math.round(g.temperatureC)}°C`, 5, "right")}</Text>{" "}
      {fit(g.powerW == null ? "—" : `${Math.round(g.powerW)}W`, 6, "right")} {g.busy ? <Text color="cyan">busy</Text> : hasForeignProcesses(g) ? <Text color="yellow">in use</Text> : <Text dimColor>free</Text>}
    </Text>
  );
});

/** Who is on a GPU: a labrig job's process, or one outside labrig (which keeps the GPU from the queue). */
function ProcessRow({ p }: { p: GpuProcess }) {
  const mem = p.usedMemoryMiB === null ? "" : ` · ${gib(p.usedMemoryMiB)} GiB`;
  return (
    <Text wrap="truncate-end">
      {"       ↳ "}
      {p.jobId ? <Text color="cyan">job {p.jobId}</Text> : <Text color="yellow">not labrig</Text>}
      {` · ${p.user ?? "?"} pid ${p.pid}${mem} · `}
      <Text dimColor>{p.command ?? "?"}</Text>
    </Text>
  );
}

function EmptyLab({ url, connected }: { url: string; connected: boolean }) {
  if (!connected) return <Note lines={[`waiting for the dispatcher at ${url}…`]} />;
  return (
    <Note
      lines={[
        "no devices yet: start an agent on each GPU host, pointing it at this dispatcher:",
        `  pnpm labrig agent --url ${url} --join-token <the dispatcher's join-token>`,
        "(on this machine, `pnpm start` runs a dispatcher and an agent together), then submit a job:",
        "  pnpm submit -- python train.py",
      ]}
    />
  );
}
