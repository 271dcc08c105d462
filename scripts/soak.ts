// `pnpm soak [--seed N] [--jobs 500] [--agents 3]`: a soak run with real faults, not part of
// `pnpm test`. A real dispatcher and real agents (the bundle `pnpm build:agent` makes) on loopback
// run short jobs while, at random times drawn from the seed, an agent is killed with -9 or SIGTERM
// (it runs with --keep-jobs) and started again on its workdir, or the dispatcher is killed with -9
// or SIGTERM and started again on its state. At the end every job must have ended exactly once in
// its recorded history, succeeded, with its job.log on the dispatcher exactly the bytes it wrote.
// Prints the figures; exits 1 when any outcome is wrong.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Command, InvalidArgumentError } from "commander";
import { isTerminalJobState, type Job, type JobState } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { type AgentProcess, startAgent } from "../tests/helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../tests/helpers/dispatcher-process.js";
import { agentBundle } from "../tests/provision/helpers.js";

const wholeNumber = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("a whole number >= 1");
  return n;
};
const opts = new Command("soak")
  .description("soak run: short jobs over real agents while agents and the dispatcher are killed and restarted at random (from a seed)")
  .option("--seed <n>", "seed for the fault schedule and the jobs (default: random, printed)", wholeNumber)
  .option("--jobs <n>", "how many jobs", wholeNumber, 500)
  .option("--agents <n>", "how many agents", wholeNumber, 3)
  .option("--max-minutes <n>", "stop the faults after this long, then give the open jobs 5 quiet minutes to end", wholeNumber, 20)
  .parse()
  .opts<{ seed?: number; jobs: number; agents: number; maxMinutes: number }>();

const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
/** mulberry32: a small, well-mixed PRNG, so a seed replays the same schedule. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(seed);
const between = (lo: number, hi: number) => lo + rand() * (hi - lo);
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} soak: ${m}\n`);

// Short thresholds so faults resolve within seconds; a restart of an agent is quicker than `lost`.
const dispatcherEnv = {
  LABRIG_HEARTBEAT_S: "1",
  LABRIG_STALE_AFTER_S: "3",
  LABRIG_DISCONNECT_AFTER_S: "6",
  LABRIG_LOST_AFTER_S: "20",
  LABRIG_MISSING_GRACE_S: "6",
  LABRIG_ASSIGN_TIMEOUT_S: "15",
};
const lineOf = (jobId: string, i: number) => `${jobId} line ${i}\n`;

const root = mkdtempSync(join(tmpdir(), "labrig-soak-"));
const stateDir = join(root, "dispatcher");
mkdirSync(stateDir);
const bundle = await agentBundle();
let dispatcher: DispatcherProcess = await startDispatcher({ stateDir, env: dispatcherEnv, readyWithinMs: 90_000 });
const port = dispatcher.port;
const admin: DispatcherClient = dispatcher.admin();
const hostIds = Array.from({ length: opts.agents }, (_, i) => `soak-${i + 1}`);
/** Starting a process is the harness's part, not the system's under test: a start slowed past 90 s by a loaded machine is tried again. */
async function retryStart<T>(what: string, start: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await start();
    } catch (err) {
      if (tries >= 4) throw err;
      log(`${what} did not start (${(err as Error).message.split("\n")[0]}); trying again`);
      await sleep(1000);
    }
  }
}
const restartDispatcher = () => retryStart("the dispatcher", () => startDispatcher({ stateDir, port, env: dispatcherEnv, readyWithinMs: 90_000 }));
const startSoakAgent = (hostId: string) =>
  retryStart(`agent ${hostId}`, () => startAgentOnce(hostId));
const startAgentOnce = (hostId: string) =>
  startAgent({ url: dispatcher.url, joinToken: dispatcher.joinToken, hostId, workdir: join(root, hostId), gpus: "rtx-4090-x2.txt", command: [process.execPath, bundle], args: ["--keep-jobs"], readyWithinMs: 90_000 });
const agents = new Map<string, AgentProcess>();
// Whatever way this script ends, the processes it started end with it.
process.on("exit", () => {
  for (const a of agents.values()) a.child.kill("SIGKILL");
  dispatcher.child.kill("SIGKILL");
});
for (const h of hostIds) agents.set(h, await startSoakAgent(h));

/** Calls the dispatcher, waiting through its restarts (up to 5 minutes). */
async function call<T>(f: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + 5 * 60_000;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > giveUpAt) throw err;
      await sleep(500);
    }
  }
}

log(`seed ${seed}: ${opts.jobs} jobs over ${opts.agents} agents (2 GPUs each), state in ${root}`);
const faults: Record<string, number> = { "agent kill -9": 0, "agent SIGTERM (--keep-jobs)": 0, "dispatcher kill -9": 0, "dispatcher SIGTERM": 0 };
let allEnded = false;
async function injectFaults(): Promise<void> {
  while (!allEnded) {
    await sleep(between(2000, 7000));
    if (allEnded) return;
    const r = rand();
    const down = between(300, 3000);
    if (r < 0.6) {
      const hostId = hostIds[Math.floor(rand() * hostIds.length)]!;
      const a = agents.get(hostId)!;
      const hard = rand() < 0.6;
      const kind = hard ? "agent kill -9" : "agent SIGTERM (--keep-jobs)";
      faults[kind]!++;
      log(`${kind} ${hostId}; back in ${(down / 1000).toFixed(1)} s`);
      if (hard) await a.kill();
      else await a.stop();
      a.cleanup();
      await sleep(down);
      agents.set(hostId, await startSoakAgent(hostId));
    } else {
      const hard = rand() < 0.5;
      const kind = hard ? "dispatcher kill -9" : "dispatcher SIGTERM";
      faults[kind]!++;
      log(`${kind}; back in ${(down / 1000).toFixed(1)} s`);
      if (hard) await dispatcher.kill();
      else await dispatcher.stop();
      await sleep(down);
      dispatcher = await restartDispatcher();
    }
  }
}

