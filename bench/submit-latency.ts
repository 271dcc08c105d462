// submit-to-running-ms and submit-to-log-synced-ms: a real dispatcher and a real agent process
// (`labrig agent`, a fake nvidia-smi), jobs with gpus 0 submitted one after another, each timed
// from the moment it is submitted to what a person sees through the API: the job's `running` state
// on the event stream (its process started), or the line it printed readable through
// `GET /api/sync/{jobId}/files/job.log`. Beside each: the dispatch latency (submit → `assigned`)
// in the same run, so the agent's share shows.
import http from "node:http";
import type { DispatcherEvent } from "../core/api.js";
import { startAgent, type AgentProcess } from "../tests/helpers/agent-process.js";
import { healthRoundTrips, machineLoad, withDispatcher } from "./lab-dispatcher.js";
import { LoopbackHttp } from "./loopback-http.js";
import { percentile, round, type Benchmark, type BenchResult } from "./types.js";

const WAIT_MS = 10_000;
const LINE = "labrig-bench-line";

/** Job events from `GET /api/events`, with the time each arrived here, waited on by job id and state. */
class JobEvents {
  private readonly seen = new Map<string, number>();
  private readonly waiting = new Map<string, (at: number) => void>();
  private readonly req: http.ClientRequest;

  constructor(url: string, token: string, onLog: (ev: Extract<DispatcherEvent, { type: "log" }>, at: number) => void) {
    this.req = http.get(`${url}/api/events`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (text: string) => {
        const at = performance.now();
        buf += text;
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = frame.split("\n").find((l) => l.startsWith("data: "));
          if (!data) continue;
          const ev = JSON.parse(data.slice("data: ".length)) as DispatcherEvent;
          if (ev.type === "job") this.arrived(`${ev.job.id}:${ev.job.state}`, at);
          else if (ev.type === "log") onLog(ev, at);
        }
      });
    });
    this.req.on("error", () => {});
  }

  private arrived(key: string, at: number): void {
    const w = this.waiting.get(key);
    if (w) {
      this.waiting.delete(key);
      w(at);
    } else this.seen.set(key, at);
  }

  /** When the job reached `state` (performance.now() here). */
  when(jobId: string, state: string): Promise<number> {
    const key = `${jobId}:${state}`;
    const at = this.seen.get(key);
    if (at !== undefined) {
      this.seen.delete(key);
      return Promise.resolve(at);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`job ${jobId} did not reach ${state} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      this.waiting.set(key, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }

  close(): void {
    this.req.destroy();
  }
}

/** Runs `fn` with a dispatcher, one real agent joined to it, and the event stream open. */
async function withLab<T>(fn: (lab: { api: LoopbackHttp; events: JobEvents; adminToken: string; onLog: (f: (ev: Extract<DispatcherEvent, { type: "log" }>, at: number) => void) => void }) => Promise<T>): Promise<T> {
  return withDispatcher(async (d) => {
    let agent: AgentProcess | undefined;
    let logListener: (ev: Extract<DispatcherEvent, { type: "log" }>, at: number) => void = () => {};
    const events = new JobEvents(d.url, d.adminToken, (ev, at) => logListener(ev, at));
    const api = new LoopbackHttp(d.url, 4);
    try {
      agent = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "bench-agent" });
      await new Promise((r) => setTimeout(r, 500)); // the agent is in its long poll
      return await fn({ api, events, adminToken: d.adminToken, onLog: (f) => (logListener = f) });
    } finally {
      events.close();
      api.close();
      await agent?.stop();
      agent?.cleanup();
    }
  });
}

const submit = async (api: LoopbackHttp, token: string, command: string[], i: number) =>
  (await api.json<{ id: string }>("POST", "/api/jobs", token, { command, gpus: 0, name: `bench-${i}` })).body!.id;

export const submitToRunning: Benchmark = {
  name: "submit-to-running-ms",
  description: "submit → the job's process running (its `running` event), real dispatcher and agent, gpus 0, `true`",
  async run({ quick, log }) {
    return withLab(async ({ api, events, adminToken }) => {
      const n = quick ? 200 : 500;
      const running: number[] = [];
      const assigned: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const id = await submit(api, adminToken, ["true"], i);
        const [a, r] = await Promise.all([events.when(id, "assigned"), events.when(id, "running")]);
        assigned.push(a - t0);
        running.push(r - t0);
        await events.when(id, "succeeded");
      }
      running.sort((x, y) => x - y);
      assigned.sort((x, y) => x - y);
      const rtt = await healthRoundTrips(api, 200);
      const load = machineLoad();
      const p = (xs: number[], q: number) => round(percentile(xs, q));
      log(`  submit → running p50 ${p(running, 50)} ms, p99 ${p(running, 99)} ms; submit → assigned (dispatch) p50 ${p(assigned, 50)} ms, p99 ${p(assigned, 99)} ms; ${load}`);
      return [
        {
          name: "submit-to-running-ms",
          value: p(running, 99),
          unit: "ms",
          reference: { name: "dispatch-latency-p99-ms", value: p(assigned, 99), unit: "ms" },
          goal: "< 50 ms",
          met: percentile(running, 99) < 50,
          note: `p99 over ${n} submits (p50 ${p(running, 50)} ms, max ${round(running[running.length - 1]!)} ms); dispatch (submit → assigned) p50 ${p(assigned, 50)} ms, p99 ${p(assigned, 99)} ms, so the agent's share (lease → process started → reported) is about ${round(percentile(running, 50) - percentile(assigned, 50))} ms at p50; loopback GET /api/health p50 ${p(rtt, 50)} ms; ${load}`,
        },
      ] satisfies BenchResult[];
    });
  },
};

