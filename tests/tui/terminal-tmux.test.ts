// The dashboards in a real terminal (tmux, 160×45 and 80×24): `labrig tui` against a real
// dispatcher and agent (nvidia-smi faked: no GPU here), `pnpm start` as a new user runs it, and
// `labrig wall`. Every capture is held against what `Screen` renders for the same state (a
// reference client on the same dispatcher, moved by the same keys) or, where the two cannot share
// a state (the event log, a job's live log, Docker), against the frame's shape: one header, one
// tab line, one footer. On q the terminal must be as it was.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DispatcherClient } from "../../core/client.js";
import { type AgentProcess, startAgent, writeFakeNvidiaSmi } from "../helpers/agent-process.js";
import { type DispatcherProcess, repoRoot, startDispatcher } from "../helpers/dispatcher-process.js";
import { TmuxSession } from "../helpers/tmux.js";
import { waitFor } from "../helpers/wait.js";
import { ReferenceDashboard, expectOneFrame, expectScreenMatches, press } from "./screen-match.js";

const node = `${process.execPath} --import tsx cli/main.ts`;
const sessions: TmuxSession[] = [];
const refs: ReferenceDashboard[] = [];
afterEach(async () => {
  for (const r of refs.splice(0)) r.stop();
  for (const s of sessions.splice(0)) await s.kill();
});

async function terminal(cols: number, rows: number, command: string, env: Record<string, string | undefined>) {
  // A marker before and the exit status after, to see what the command leaves on the screen; the
  // shell stays (a dead pane hides the cursor, which would hide whether the command restored it).
  const t = await TmuxSession.start({ cols, rows, cwd: repoRoot, env, command: `printf 'BEFORE\\n'; ${command}; echo "EXIT=$?"; exec sleep 600` });
  sessions.push(t);
  return t;
}

/**
 * After q: the main screen back with the cursor and what it held before (a resize may have pushed
 * its top rows into scrollback), and nothing of the dashboard on it or in scrollback.
 */
async function expectTerminalRestored(t: TmuxSession, exit = 0): Promise<string[]> {
  expect(await t.display("#{alternate_on}")).toBe("0");
  expect(await t.display("#{cursor_flag}")).toBe("1");
  const all = (await t.scrollback()).filter((l, i, a) => l !== "" || a.slice(i).some((x) => x !== ""));
  expect(all[0], all.join("\n")).toBe("BEFORE");
  expect(all.at(-1), all.join("\n")).toBe(`EXIT=${exit}`);
  expect(all.some((l) => /^labrig [◌●✖]/.test(l) || l.startsWith(" 1 Devices")), all.join("\n")).toBe(false);
  return all;
}

