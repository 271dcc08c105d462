// sync-throughput-ratio: delta appends through `POST /api/sync/{jobId}/files/{path}?offset=N`,
// sent as the agent sends them (agent/sync-upload.ts: the file region streamed from disk over a
// kept-alive connection) to a leased job whose attempt is current, in MB/s, divided by appending
// the same chunks to a local file in the same run. Measured at 256 KiB appends (a log growing
// between sync rounds) and at 8 MiB, the most the agent sends in one append. The note carries the
// same appends through core/client.ts (fetch, a buffered body: what the agent sent before) and
// through a bare node:http client with the bytes in memory, and the same uploader against
// bench/bare-sync-server.ts, which only writes and hashes the bytes: what this machine's HTTP and
// disk give any server of the contract, so the ratio to it is the dispatcher's own cost.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSecondsOf, machineLoad, registerAgents, withDispatcher } from "./lab-dispatcher.js";
import { SyncUploader } from "../agent/sync-upload.js";
import { nodeWithTsx, repoRoot } from "../tests/helpers/dispatcher-process.js";
import { LoopbackHttp } from "./loopback-http.js";
import { median, round, type Benchmark, type BenchResult } from "./types.js";

const ROUNDS = 5;

/** bench/bare-sync-server.ts as its own process; resolves with its URL and a stop. */
async function startBareServer(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(nodeWithTsx[0], [...nodeWithTsx.slice(1), "bench/bare-sync-server.ts"], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await Promise.race([once(child.stdout!, "data"), once(child, "exit").then(() => { throw new Error("bench/bare-sync-server.ts exited before it listened"); })])) as [Buffer];
  return { url: `http://127.0.0.1:${Number(String(line).trim())}`, stop: () => child.kill("SIGTERM") };
}
/** Append sizes and the result name each one reports under. */
const SIZES = [
  { chunk: 256 * 1024, name: "sync-throughput-ratio", vsBare: "sync-throughput-vs-bare-server", goal: 0.15 },
  { chunk: 8 * 1024 * 1024, name: "sync-throughput-ratio-8mib-appends", vsBare: "sync-throughput-vs-bare-server-8mib-appends", goal: 0.3 },
];
/** The share of the bare server's MB/s the dispatcher keeps, with its routing, auth, SQLite commit and event. */
const VS_BARE_GOAL = 0.8;