export const submitToLogSynced: Benchmark = {
  name: "submit-to-log-synced-ms",
  description: "submit → the one line a job prints readable through GET /api/sync/{jobId}/files/job.log, real dispatcher and agent",
  async run({ quick, log }) {
    return withLab(async ({ api, events, adminToken, onLog }) => {
      const n = quick ? 50 : 200;
      const synced: number[] = [];
      const running: number[] = [];
      for (let i = 0; i < n; i++) {
        let id = "";
        let readable: () => void = () => {};
        const lineReadable = new Promise<void>((resolve) => (readable = resolve));
        onLog((ev) => {
          if (ev.jobId !== id || ev.path !== "job.log") return;
          void api.request("GET", `/api/sync/${id}/files/job.log`, { token: adminToken }).then((a) => {
            if (a.status === 200 && a.body.toString("utf8").includes(LINE)) readable();
          });
        });
        const t0 = performance.now();
        id = await submit(api, adminToken, ["echo", LINE], i);
        const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`job ${id}'s line was not readable within ${WAIT_MS} ms`)), WAIT_MS).unref());
        running.push((await events.when(id, "running")) - t0);
        await Promise.race([lineReadable, timeout]);
        synced.push(performance.now() - t0);
        await events.when(id, "succeeded");
      }
      synced.sort((x, y) => x - y);
      running.sort((x, y) => x - y);
      const load = machineLoad();
      const p = (xs: number[], q: number) => round(percentile(xs, q));
      log(`  submit → line readable p50 ${p(synced, 50)} ms, p99 ${p(synced, 99)} ms; submit → running p50 ${p(running, 50)} ms; ${load}`);
      return [
        {
          name: "submit-to-log-synced-ms",
          value: p(synced, 50),
          unit: "ms",
          reference: { name: "submit-to-running-p50-ms", value: p(running, 50), unit: "ms" },
          note: `p50 over ${n} jobs running \`echo\` (p99 ${p(synced, 99)} ms): dispatch, start, exit and the agent's final sync; a line printed by a job that keeps running waits for the next sync round as well (LABRIG_SYNC_INTERVAL_S, 1 s by default); ${load}`,
        },
      ] satisfies BenchResult[];
    });
  },
};
