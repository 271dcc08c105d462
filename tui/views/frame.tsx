// The frame around every view: a header with the connection and the lab in numbers, the view
// tabs and filter, a banner while the dispatcher is unreachable, and a footer with the keys, the
// last action's outcome, or the question being asked. Also the full help screen.
import { Box, Text } from "ink";
import { labTotals } from "../derive.js";
import { age, fit } from "../format.js";
import { footerKeys, helpLines, viewTitles } from "../keys.js";
import { type TuiState, viewOrder } from "../state.js";
import { Line } from "./common.js";

export function Header({ state, now }: { state: TuiState; width: number; now: number }) {
  const c = state.connection;
  const t = labTotals(state);
  const dot = c.status === "connected" ? <Text color="green">● connected</Text> : c.status === "connecting" ? <Text color="yellow">◌ connecting</Text> : <Text color="red">✖ disconnected</Text>;
  return (
    <Text wrap="truncate-end">
      <Text bold color="cyan">
        labrig
      </Text>{" "}
      {dot} · hosts {t.healthy}/{t.devices} up · GPUs {t.busyGpus}/{t.gpus} busy · {t.running} running · {t.queued} queued ·{" "}
      <Text dimColor>
        {state.url.replace(/^https?:\/\//, "")}
        {c.status === "connected" && c.lastSyncAt ? ` · synced ${age(c.lastSyncAt, now)} ago` : ""}
      </Text>
    </Text>
  );
}

export function Tabs({ state }: { state: TuiState; width: number }) {
  return (
    <Text wrap="truncate-end">
      {viewOrder.map((v, i) => (
        <Text key={v} inverse={state.view === v} bold={state.view === v}>
          {` ${i + 1} ${viewTitles[v]} `}
        </Text>
      ))}
      {state.filterEditing || state.filter ? (
        <Text color="yellow">
          {"  /"}
          {state.filter}
          {state.filterEditing ? "▏" : ""}
        </Text>
      ) : null}
    </Text>
  );
}

/** One line while the dispatcher cannot be reached: since when, why, and when the next try is. */
export function DisconnectedBanner({ state, now }: { state: TuiState; now: number }) {
  const c = state.connection;
  if (c.status !== "disconnected") return null;
  const retry = c.retryAt ? `retrying in ${Math.max(0, Math.ceil((c.retryAt - now) / 1000))}s` : "retrying";
  const stale = c.lastSyncAt ? `; showing what was known ${age(c.lastSyncAt, now)} ago` : "";
  return (
    <Line color="red" inverse>
      {` dispatcher unreachable for ${age(c.since, now)} (${c.error ?? "connection lost"}); ${retry}${stale} `}
    </Line>
  );
}

export function Footer({ state, width, now }: { state: TuiState; width: number; now: number }) {
  const m = state.modal;
  let line: React.ReactNode;
  if (m?.kind === "confirm") {
    // A long question is cut rather than the answers it needs.
    const answers = " y yes · n no ";
    const room = width - answers.length - 1;
    line = (
      <Text wrap="truncate-end" color="yellow" inverse>
        {` ${m.prompt.length > room ? fit(m.prompt, room) : m.prompt}${answers}`}
      </Text>
    );
  } else if (m?.kind === "priority") {
    const j = state.jobs[m.jobId];
    line = (
      <Text wrap="truncate-end" color="yellow" inverse>
        {` priority of job ${m.jobId}${j ? ` (now ${j.priority})` : ""}: h high · n normal · l low · Esc keeps it `}
      </Text>
    );
  } else if (state.flash && now - state.flash.at < 8000) {
    line = (
      <Line color={state.flash.level === "error" ? "red" : "green"}>{state.flash.text}</Line>
    );
  } else {
    line = <Line> </Line>;
  }
  return (
    <Box flexDirection="column">
      {line}
      <Line dim>{fit(state.filterEditing ? "type to filter · Enter keeps it · Esc clears it" : footerKeys(state.view, state), width)}</Line>
    </Box>
  );
}

export function Help({ height }: { height: number }) {
  const lines = helpLines.slice(0, Math.max(1, height - 3));
  return (
    <Box flexDirection="column">
      <Line bold>keys</Line>
      {lines.map(([k, what]) => (
        <Text key={k} wrap="truncate-end">
          <Text color="cyan">{fit(k, 10)}</Text> {what}
        </Text>
      ))}
      <Line dim>colours: green healthy/succeeded · yellow stale/queued · red disconnected/failed/≥80 °C</Line>
      <Line dim>Esc or ? closes this help</Line>
    </Box>
  );
}