export const syncThroughput: Benchmark = {
  name: "sync-throughput-ratio",
  description: "delta-append MB/s through the API divided by local file appends of the same bytes",
  async run({ quick, log }) {
    return withDispatcher(async (d) => {
      const [agent] = await registerAgents(d, 1);
      await d.admin().submit({ command: ["true"], constraints: { hostId: agent!.hostId } });
      const lease = await agent!.lease(5);
      if (!lease) throw new Error("the benchmark's job was not leased to its agent within 5 s");
      await agent!.report(lease, "running");
      const jobId = lease.job.id;
      const total = (quick ? 16 : 64) * 1024 * 1024;
      const raw = new LoopbackHttp(d.url, 2);
      const uploader = new SyncUploader(agent!.client);
      const bare = await startBareServer();
      const bareUploader = new SyncUploader({ url: bare.url, token: "" });
      const dir = mkdtempSync(join(tmpdir(), "labrig-bench-"));
      // The agent's side of an append: the bytes are in a file it reads as it sends.
      const source = join(dir, "source.log");

      const viaUploads = (to: SyncUploader, holder: string) => async (path: string, chunk: Buffer) => {
        let offset = 0;
        for (let i = 0; i < total / chunk.length; i++) {
          offset = (await to.append(jobId, path, lease.attempt, offset, { file: source, start: offset, length: chunk.length })).size;
        }
        if (offset !== total) throw new Error(`${holder} holds ${offset} bytes of ${path}, expected ${total}`);
      };
      const viaUploader = viaUploads(uploader, "the dispatcher");
      const viaBare = viaUploads(bareUploader, "the bare server");
      const viaClient = async (path: string, chunk: Buffer) => {
        let offset = 0;
        for (let i = 0; i < total / chunk.length; i++) offset = (await agent!.client.syncAppend(jobId, path, offset, chunk)).size;
        if (offset !== total) throw new Error(`the dispatcher holds ${offset} bytes of ${path}, expected ${total}`);
      };
      // The same appends over node:http: shows how much of the gap is the client (fetch), not the service.
      const viaNodeHttp = async (path: string, chunk: Buffer) => {
        let offset = 0;
        for (let i = 0; i < total / chunk.length; i++) {
          const a = await raw.request("POST", `/api/sync/${jobId}/files/${path}?offset=${offset}`, { token: agent!.client.token, body: chunk });
          if (a.status !== 200) throw new Error(`append to ${path} at ${offset} answered ${a.status}: ${a.body.toString("utf8")}`);
          offset = (JSON.parse(a.body.toString("utf8")) as { size: number }).size;
        }
      };
      const local = (path: string, chunk: Buffer, keep = false) => {
        const file = join(dir, path);
        const fd = openSync(file, "w");
        for (let i = 0; i < total / chunk.length; i++) writeSync(fd, chunk);
        closeSync(fd);
        if (!keep) rmSync(file);
      };
      const time = async (fn: () => unknown) => {
        const t0 = performance.now();
        await fn();
        return (performance.now() - t0) / 1000;
      };

      try {
        await viaClient("warmup.log", Buffer.alloc(1024 * 1024, 7));
        const results: BenchResult[] = [];
        for (const { chunk: size, name, vsBare, goal } of SIZES) {
          const chunk = Buffer.alloc(size, 7);
          local("source.log", chunk, true);
          // Interleaved rounds, the median of each: the machine is shared, and the page cache makes single runs noisy (a best run can be twice the others).
          const runs = { local: [] as number[], uploader: [] as number[], client: [] as number[], nodeHttp: [] as number[], bare: [] as number[] };
          const cpu0 = cpuSecondsOf(d.child.pid!);
          const ways: [keyof typeof runs, () => unknown][] = [
            ["local", () => local(`local-${size}.log`, chunk)],
            ["uploader", () => viaUploader(`uploader-${size}-${runs.uploader.length}.log`, chunk)],
            ["client", () => viaClient(`client-${size}-${runs.client.length}.log`, chunk)],
            ["nodeHttp", () => viaNodeHttp(`node-http-${size}-${runs.nodeHttp.length}.log`, chunk)],
            ["bare", () => viaBare(`bare-${size}-${runs.bare.length}.log`, chunk)],
          ];
          // The files written pile up dirty in the page cache and slow whatever comes after them
          // (writeback): each run starts after `sync`, and each round with the next way.
          for (let r = 0; r < ROUNDS; r++) {
            for (let k = 0; k < ways.length; k++) {
              const [way, fn] = ways[(r + k) % ways.length]!;
              spawnSync("sync");
              runs[way].push(await time(fn));
            }
          }
          const serverS = cpuSecondsOf(d.child.pid!) - cpu0;
          const mb = total / 1e6;
          const rate = (s: number[]) => mb / median(s);
          const apiRate = rate(runs.uploader);
          const clientRate = rate(runs.client);
          const localRate = rate(runs.local);
          const nodeHttpRate = rate(runs.nodeHttp);
          const bareRate = rate(runs.bare);
          const serverMsPerMiB = (serverS * 1000) / ((3 * ROUNDS * total) / 2 ** 20);
          const load = machineLoad();
          const kib = size / 1024;
          log(`  ${kib} KiB appends: API (agent/sync-upload.ts) ${round(apiRate)} MB/s, API (core/client.ts) ${round(clientRate)} MB/s, API (node:http, bytes in memory) ${round(nodeHttpRate)} MB/s, bare server ${round(bareRate)} MB/s, local file ${round(localRate)} MB/s; ${load}`);
          results.push({
            name,
            value: round(apiRate / localRate, 3),
            unit: "ratio",
            reference: { name: "local-append-mb-per-s", value: round(localRate), unit: "MB/s" },
            goal: `>= ${goal}`,
            met: apiRate / localRate >= goal,
            note: `API ${round(apiRate)} MB/s streamed from a file by agent/sync-upload.ts (core/client.ts with the bytes in memory: ${round(clientRate)} MB/s, ratio ${round(clientRate / localRate, 3)}; bare node:http: ${round(nodeHttpRate)} MB/s, ratio ${round(nodeHttpRate / localRate, 3)}; the same uploader against bench/bare-sync-server.ts, which only writes and hashes: ${round(bareRate)} MB/s, ratio ${round(bareRate / localRate, 3)}, the API at ${round(apiRate / bareRate, 2)} of it), ${round(mb, 1)} MB in ${kib} KiB appends, median of ${ROUNDS}; dispatcher ${round(serverMsPerMiB)} ms CPU per MiB received; ${load}`,
          });
          results.push({
            name: vsBare,
            value: round(apiRate / bareRate, 3),
            unit: "ratio",
            reference: { name: "bare-sync-server-mb-per-s", value: round(bareRate), unit: "MB/s" },
            goal: `>= ${VS_BARE_GOAL}`,
            met: apiRate / bareRate >= VS_BARE_GOAL,
            note: `the same ${kib} KiB appends by agent/sync-upload.ts to the dispatcher (${round(apiRate)} MB/s) and to bench/bare-sync-server.ts, which writes at the offset and hashes and does nothing else (${round(bareRate)} MB/s): what the dispatcher reaches of what a server with nothing else to do gets on this machine; ${load}`,
          });
        }
        return results;
      } finally {
        raw.close();
        bare.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
};