describe("labrig tui in tmux", () => {
  let d: DispatcherProcess;
  let agent: AgentProcess;

  beforeAll(async () => {
    d = await startDispatcher();
    agent = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-a100", gpus: "a100-80gb-x4.txt" });
  });
  afterAll(async () => {
    await agent?.stop();
    agent?.cleanup();
    await d?.stop();
    d?.cleanup();
  });

  it("draws one clean frame through start, updates, every view, a resize, help, the filter, a sweep group folded and opened, a dispatcher restart and q", { timeout: 240_000 }, async () => {
    const env = { LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: join(d.stateDir, "home") };
    const t = await terminal(160, 45, `${node} tui`, env);
    const ref = new ReferenceDashboard(d.url, d.adminToken);
    refs.push(ref);
    let rows = 45;

    await t.waitForText("gpu-a100", 60_000);
    await expectScreenMatches(t, ref);
    expectOneFrame(await t.capture(), "1-5 views");

    // An update arrives without a key: a job submitted elsewhere runs and ends.
    const admin = d.admin();
    const job = await admin.submit({ name: "tmux-probe", project: "tests", command: ["sh", "-c", "sleep 2"], gpus: 1 });
    await t.waitForText("tmux-probe", 20_000);
    await waitFor("the job to end", () => admin.job(job.id), (j) => j.state === "succeeded", 30_000);
    await expectScreenMatches(t, ref);

    await press(t, ref, rows, "2");
    await expectScreenMatches(t, ref);
    expectOneFrame(await t.capture(), "⏎ open");

    // The job view, the containers and the event log hold what only the terminal's client fetched.
    await press(t, ref, rows, "Enter");
    expectOneFrame(await t.waitForText(`job ${job.id}`), "Esc back");
    await press(t, ref, rows, "4");
    expectOneFrame(await t.waitFor("the containers view", (l) => l.at(-1)!.startsWith("1-5 views  ↑↓ move  ⏎ job")), "1-5 views");
    await press(t, ref, rows, "5");
    expectOneFrame(await t.waitFor("the events view", (l) => l.at(-1)!.startsWith("1-5 views  ↑↓ scroll")), "1-5 views");

    await press(t, ref, rows, "1");
    await expectScreenMatches(t, ref);

    await t.resize(80, 24);
    rows = 24;
    await expectScreenMatches(t, ref);
    await press(t, ref, rows, "2");
    await expectScreenMatches(t, ref);
    await t.resize(160, 45);
    rows = 45;
    await expectScreenMatches(t, ref);

    await press(t, ref, rows, "?");
    await expectScreenMatches(t, ref);
    await press(t, ref, rows, "Escape", "/", "t", "m", "u");
    await expectScreenMatches(t, ref);
    expectOneFrame(await t.capture(), "type to filter");
    await press(t, ref, rows, "Escape");

    // A sweep is one row in the Queue; Enter opens it (its jobs drawn under it), ← folds it again.
    // Pinned to a host that has not joined: its jobs stay queued (a job no host could ever run is refused at submit).
    const sweep = await admin.submitGroup({ name: "tmux-sweep", jobs: [1, 2, 3].map((seed) => ({ name: `tmux-sweep [seed=${seed}]`, project: "tests", command: ["sleep", "1"], gpus: 1, constraints: { hostId: "not-joined-yet" } })) });
    await press(t, ref, rows, "2");
    await t.waitForText(sweep.group.id, 20_000);
    await expectScreenMatches(t, ref);
    await press(t, ref, rows, "Enter");
    expect((await expectScreenMatches(t, ref)).join("\n")).toMatch(/├ seed=\d[\s\S]*└ seed=\d/);
    await press(t, ref, rows, "Down", "Left");
    await expectScreenMatches(t, ref);
    await t.resize(80, 24);
    rows = 24;
    await expectScreenMatches(t, ref);
    await t.resize(160, 45);
    rows = 45;
    await press(t, ref, rows, "1");

    // The dispatcher goes away and comes back on the same port with the same state.
    await d.kill();
    expectOneFrame(await t.waitForText("dispatcher unreachable", 30_000), "1-5 views");
    d = await startDispatcher({ stateDir: d.stateDir, port: d.port });
    await t.waitFor("the reconnection", (l) => l[0]!.includes("● connected") && !l.join("\n").includes("dispatcher unreachable"), 60_000);
    await waitFor("the agent back", () => d.admin().devices(), (ds) => ds.some((x) => x.hostId === "gpu-a100" && x.status === "healthy"), 60_000);
    await expectScreenMatches(t, ref, 30_000);

    await t.keys("q");
    await t.waitForText("EXIT=0");
    expect(await expectTerminalRestored(t)).toEqual(["BEFORE", "EXIT=0"]);
  });
});

describe("pnpm start in tmux", () => {
  let home: string;
  let smi: { dir: string; path: string };
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), "labrig-lab-tmux-"));
    smi = writeFakeNvidiaSmi("rtx-4090-x2.txt");
  });
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
    rmSync(smi.dir, { recursive: true, force: true });
  });

  it("shows the local lab's dashboard as one clean frame at 80×24 and back, and q stops the lab leaving its lines", { timeout: 240_000 }, async () => {
    const env = { LABRIG_HOME: home, LABRIG_NVIDIA_SMI: smi.path, LABRIG_URL: undefined, LABRIG_TOKEN: undefined };
    const t = await terminal(80, 24, "pnpm start --port 0", env);
    await t.waitForText(/[●◌] connected/, 90_000);
    const lab = JSON.parse(readFileSync(join(home, "lab.json"), "utf8")) as { url: string; adminTokenFile: string };
    const token = readFileSync(lab.adminTokenFile, "utf8").trim();
    const ref = new ReferenceDashboard(lab.url, token);
    refs.push(ref);
    let rows = 24;
    await expectScreenMatches(t, ref, 30_000);
    expectOneFrame(await t.capture(), "1-5 views");

    const admin = new DispatcherClient({ url: lab.url, token });
    const job = await admin.submit({ name: "lab-probe", project: "tests", command: ["sh", "-c", "exit 0"], gpus: 0 });
    await waitFor("the job to end", () => admin.job(job.id), (j) => j.state === "succeeded", 30_000);
    await expectScreenMatches(t, ref);

    for (const view of ["2", "3", "4", "5", "1"]) {
      await press(t, ref, rows, view);
      expectOneFrame(await t.waitFor(`view ${view}`, (l) => /\? help {2}\/ filter {2}q quit/.test(l.at(-1)!)), /\? help {2}\/ filter {2}q quit/);
    }
    await expectScreenMatches(t, ref);
    await t.resize(160, 45);
    rows = 45;
    await expectScreenMatches(t, ref);
    await press(t, ref, rows, "?");
    await expectScreenMatches(t, ref);
    await press(t, ref, rows, "Escape", "2", "/", "l", "a", "b");
    await expectScreenMatches(t, ref);
    await t.resize(80, 24);
    rows = 24;
    await expectScreenMatches(t, ref);
    await press(t, ref, rows, "Enter", "1");
    await expectScreenMatches(t, ref);

    await t.keys("q");
    await t.waitForText("EXIT=0", 60_000);
    const text = (await expectTerminalRestored(t)).join("\n");
    // What the lab printed before the dashboard is back, followed by its stop lines.
    expect(text).toContain("In another terminal (no flags needed):");
    expect(text).toMatch(/stopping the lab\n[\s\S]*lab stopped\nEXIT=0/);
    expect(existsSync(join(home, "lab.json"))).toBe(false);
  });
});

