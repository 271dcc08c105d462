// The Containers view: per host, labrig's job containers and the dispatcher container, with their
// state and a CPU/memory sample, as the hosts' Docker engines report them.
import { Box, Text } from "ink";
import { cursorOf, visibleContainers } from "../derive.js";
import { age, bytes, fit } from "../format.js";
import type { ContainerHost } from "../state.js";
import { Line, Note, type ViewProps, clampNum, scrollOffset } from "./common.js";

type Row = { kind: "host"; host: ContainerHost } | { kind: "container"; index: number; host: ContainerHost; rowIndex: number } | { kind: "empty"; host: ContainerHost };

export function ContainersView({ state, width, height, now }: ViewProps) {
  const { hosts, error } = state.containers;
  if (hosts.length === 0) return <Note lines={[error ?? "asking the Docker engines…"]} />;
  const list = visibleContainers(state);
  const cursor = cursorOf(state, "containers", list.length);
  const rows: Row[] = [];
  let selRow = 0;
  let index = 0;
  for (const host of hosts) {
    rows.push({ kind: "host", host });
    const mine = list.filter((c) => c.host === host);
    if (mine.length === 0) rows.push({ kind: "empty", host });
    for (const c of mine) {
      if (index === cursor) selRow = rows.length;
      rows.push({ kind: "container", index, host, rowIndex: host.rows.indexOf(c.row) });
      index++;
    }
  }
  const bodyHeight = height - 1;
  const offset = scrollOffset(rows.length, bodyHeight, Math.max(0, selRow - 1), selRow);
  const cols = columns(width);
  return (
    <Box flexDirection="column">
      <Line bold>
        {"  "}
        {fit("NAME", cols.name)} {fit("ROLE", 14)} {fit("STATE", 8)} {fit("CPU", 5, "right")} {fit("MEMORY", 18, "right")} {fit("IMAGE", cols.image)}
      </Line>
      {rows.slice(offset, offset + bodyHeight).map((r, i) => {
        if (r.kind === "host") {
          return (
            <Text key={`h${i}`} wrap="truncate-end">
              <Text bold color="cyan">
                {r.host.host}
              </Text>
              <Text dimColor>
                {" "}
                {r.host.via}
                {r.host.updatedAt ? ` · ${age(r.host.updatedAt, now)} ago` : ""}
              </Text>
              {r.host.error ? <Text color="red"> {r.host.error}</Text> : null}
            </Text>
          );
        }
        if (r.kind === "empty") {
          return (
            <Line key={`e${i}`} dim>
              {r.host.error ? "" : state.filter ? "  nothing matches the filter" : "  no labrig containers (job containers appear while jobs with an image run)"}
            </Line>
          );
        }
        const c = r.host.rows[r.rowIndex]!;
        const selected = r.index === cursor;
        const mem = c.memUsedBytes == null ? "—" : `${bytes(c.memUsedBytes)}${c.memLimitBytes ? ` / ${bytes(c.memLimitBytes)}` : ""}`;
        return (
          <Text key={`c${c.id}`} wrap="truncate-end" inverse={selected}>
            {selected ? "▸ " : "  "}
            {fit(c.name, cols.name)} <Text color={c.role === "dispatcher" ? "magenta" : undefined}>{fit(c.role === "job" ? `job ${c.jobId ?? "?"}` : "dispatcher", 14)}</Text>{" "}
            <Text color={c.state === "running" ? "green" : c.state === "exited" ? "gray" : "yellow"}>{fit(c.state, 8)}</Text> {fit(c.cpuPct == null ? "—" : `${c.cpuPct.toFixed(0)}%`, 5, "right")}{" "}
            {fit(mem, 18, "right")} <Text dimColor>{fit(c.image, cols.image)}</Text>
          </Text>
        );
      })}
    </Box>
  );
}

function columns(width: number) {
  const fixed = 2 + 1 + 14 + 1 + 8 + 1 + 5 + 1 + 18 + 1;
  const rest = Math.max(16, width - fixed);
  const name = clampNum(Math.floor(rest * 0.65), 10, 40);
  return { name, image: Math.max(4, rest - name) };
}
