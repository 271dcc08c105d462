// The operator's dashboard (`labrig tui`, and the local lab's foreground): the Ink app that renders
// the store's state through the views, turns keys into actions through the key map, and hands the
// resulting effects to the data client. `runTui` owns the terminal (tui/terminal.ts): alternate
// screen in, frames drawn by position, restored on quit, on Ctrl-C and on process exit.
import { Box, render, useInput, useStdout } from "ink";
import { useEffect, useState } from "react";
import { DataClient } from "./client.js";
import { type ContainerSource, inventorySources, localSource } from "./containers.js";
import { type Effect, keyToAction, reduceAction } from "./keys.js";
import { type TuiState, addEvent, initialState } from "./state.js";
import { type StoreOptions, TuiStore } from "./store.js";
import { FullScreen } from "./terminal.js";
import { ContainersView } from "./views/containers.js";
import { DevicesView } from "./views/devices.js";
import { EventsView } from "./views/events.js";
import { DisconnectedBanner, Footer, Header, Help, Tabs } from "./views/frame.js";
import { JobView } from "./views/job.js";
import { QueueView } from "./views/queue.js";

export interface ScreenProps {
  state: TuiState;
  width: number;
  height: number;
  now: number;
}

/** The whole screen for a state: a pure function, rendered by the app and by tests. */
export function Screen({ state, width, height, now }: ScreenProps) {
  const banner = state.connection.status === "disconnected" ? 1 : 0;
  const bodyHeight = Math.max(3, height - 4 - banner);
  const props = { state, width, height: bodyHeight, now };
  let body: React.ReactNode;
  if (state.modal?.kind === "help") body = <Help height={bodyHeight} />;
  else {
    switch (state.view) {
      case "devices":
        body = <DevicesView {...props} />;
        break;
      case "queue":
        body = <QueueView {...props} />;
        break;
      case "job":
        body = <JobView {...props} />;
        break;
      case "containers":
        body = <ContainersView {...props} />;
        break;
      case "events":
        body = <EventsView {...props} />;
        break;
    }
  }
  return (
    <Box flexDirection="column" width={width}>
      <Header state={state} width={width} now={now} />
      <Tabs state={state} width={width} />
      <DisconnectedBanner state={state} now={now} />
      <Box flexDirection="column" height={bodyHeight} overflowY="hidden">
        {body}
      </Box>
      <Footer state={state} width={width} now={now} />
    </Box>
  );
}

/**
 * The dashboard's render budget: at most 4 data-driven frames a second, fewer while the process
 * spends over 4 % of a core (a 160×50 frame of 200 hosts costs Ink 15–25 ms), but never less than
 * one every 900 ms (drawing it adds a few tens of ms more), so what is on screen is at most 1 s
 * behind the dispatcher.
 */
export const dashboardStoreOptions: StoreOptions = { maxHz: 4, cpuBudgetPct: 4, maxGapMs: 900 };

export type EffectHandler = (effect: Effect) => void;

export interface AppProps {
  store: TuiStore;
  onEffect: EffectHandler;
  /** A fixed size (tests); otherwise the terminal's, following resizes. */
  size?: { width: number; height: number };
  now?: () => number;
}

export function App({ store, onEffect, size, now = Date.now }: AppProps) {
  // A notification may carry the same state (a refresh for the clock), so render on a counter.
  const [, setVersion] = useState(0);
  const state = store.get();
  const terminal = useTerminalSize();
  const { width, height } = size ?? terminal;
  useEffect(() => store.subscribe(() => setVersion((n) => n + 1)), [store]);
  useEffect(() => {
    // Ages and the reconnect countdown move on even when no data arrives; the store's throttle
    // decides when, so a busy lab and the clock share one render budget.
    const t = setInterval(() => store.refresh(), 1000);
    return () => clearInterval(t);
  }, [store]);
  useInput((input, key) => {
    // Keys typed faster than a read (or sent by a script) arrive as one string: outside the filter
    // prompt, each is its own key press.
    const presses = input.length > 1 && !store.get().filterEditing && !key.ctrl && !key.meta ? [...input] : [input];
    for (const one of presses) {
      const current = store.get();
      const action = keyToAction(one, key, current, Math.max(1, height - 8));
      if (!action) continue;
      const { state: next, effects } = reduceAction(current, action, now());
      store.updateNow(() => next);
      for (const e of effects) onEffect(e);
    }
  });
  return <Screen state={state} width={width} height={height} now={now()} />;
}

