// The dashboard against a real dispatcher process with simulated agents (registering and
// heartbeating through the real API): what arrives over SSE shows up without a key press, the
// operator's confirmed actions reach the dispatcher, a synced job.log shows in the job view, and
// a dispatcher that goes away is shown and reconnected to.
import { render } from "ink-testing-library";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { App, type EffectHandler } from "../../tui/app.js";
import { DataClient } from "../../tui/client.js";
import { initialState } from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";
import { startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { SimAgent, fakeGpus } from "../helpers/sim-agent.js";
import { waitFor } from "../helpers/wait.js";

const ANSI = /\x1b\[[0-9;]*m/g;

let dispatcher: DispatcherProcess;
const agents: SimAgent[] = [];

beforeAll(async () => {
  dispatcher = await startDispatcher();
  for (const hostId of ["sim-a100", "sim-4090"]) {
    const a = await new SimAgent(dispatcher.url, hostId, fakeGpus(hostId === "sim-a100" ? 4 : 1)).register(dispatcher.joinToken);
    await a.heartbeat();
    agents.push(a.startHeartbeats(500));
  }
});

afterAll(async () => {
  for (const a of agents) a.stop();
  await dispatcher?.stop();
  dispatcher?.cleanup();
});

const running: (() => void)[] = [];
afterEach(() => {
  for (const stop of running.splice(0)) stop();
});

/** Renders the app wired to a data client on the real dispatcher, as runTui does. */
function startDashboard(target: { url: string; adminToken: string } = dispatcher) {
  const url = target.url;
  const store = new TuiStore(initialState(url));
  const client = new DataClient({ url, token: target.adminToken, store, backoffMs: { initial: 200, max: 500 }, resyncMs: 60_000 });
  const onEffect: EffectHandler = (e) => {
    if (e.kind === "run") void client.perform(e.command);
    else if (e.kind === "open-job") void client.openJob(e.jobId, e.follow);
    else if (e.kind === "follow") client.setFollow(e.jobId, e.following);
  };
  const app = render(<App store={store} onEffect={onEffect} size={{ width: 100, height: 30 }} />);
  client.start();
  running.push(() => {
    client.stop();
    store.close();
    app.unmount();
  });
  const text = () => (app.lastFrame() ?? "").replace(ANSI, "");
  const see = (what: string, ok: (t: string) => boolean, timeoutMs = 10_000) => waitFor(what, text, ok, timeoutMs, 50);
  // Ink reads input on the next tick; give each key its own.
  const key = async (k: string) => {
    app.stdin.write(k);
    await new Promise((r) => setTimeout(r, 30));
  };
  return { store, client, app, text, see, key };
}

describe("dashboard against a real dispatcher", () => {
  it("shows the simulated hosts, then a newly queued job appears in the queue without a key press", async () => {
    const d = startDashboard();
    await d.see("both hosts", (t) => t.includes("sim-a100") && t.includes("sim-4090") && t.includes("● connected"));
    expect(d.text()).toMatch(/sim-a100\s+● healthy/);
    await d.key("2");
    await d.see("the empty queue", (t) => t.includes("no jobs yet"));
    const framesBefore = d.app.frames.length;
    // Pinned to a host that has not joined, so the job stays queued.
    const job = await dispatcher.admin().submit({ name: "late-arrival", project: "tuitest", command: ["python", "train.py"], gpus: 4, constraints: { hostId: "not-joined-yet" } });
    const t = await d.see("the new job", (x) => x.includes(job.id));
    expect(t).toMatch(new RegExp(`${job.id}\\s+late-arrival\\s+tuitest\\s+admin\\s+norm\\s+4`));
    expect(t).toMatch(/queued\s*$/m);
    expect(d.app.frames.length).toBeGreaterThan(framesBefore);
  });

  it("cancels a job after the operator confirms, and the dispatcher holds it cancelled", async () => {
    const d = startDashboard();
    const job = await dispatcher.admin().submit({ name: "to-cancel", project: "tuitest", command: "sleep 100", gpus: 1, constraints: { hostId: "not-joined-yet" } });
    await d.key("2");
    await d.see("the job", (t) => t.includes(job.id));
    await d.key("/");
    for (const ch of "to-cancel") await d.key(ch);
    await d.key("\r");
    await d.key("c");
    await d.see("the question", (t) => t.includes(`cancel job ${job.id} (to-cancel), now queued?`));
    expect((await dispatcher.admin().job(job.id)).state).toBe("queued");
    await d.key("y");
    await waitFor("the job cancelled", () => dispatcher.admin().job(job.id), (j) => j.state === "cancelled");
    await d.see("the cancelled state on screen", (t) => new RegExp(`${job.id}.*cancelled`).test(t));
  });

  it("folds a sweep into one row and cancels the whole group after the operator confirms", async () => {
    const d = startDashboard();
    // Pinned to a host that has not joined: all three stay queued.
    const sweep = await dispatcher.admin().submitGroup({
      name: "tui-sweep",
      jobs: [1, 2, 3].map((seed) => ({ name: `tui-sweep [seed=${seed}]`, project: "tuitest", command: ["python", "train.py", "--seed", String(seed)], gpus: 1, constraints: { hostId: "not-joined-yet" } })),
    });
    const id = sweep.group.id;
    await d.key("2");
    await d.key("/");
    for (const ch of id) await d.key(ch);
    await d.key("\r");
    const row = await d.see("the group's row", (t) => t.includes(`${id} + tui-sweep · 3 jobs: 3 queued · 3 GPUs · admin`));
    for (const j of sweep.jobs) expect(row).not.toContain(j.id);
    await d.key("c");
    await d.see("the question", (t) => t.includes(`cancel 3 jobs (3 queued) of group ${id} (tui-sweep)?`));
    expect((await dispatcher.admin().group(id)).jobs.map((j) => j.state)).toEqual(["queued", "queued", "queued"]);
    await d.key("y");
    await waitFor("the group cancelled", () => dispatcher.admin().group(id), (g) => g.jobs.every((j) => j.state === "cancelled"));
    await d.see("the cancelled group on screen", (t) => t.includes(`group ${id}: 3 jobs cancelled or asked to stop`) && t.includes("3 jobs: 3 cancelled"));
  });

  it("shows a running job's synced job.log in the job view and follows what is appended", async () => {
    const agent = agents[0]!;
    const job = await dispatcher.admin().submit({ name: "logger", project: "tuitest", command: "python train.py", gpus: 1, constraints: { hostId: "sim-a100" } });
    const lease = await agent.lease(5);
    expect(lease?.job.id).toBe(job.id);
    await agent.report(lease!, "running");
    await agent.client.syncAppend(job.id, "job.log", 0, new TextEncoder().encode("epoch 1 loss 0.9\n"), lease!.attempt);
    const d = startDashboard();
    await d.key("2");
    await d.see("the running job", (t) => t.includes(job.id));
    await d.key("/");
    for (const ch of "logger") await d.key(ch);
    await d.key("\r");
    await d.key("\r");
    await d.see("the log", (t) => t.includes("epoch 1 loss 0.9") && t.includes("synced copy"));
    expect(d.text()).toContain("synced (attempt 1): job.log 17 B");
    await agent.client.syncAppend(job.id, "job.log", 17, new TextEncoder().encode("epoch 2 loss 0.5\n"), lease!.attempt);
    await d.see("the appended line", (t) => t.includes("epoch 2 loss 0.5"));
    await agent.report(lease!, "succeeded", 0);
  });
});

describe("dashboard and a dispatcher that goes away", () => {
  it("shows the dispatcher unreachable, keeps the last data, and reconnects when it is back", async () => {
    const own = await startDispatcher();
    try {
      await new SimAgent(own.url, "sim-lonely", fakeGpus(2)).register(own.joinToken).then((a) => a.heartbeat());
      const d = startDashboard(own);
      await d.see("the host", (t) => t.includes("sim-lonely") && t.includes("● connected"));
      await own.kill();
      const t = await d.see("the banner", (x) => x.includes("✖ disconnected") && x.includes("dispatcher unreachable"));
      expect(t).toContain("sim-lonely");
      const again = await startDispatcher({ stateDir: own.stateDir, port: own.port });
      try {
        await d.see("the reconnection", (x) => x.includes("● connected") && !x.includes("unreachable"), 15_000);
        await d.key("5");
        await d.see("the events", (x) => x.includes("reconnected to the dispatcher") && x.includes("lost the dispatcher"));
      } finally {
        await again.stop();
      }
    } finally {
      own.cleanup();
    }
  });
});

describe("dashboard and a real agent", () => {
  it("follows a running job's log live from the agent's HTTP, line by line as it is written", async () => {
    const agent = await startAgent({ url: dispatcher.url, joinToken: dispatcher.joinToken, hostId: "real-agent" });
    try {
      const job = await dispatcher.admin().submit({
        name: "ticker",
        project: "tuitest",
        command: ["sh", "-c", "for i in $(seq 1 60); do echo tick $i; sleep 0.1; done"],
        gpus: 0,
        constraints: { hostId: "real-agent" },
      });
      await waitFor("the job running", () => dispatcher.admin().job(job.id), (j) => j.state === "running");
      const d = startDashboard();
      await d.see("the agent's host", (t) => t.includes("real-agent"));
      await d.key("2");
      await d.key("/");
      for (const ch of "ticker") await d.key(ch);
      await d.key("\r");
      await d.key("l");
      const first = await d.see("the live log", (t) => t.includes("live from the agent") && /tick \d+/.test(t));
      const firstTick = Number(/tick (\d+)/.exec(first.split("· following")[1]!)![1]);
      // Later lines arrive without a key press while the job writes them.
      await d.see("later lines", (t) => /tick (\d+)/.test(t) && Math.max(...[...t.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]))) >= firstTick + 10);
    } finally {
      await agent.stop();
      agent.cleanup();
    }
  });
});