const t0 = Date.now();
const faulting = injectFaults();
// Faults start with the submissions; 8 at a time, each waiting through dispatcher restarts.
const lineCounts = new Map<string, number>(); // by job name: a retried submit may queue a name twice
const plan = Array.from({ length: opts.jobs }, (_, i) => ({ name: `soak-${i + 1}`, lines: 1 + Math.floor(rand() * 30) }));
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (next < plan.length) {
      const { name, lines } = plan[next++]!;
      lineCounts.set(name, lines);
      await call(() =>
        admin.submit({ name, project: "soak", command: `for i in $(seq 1 ${lines}); do echo "$LABRIG_JOB_ID line $i"; sleep 0.02; done`, gpus: 1, maxRetries: 20 }),
      );
    }
  }),
);
log(`submitted ${opts.jobs} jobs in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const deadline = t0 + opts.maxMinutes * 60_000;
let jobs: Job[] = [];
for (;;) {
  jobs = await call(() => admin.jobs({ project: "soak", limit: opts.jobs * 2 }));
  const open = jobs.filter((j) => !isTerminalJobState(j.state)).length;
  if (open === 0 && new Set(jobs.map((j) => j.name)).size === opts.jobs) break;
  if (Date.now() > deadline && !allEnded) {
    // Faults stop here; what is still open gets a quiet while to end before the record is checked.
    log(`${opts.maxMinutes} minutes of faults are over with ${open} jobs not ended; no more faults, waiting up to 5 minutes`);
    allEnded = true;
  }
  if (Date.now() > deadline + 5 * 60_000) {
    log(`gave up with ${open} jobs not ended`);
    break;
  }
  await sleep(2000);
}
allEnded = true;
await faulting;
const tookS = (Date.now() - t0) / 1000;
// Let re-adopted jobs of the last fault report, then check the record.
await sleep(3000);

const wrong: string[] = [];
const byState: Partial<Record<JobState, number>> = {};
let bytesChecked = 0;
let attempts = 0;
const finalJobs = await call(() => admin.jobs({ project: "soak", limit: opts.jobs * 2 }));
const duplicates = finalJobs.length - new Set(finalJobs.map((j) => j.name)).size;
for (const j of finalJobs) {
  byState[j.state] = (byState[j.state] ?? 0) + 1;
  attempts += j.attempt;
  const { body } = await call(() => admin.request<Job & { history: { attempt: number; toState: JobState }[] }>("GET", `/api/jobs/${j.id}`));
  const ends = body.history.filter((t) => isTerminalJobState(t.toState));
  if (ends.length !== 1) wrong.push(`${j.id}: ended ${ends.length} times in its history (${ends.map((e) => `attempt ${e.attempt} ${e.toState}`).join(", ")})`);
  if (j.state !== "succeeded") {
    wrong.push(`${j.id}: ${j.state} (${j.reason ?? "no reason"})`);
    continue;
  }
  const expected = Array.from({ length: lineCounts.get(j.name)! }, (_, i) => lineOf(j.id, i + 1)).join("");
  const got = (await call(() => admin.syncGet(j.id, "job.log"))).toString();
  bytesChecked += got.length;
  if (got !== expected) wrong.push(`${j.id}: job.log of attempt ${j.attempt} is ${got.length} bytes, expected ${expected.length}${got.length > expected.length ? " (doubled bytes)" : " (missing bytes)"}`);
}
// Runs that reached their end on some agent: more than one for a job means a finished job ran again.
const finishedRuns = new Map<string, number>();
for (const h of hostIds) {
  const jobsDir = join(root, h, "jobs");
  for (const id of safeList(jobsDir)) {
    for (const a of safeList(join(jobsDir, id))) {
      try {
        const run = JSON.parse(readFileSync(join(jobsDir, id, a, "run.json"), "utf8")) as { state: string };
        if (run.state === "succeeded") finishedRuns.set(id, (finishedRuns.get(id) ?? 0) + 1);
      } catch {
        /* an attempt that never wrote its end */
      }
    }
  }
}
const rerunFinished = [...finishedRuns].filter(([, n]) => n > 1);
for (const [id, n] of rerunFinished) wrong.push(`${id}: ran to success ${n} times on the agents`);

for (const a of agents.values()) {
  await a.stop();
  a.cleanup();
}
await dispatcher.stop();

const totalFaults = Object.values(faults).reduce((a, b) => a + b, 0);
console.log(`labrig soak, seed ${seed}`);
console.log(`  jobs:            ${opts.jobs} over ${opts.agents} agents, ${tookS.toFixed(0)} s`);
console.log(`  records:         ${finalJobs.length} (${duplicates} a second submission of the same job, a submit retried after a dispatcher restart ate its answer)`);
console.log(`  ended:           ${Object.entries(byState).map(([s, n]) => `${s} ${n}`).join(", ")}`);
console.log(`  attempts:        ${attempts} (${attempts - finalJobs.length} re-runs of attempts cut short by a fault)`);
console.log(`  faults injected: ${totalFaults} (${Object.entries(faults).map(([k, n]) => `${k}: ${n}`).join(", ")})`);
console.log(`  log bytes checked byte-exact: ${bytesChecked}`);
console.log(`  finished jobs run again: ${rerunFinished.length}`);
console.log(`  wrong outcomes:  ${wrong.length}`);
for (const w of wrong.slice(0, 30)) console.log(`    ${w}`);
if (wrong.length === 0) rmSync(root, { recursive: true, force: true });
else console.log(`  state kept in ${root}`);
process.exit(wrong.length === 0 ? 0 : 1);

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