function useTerminalSize(): { width: number; height: number } {
  const { stdout } = useStdout();
  const read = () => ({
    width: Math.max(40, stdout.columns || 80),
    // The whole terminal: runTui draws frames by position, so a frame as tall as the terminal
    // neither scrolls nor makes Ink clear the screen.
    height: Math.max(10, stdout.rows || 24),
  });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => setSize(read());
    stdout.on("resize", onResize);
    return () => void stdout.off("resize", onResize);
  }, [stdout]);
  return size;
}

export interface RunTuiOptions {
  url: string;
  token: string;
  /** With an inventory, the Containers view asks each host's Docker engine over SSH. */
  inventoryPath?: string;
  onQuit?: () => void;
  /** Stops the dashboard from outside (the local lab's shutdown). */
  signal?: AbortSignal;
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
}

/** Runs the dashboard until the operator quits; resolves with the terminal as it was. */
export async function runTui(opts: RunTuiOptions): Promise<void> {
  const stdout = opts.stdout ?? process.stdout;
  const store = new TuiStore(initialState(opts.url.replace(/\/+$/, "")), dashboardStoreOptions);
  const sources: ContainerSource[] = opts.inventoryPath ? await inventorySources(opts.inventoryPath) : [localSource()];
  const client = new DataClient({ url: opts.url, token: opts.token, store, containerSources: sources });

  // Text anything else writes while the dashboard holds the terminal: shown as an event now, and
  // printed on the main screen once the dashboard has given the terminal back.
  const heldBack: string[] = [];
  const screen = stdout.isTTY
    ? new FullScreen({
        stdout,
        stderr: process.stderr.isTTY && stdout === process.stdout ? process.stderr : undefined,
        onForeignOutput: (text, stream) => {
          heldBack.push(text);
          for (const line of text.split(/\r?\n/)) {
            if (line.trim()) store.update((s) => addEvent(s, { at: new Date().toISOString(), kind: "tui", level: stream === "stderr" ? "warn" : "info", text: line }));
          }
        },
      })
    : null;
  const restore = () => screen?.leave();
  let instance: ReturnType<typeof render> | undefined;
  const onEffect: EffectHandler = (e) => {
    switch (e.kind) {
      case "quit":
        instance?.unmount();
        return;
      case "run":
        void client.perform(e.command);
        return;
      case "open-job":
        void client.openJob(e.jobId, e.follow);
        return;
      case "follow":
        client.setFollow(e.jobId, e.following);
        return;
    }
  };
  let lastView = store.get().view;
  const unwatch = store.subscribe((s) => {
    if (s.view === "containers" && lastView !== "containers") void client.refreshContainers();
    lastView = s.view;
  });
  const onAbort = () => instance?.unmount();
  try {
    if (screen) {
      process.once("exit", restore);
      screen.enter();
    }
    instance = render(<App store={store} onEffect={onEffect} />, {
      // In full screen, Ink only lays frames out: with `debug` it hands each whole frame to the
      // stream (no cursor moves of its own), and FullScreen puts it on the terminal by position.
      stdout: screen ? screen.inkStdout : stdout,
      stdin: opts.stdin ?? process.stdin,
      exitOnCtrlC: false,
      patchConsole: !screen,
      debug: !!screen,
      maxFps: 8,
    });
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    client.start();
    await instance.waitUntilExit();
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    unwatch();
    client.stop();
    store.close();
    if (screen) {
      process.off("exit", restore);
      restore();
    }
    if (heldBack.length) stdout.write(heldBack.join(""));
  }
  opts.onQuit?.();
}