describe("pnpm start in tmux when the dispatcher dies", () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), "labrig-lab-tmux-kill-"));
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  // The local lab owns its dispatcher: one that dies ends the lab (labrig tui, above, waits for a
  // lost dispatcher instead). The terminal comes back whole, with what stopped and why.
  it("gives the terminal back and says which part stopped, with the end of its log", { timeout: 180_000 }, async () => {
    const env = { LABRIG_HOME: home, LABRIG_URL: undefined, LABRIG_TOKEN: undefined };
    const t = await terminal(80, 24, "pnpm start --port 0", env);
    await t.waitForText(/[●◌] connected/, 90_000);
    expectOneFrame(await t.capture(), "1-5 views");
    const lab = JSON.parse(readFileSync(join(home, "lab.json"), "utf8")) as { dispatcherPid: number };
    process.kill(lab.dispatcherPid, "SIGKILL");
    await t.waitForText("EXIT=1", 60_000);
    const text = (await expectTerminalRestored(t, 1)).join("\n");
    expect(text).toContain("the dispatcher stopped unexpectedly; its log");
    expect(text).toMatch(/stopping the lab[\s\S]*EXIT=1/);
    expect(existsSync(join(home, "lab.json"))).toBe(false);
  });
});

describe("labrig wall in tmux", () => {
  let d: DispatcherProcess;
  let agent: AgentProcess;
  beforeAll(async () => {
    d = await startDispatcher();
    agent = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-4090", gpus: "rtx-4090-x2.txt" });
  });
  afterAll(async () => {
    await agent?.stop();
    agent?.cleanup();
    await d?.stop();
    d?.cleanup();
  });

  it("draws the wall at 160×45 and 80×24 without stray rows and q restores the terminal", { timeout: 180_000 }, async () => {
    const admin = d.admin();
    const job = await admin.submit({ name: "wall-probe", project: "tests", command: ["sh", "-c", "exit 0"], gpus: 1 });
    await waitFor("the job to end", () => admin.job(job.id), (j) => j.state === "succeeded", 30_000);
    // blessed draws lines with the terminal's line-drawing charset (ACS), whose cells capture-pane
    // reads back as letters ("q", "x"); ncurses' own switch makes it draw them in Unicode instead.
    const env = { LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: join(d.stateDir, "home"), NCURSES_NO_UTF8_ACS: "1" };
    const t = await terminal(160, 45, `${node} wall`, env);
    // Drawn for this size: the top border spans (about: tmux drops a cell of it) the terminal's
    // width and a bottom border is on its last row.
    const spans = (l: string[], cols: number) => l[0]!.length > cols - 4 && l[0]!.length <= cols;
    const wall = (l: string[]) => {
      const text = l.join("\n");
      const drawn = l[0]!.endsWith("┐") && l.at(-1)!.startsWith("└");
      return drawn && text.includes("labrig wall ·") && text.includes("live") && text.includes("wall-probe") && text.includes("gpu-4090");
    };
    let lines = await t.waitFor("the wall", (l) => spans(l, 160) && wall(l), 60_000);
    const check = (l: string[]) => {
      const text = l.join("\n");
      expect(text.match(/ GPU utilisation % /g) ?? [], text).toHaveLength(1);
      expect(text.match(/ recent events /g) ?? [], text).toHaveLength(1);
      expect(text).not.toContain("nullnull");
      expect(text).not.toContain("no hosts");
      expect(text).toMatch(/wall-probe\s+succeeded\s+gpu-4090/);
      expect(text).toContain(`job ${job.id}`);
      expect(text).not.toContain("no events yet");
    };
    check(lines);
    await t.resize(80, 24);
    lines = await t.waitFor("the wall at 80x24", (l) => l.length === 24 && spans(l, 80) && wall(l));
    expect(lines.join("\n").match(/ queue /g) ?? []).toHaveLength(1);
    await t.resize(160, 45);
    lines = await t.waitFor("the wall at 160x45", (l) => l.length === 45 && spans(l, 160) && wall(l));
    check(lines);
    await t.keys("q");
    await t.waitForText("EXIT=0");
    expect(await t.display("#{alternate_on}")).toBe("0");
    expect(await t.display("#{cursor_flag}")).toBe("1");
    const all = (await t.scrollback()).filter((l) => l !== "");
    expect(all).toEqual(["BEFORE", "EXIT=0"]);
  });
});
