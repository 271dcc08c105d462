// The Events view: what happened in the lab, newest first: job state changes, hosts joining and
// going stale, notices from the dispatcher, and the dashboard's own connection changes.
import { Box, Text } from "ink";
import { cursorOf, visibleEvents } from "../derive.js";
import { clock, fit, levelColour } from "../format.js";
import { Note, type ViewProps, scrollOffset } from "./common.js";

export function EventsView({ state, height }: ViewProps) {
  const events = visibleEvents(state);
  if (state.events.length === 0) return <Note lines={["no events yet: job and host changes appear here as they happen"]} />;
  if (events.length === 0) return <Note lines={[`no event matches the filter "${state.filter}" (Esc clears it)`]} />;
  const cursor = cursorOf(state, "events", events.length);
  const offset = scrollOffset(events.length, height, cursor, cursor);
  return (
    <Box flexDirection="column">
      {events.slice(offset, offset + height).map((e, i) => (
        <Text key={offset + i} wrap="truncate-end" inverse={offset + i === cursor && cursor > 0}>
          <Text dimColor>{clock(e.at)}</Text> <Text color={levelColour[e.level]}>{fit(e.kind, 6)}</Text> <Text color={levelColour[e.level]}>{e.text}</Text>
        </Text>
      ))}
    </Box>
  );
}
