// Benchmarks of a real dispatcher process over loopback HTTP, with simulated agents:
// dispatch latency (submit → an idle long-polling agent holds the lease), sustained heartbeats,
// and delta-sync throughput against plain local file appends.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDispatcher, type DispatcherProcess } from "../tests/helpers/dispatcher-process.js";
import { fakeGpus, SimAgent } from "../tests/helpers/sim-agent.js";
import { percentile, round, type Benchmark, type BenchResult } from "./types.js";

async function withDispatcher<T>(fn: (d: DispatcherProcess) => Promise<T>): Promise<T> {
  const d = await startDispatcher({ env: { LABRIG_HEARTBEAT_S: "5", LABRIG_STALE_AFTER_S: "30", LABRIG_DISCONNECT_AFTER_S: "60" } });
  try {
    return await fn(d);
  } finally {
    await d.stop();
    d.cleanup();
  }
}

async function registerAgents(d: DispatcherProcess, n: number, gpus = 1): Promise<SimAgent[]> {
  const agents: SimAgent[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = Array.from({ length: Math.min(20, n - i) }, (_, k) => new SimAgent(d.url, `sim-${String(i + k).padStart(3, "0")}`, fakeGpus(gpus)));
    agents.push(...(await Promise.all(batch.map((a) => a.register(d.joinToken)))));
  }
  await Promise.all(agents.map((a) => a.heartbeat()));
  return agents;
}

async function loopbackRoundTrip(url: string, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch(`${url}/api/health`);
    await r.arrayBuffer();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}

export const dispatchLatency: Benchmark = {
  name: "dispatch-latency-p99-ms",
  description: "submit → an idle long-polling agent holds the lease, 200 agents connected",
  async run({ quick, log }) {
    return withDispatcher(async (d) => {
      const agents = await registerAgents(d, 200);
      const admin = d.admin();
      const heartbeat = setInterval(() => agents.forEach((a) => void a.heartbeat().catch(() => {})), 2000);
      const received = new Map<string, number>();
      let stopped = false;
      const ac = new AbortController();
      const loops = agents.map(async (a) => {
        while (!stopped) {
          const lease = await a.lease(30, ac.signal).catch(() => null);
          if (!lease) continue;
          received.set(lease.job.id, performance.now());
          await a.report(lease, "running");
          await a.report(lease, "succeeded", 0);
        }
      });
      try {
        await new Promise((r) => setTimeout(r, 500)); // every agent is waiting in its long poll
        const n = quick ? 40 : 200;
        const latencies: number[] = [];
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          const job = await admin.submit({ command: ["true"], name: `bench-${i}` });
          while (!received.has(job.id)) await new Promise((r) => setImmediate(r));
          latencies.push(received.get(job.id)! - t0);
          await new Promise((r) => setTimeout(r, 5));
        }
        latencies.sort((a, b) => a - b);
        const rtt = await loopbackRoundTrip(d.url, n);
        const p99 = percentile(latencies, 99);
        log(`  dispatch p50 ${round(percentile(latencies, 50))} ms, p99 ${round(p99)} ms; loopback round trip p50 ${round(percentile(rtt, 50))} ms, p99 ${round(percentile(rtt, 99))} ms`);
        return [
          {
            name: "dispatch-latency-p99-ms",
            value: round(p99),
            unit: "ms",
            reference: { name: "loopback-http-rtt-p99-ms", value: round(percentile(rtt, 99)), unit: "ms" },
            goal: "< 50 ms",
            met: p99 < 50,
            note: `p50 ${round(percentile(latencies, 50))} ms over ${n} jobs, 200 agents long-polling; loopback GET p50 ${round(percentile(rtt, 50))} ms`,
          },
        ];
      } finally {
        stopped = true;
        clearInterval(heartbeat);
        ac.abort();
        await Promise.allSettled(loops);
      }
    });
  },
};

