// dispatch-latency-p99-ms: from submitting a job to an idle agent holding its lease, with 200
// agents registered, heartbeating and long-polling. The reference is the loopback HTTP round trip
// (GET /api/health) measured in the same run under the same load.
import type { Lease } from "../core/api.js";
import { HEARTBEAT_S, healthRoundTrips, machineLoad, registerAgents, withDispatcher } from "./lab-dispatcher.js";
import { LoopbackHttp } from "./loopback-http.js";
import { percentile, round, type Benchmark } from "./types.js";

const AGENTS = 200;
const POLL_WAIT_S = 30;
const ARRIVAL_TIMEOUT_MS = 10_000;

/** Values posted under a key, taken by whoever asks for it, whichever comes first. */
class Mailbox<T> {
  private readonly held = new Map<string, T>();
  private readonly waiting = new Map<string, (v: T) => void>();

  put(key: string, value: T): void {
    const w = this.waiting.get(key);
    if (w) {
      this.waiting.delete(key);
      w(value);
    } else this.held.set(key, value);
  }

  take(key: string, timeoutMs: number, what: string): Promise<T> {
    if (this.held.has(key)) {
      const v = this.held.get(key)!;
      this.held.delete(key);
      return Promise.resolve(v);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`${what} for ${key} did not come within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(key, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }
}

export const dispatchLatency: Benchmark = {
  name: "dispatch-latency-p99-ms",
  description: `submit → an idle long-polling agent holds the lease, ${AGENTS} agents connected`,
  async run({ quick, log }) {
    return withDispatcher(async (d) => {
      const agents = await registerAgents(d, AGENTS);
      const polls = new LoopbackHttp(d.url, AGENTS + 8);
      const ops = new LoopbackHttp(d.url, 16);
      const arrivals = new Mailbox<number>();
      const endings = new Mailbox<true>();
      let stopped = false;

      // Heartbeats spread evenly over the interval, as real agents' would be.
      const bodies = agents.map((a) => JSON.stringify(a.heartbeatBody()));
      let nextBeat = 0;
      const beats = setInterval(() => {
        const i = nextBeat++ % agents.length;
        void ops.request("POST", `/api/agents/${agents[i]!.hostId}/heartbeat`, { token: agents[i]!.client.token, body: bodies[i] }).catch(() => {});
      }, (HEARTBEAT_S * 1000) / agents.length);

      const loops = agents.map(async (a) => {
        const token = a.client.token!;
        while (!stopped) {
          const ans = await polls.request("GET", `/api/agents/${a.hostId}/lease?wait=${POLL_WAIT_S}`, { token }).catch((err: unknown) => {
            if (stopped) return undefined;
            throw err;
          });
          const at = performance.now();
          if (!ans || ans.status === 204) continue;
          if (ans.status !== 200) throw new Error(`lease poll of ${a.hostId} answered ${ans.status}: ${ans.body.toString("utf8")}`);
          const lease = JSON.parse(ans.body.toString("utf8")) as Lease;
          arrivals.put(lease.job.id, at);
          await ops.json("POST", `/api/jobs/${lease.job.id}/events`, token, { attempt: lease.attempt, state: "running" });
          await ops.json("POST", `/api/jobs/${lease.job.id}/events`, token, { attempt: lease.attempt, state: "succeeded", exitCode: 0 });
          endings.put(lease.job.id, true);
        }
      });
      const loopsDone = Promise.all(loops);
      let loopFailure: unknown;
      loopsDone.catch((err: unknown) => (loopFailure = err));

      try {
        await new Promise((r) => setTimeout(r, 1000)); // every agent is in its long poll
        const n = quick ? 50 : 300;
        const latencies: number[] = [];
        const submits: number[] = [];
        for (let i = 0; i < n; i++) {
          if (loopFailure) throw loopFailure;
          const t0 = performance.now();
          const { body: job } = await ops.json<{ id: string }>("POST", "/api/jobs", d.adminToken, { command: ["true"], name: `bench-${i}` });
          submits.push(performance.now() - t0);
          latencies.push((await arrivals.take(job!.id, ARRIVAL_TIMEOUT_MS, "the lease")) - t0);
          await endings.take(job!.id, ARRIVAL_TIMEOUT_MS, "the end report");
          await new Promise((r) => setTimeout(r, 20)); // the agent is back in its long poll
        }
        latencies.sort((a, b) => a - b);
        submits.sort((a, b) => a - b);
        const rtt = await healthRoundTrips(ops, n);
        const p50 = percentile(latencies, 50);
        const p99 = percentile(latencies, 99);
        const load = machineLoad();
        log(`  dispatch p50 ${round(p50)} ms, p99 ${round(p99)} ms; submit answered p50 ${round(percentile(submits, 50))} ms; loopback GET /api/health p50 ${round(percentile(rtt, 50))} ms, p99 ${round(percentile(rtt, 99))} ms; ${load}`);
        return [
          {
            name: "dispatch-latency-p99-ms",
            value: round(p99),
            unit: "ms",
            reference: { name: "loopback-http-rtt-p99-ms", value: round(percentile(rtt, 99)), unit: "ms" },
            goal: "< 50 ms",
            met: p99 < 50,
            note: `p50 ${round(p50)} ms, max ${round(latencies[latencies.length - 1]!)} ms over ${n} jobs (the submit's own answer: p50 ${round(percentile(submits, 50))} ms, p99 ${round(percentile(submits, 99))} ms) with ${AGENTS} agents long-polling and heartbeating every ${HEARTBEAT_S} s; loopback GET p50 ${round(percentile(rtt, 50))} ms; ${load}`,
          },
        ];
      } finally {
        stopped = true;
        clearInterval(beats);
        polls.close(); // ends the open long polls
        await loopsDone.catch(() => {});
        ops.close();
      }
    });
  },
};
