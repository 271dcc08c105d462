// The dispatcher's server-sent events into the store: subscribes to `GET /api/events`, re-reads
// devices and jobs whole on each (re)connect (SSE has no history), treats a stream silent past
// `silenceMs` as dead, and reconnects with backoff, saying so in the connection state.
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { isTerminalJobState, jobStates, type DispatcherEvent } from "../core/api.js";
import { Backoff } from "../core/backoff.js";
import type { DispatcherClient } from "../core/client.js";
import { LabrigError } from "../core/errors.js";
import { jsonMayHoldControls, visibleDeep } from "../core/visible.js";
import { describeError } from "./describe-error.js";
import { applyDispatcherEvents, applySnapshot, setConnection } from "./state.js";
import type { TuiStore } from "./store.js";

export interface EventFeedOptions {
  url: string;
  token: string;
  api: DispatcherClient;
  store: TuiStore;
  backoffMs: { initial: number; max: number };
  silenceMs: number;
  now: () => Date;
  /** Called with each burst of events after the store has them. */
  onEvents: (events: DispatcherEvent[]) => void;
}

const activeStates = jobStates.filter((s) => !isTerminalJobState(s));
const finishedStates = jobStates.filter((s) => isTerminalJobState(s));

export class EventFeed {
  constructor(private readonly opts: EventFeedOptions) {}

  /** Runs until `stopped` aborts. */
  async run(stopped: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.opts.backoffMs.initial, this.opts.backoffMs.max);
    while (!stopped.aborted) {
      try {
        await this.stream(stopped, () => backoff.reset());
        throw new LabrigError("the dispatcher closed the event stream");
      } catch (err) {
        if (stopped.aborted) return;
        const retryAt = Date.now() + backoff.peek();
        this.opts.store.update((s) => setConnection(s, "disconnected", this.opts.now(), { error: describeError(err), retryAt }));
        await backoff.wait(stopped);
      }
    }
  }

  /** Re-reads devices and jobs whole: what SSE does not replay. */
  async resync(): Promise<void> {
    const { api } = this.opts;
    try {
      const [devices, active, finished] = visibleDeep(await Promise.all([api.devices(), api.jobs({ state: [...activeStates], limit: 5000 }), api.jobs({ state: [...finishedStates], limit: 200 })]));
      this.opts.store.update((s) => applySnapshot(s, devices, [...active, ...finished], this.opts.now()));
    } catch {
      /* the event stream notices a lost dispatcher and says so; the next resync catches up */
    }
  }

  private async stream(stopped: AbortSignal, onConnected: () => void): Promise<void> {
    const { store, silenceMs } = this.opts;
    const conn = new AbortController();
    const signal = AbortSignal.any([stopped, conn.signal]);
    let watchdog: NodeJS.Timeout | undefined;
    const feedWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => conn.abort(new LabrigError(`no data from the dispatcher for ${silenceMs / 1000} s`)), silenceMs);
    };
    try {
      feedWatchdog();
      const res = await openEventStream(this.opts.url, this.opts.token, signal);
      if (res.statusCode !== 200) res.destroy();
      if (res.statusCode === 401) throw new LabrigError("the dispatcher refused the token (HTTP 401): pass its admin token with --token");
      if (res.statusCode !== 200) throw new LabrigError(`GET /api/events answered HTTP ${res.statusCode}`);
      onConnected();
      store.update((s) => setConnection(s, "connected", this.opts.now()));
      void this.resync();
      let burst: DispatcherEvent[] = [];
      const parser = createParser({ onEvent: (m) => collect(m, burst) });
      res.setEncoding("utf8");
      for await (const text of res as AsyncIterable<string>) {
        feedWatchdog();
        parser.feed(text);
        if (burst.length) {
          const evs = burst;
          burst = [];
          store.update((s) => applyDispatcherEvents(s, evs, this.opts.now()));
          this.opts.onEvents(evs);
        }
      }
    } catch (err) {
      throw conn.signal.aborted && conn.signal.reason ? conn.signal.reason : err;
    } finally {
      clearTimeout(watchdog);
      conn.abort();
    }
  }
}

/**
 * `GET /api/events` as a Node response: node:http hands the dashboard its 400 device events a
 * second for less CPU than fetch's web streams and a TextDecoder (2.9 % → 2.7 % of a core in
 * bench/tui-cpu.ts's reference run). Aborting `signal` destroys the request and the response.
 */
async function openEventStream(url: string, token: string, signal: AbortSignal): Promise<http.IncomingMessage> {
  const target = new URL(`${url}/api/events`);
  const get = target.protocol === "https:" ? https.get : http.get;
  const req = get(target, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, signal });
  const [res] = (await once(req, "response", { signal })) as [http.IncomingMessage];
  return res;
}

/** One SSE message as an event, its text made visible; anything that is not one is dropped. */
function collect(m: EventSourceMessage, burst: DispatcherEvent[]): void {
  let ev: DispatcherEvent;
  try {
    ev = JSON.parse(m.data) as DispatcherEvent;
  } catch {
    return;
  }
  if (ev && typeof ev === "object" && "type" in ev) burst.push(jsonMayHoldControls(m.data) ? visibleDeep(ev) : ev);
}