export const heartbeatsPerSecond: Benchmark = {
  name: "heartbeats-per-s",
  description: "sustained heartbeats per second from 200 agents with p99 under 50 ms",
  async run({ quick, log }) {
    return withDispatcher(async (d) => {
      const agents = await registerAgents(d, 200, 8);
      const seconds = quick ? 1.5 : 4;
      const levels = quick ? [8, 32] : [4, 8, 16, 32, 64];
      const rtt = await loopbackRoundTrip(d.url, 200);
      let best: { rate: number; p99: number; concurrency: number } | undefined;
      const rows: string[] = [];
      for (const concurrency of levels) {
        const latencies: number[] = [];
        const end = performance.now() + seconds * 1000;
        let next = 0;
        const start = performance.now();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (performance.now() < end) {
              const a = agents[next++ % agents.length]!;
              const t0 = performance.now();
              await a.heartbeat();
              latencies.push(performance.now() - t0);
            }
          }),
        );
        const elapsed = (performance.now() - start) / 1000;
        latencies.sort((a, b) => a - b);
        const rate = latencies.length / elapsed;
        const p99 = percentile(latencies, 99);
        rows.push(`c=${concurrency}: ${Math.round(rate)}/s p99 ${round(p99)} ms`);
        log(`  concurrency ${concurrency}: ${Math.round(rate)} heartbeats/s, p99 ${round(p99)} ms`);
        if (p99 < 50 && (!best || rate > best.rate)) best = { rate, p99, concurrency };
      }
      const value = best ? Math.round(best.rate) : 0;
      return [
        {
          name: "heartbeats-per-s",
          value,
          unit: "heartbeats/s",
          reference: { name: "loopback-http-health-per-s-serial", value: Math.round(1000 / percentile(rtt, 50)), unit: "requests/s" },
          goal: ">= 2000 with p99 < 50 ms",
          met: value >= 2000,
          note: best ? `at concurrency ${best.concurrency}, p99 ${round(best.p99)} ms; ${rows.join("; ")}` : `no level kept p99 < 50 ms: ${rows.join("; ")}`,
        },
      ];
    });
  },
};

export const syncThroughput: Benchmark = {
  name: "sync-throughput-ratio",
  description: "delta-append MB/s through the API divided by local file appends of the same bytes",
  async run({ quick, log }) {
    return withDispatcher(async (d) => {
      const [agent] = await registerAgents(d, 1);
      const admin = d.admin();
      await admin.submit({ command: ["true"], constraints: { hostId: agent!.hostId } });
      const lease = (await agent!.lease(5))!;
      await agent!.report(lease, "running");
      // The agent sends what a file grew by in appends of up to 1 MiB.
      const chunk = Buffer.alloc(1024 * 1024, 7);
      for (let i = 0, off = 0; i < 4; i++) off = (await agent!.client.syncAppend(lease.job.id, "warmup.log", off, chunk)).size;
      const total = (quick ? 16 : 64) * 1024 * 1024;
      const chunks = total / chunk.length;

      // Each side is timed three times and its best run kept: the page cache makes single runs noisy.
      const dir = mkdtempSync(join(tmpdir(), "labrig-bench-"));
      const localRuns: number[] = [];
      for (let run = 0; run < 3; run++) {
        const t0 = performance.now();
        const fd = openSync(join(dir, `local-${run}.log`), "a");
        for (let i = 0; i < chunks; i++) writeSync(fd, chunk);
        closeSync(fd);
        localRuns.push((performance.now() - t0) / 1000);
      }
      rmSync(dir, { recursive: true, force: true });
      const localS = Math.min(...localRuns);

      const apiRuns: number[] = [];
      for (let run = 0; run < 3; run++) {
        const t1 = performance.now();
        let offset = 0;
        for (let i = 0; i < chunks; i++) {
          offset = (await agent!.client.syncAppend(lease.job.id, `job-${run}.log`, offset, chunk)).size;
        }
        apiRuns.push((performance.now() - t1) / 1000);
      }
      const apiS = Math.min(...apiRuns);
      const mb = total / 1e6;
      const apiRate = mb / apiS;
      const localRate = mb / localS;
      log(`  API ${round(apiRate)} MB/s, local file ${round(localRate)} MB/s`);
      const result: BenchResult = {
        name: "sync-throughput-ratio",
        value: round(apiRate / localRate, 3),
        unit: "ratio",
        reference: { name: "local-append-mb-per-s", value: round(localRate), unit: "MB/s" },
        goal: ">= 0.3",
        met: apiRate / localRate >= 0.3,
        note: `API ${round(apiRate)} MB/s, ${mb} MB in ${chunk.length / 1024} KiB appends`,
      };
      return [result];
    });
  },
};
