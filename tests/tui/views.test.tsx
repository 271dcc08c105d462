// Every dashboard view rendered from hand-built states with ink-testing-library: an 80×24
// terminal, a big one, 200 hosts, long names, missing GPU figures, an empty lab, a lost dispatcher.
import { render } from "ink-testing-library";
import { afterEach, describe, expect, it, vi } from "vitest";

// Colours are part of what is tested (the temperature warning); chalk reads this at import.
vi.hoisted(() => {
  process.env.FORCE_COLOR = "1";
});

import { cleanup } from "ink-testing-library";
import { App, Screen } from "../../tui/app.js";
import { DataClient } from "../../tui/client.js";
import { type KeyInfo, keyToAction, reduceAction } from "../../tui/keys.js";
import { type TuiState, addEvent, setConnection, startLog, appendLogText } from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";
import { NOW, SWEEP, device, gpu, iso, job, labState, smallLab, sweepJobs } from "./fixtures.js";

afterEach(() => cleanup());

const ANSI = /\x1b\[[0-9;]*m/g;
const plain = (s: string) => s.replace(ANSI, "");

function frame(state: TuiState, width = 80, height = 23): string {
  const r = render(<Screen state={state} width={width} height={height} now={NOW} />);
  return r.lastFrame() ?? "";
}

function expectFits(f: string, width: number, height: number) {
  const lines = plain(f).split("\n");
  expect(lines.length).toBeLessThanOrEqual(height);
  for (const l of lines) expect([...l].length, `line too wide: ${l}`).toBeLessThanOrEqual(width);
}

describe("Devices view", () => {
  it("shows each host's status, last seen, GPU bars, memory, temperature, power and running job in 80×24", () => {
    const f = frame(smallLab());
    const text = plain(f);
    expectFits(f, 80, 23);
    expect(text).toMatch(/gpu-a100\s+● healthy\s+2s/);
    expect(text).toMatch(/gpu-3090\s+● stale\s+15s/);
    expect(text).toContain("1/2"); // busy GPUs of the A100 host
    expect(text).toContain("01jobrun00");
    expect(text).toMatch(/0 A100-SXM4-80GB\s+█+.*97%\s+20\.0\/80\.0 GiB\s+84°C\s+390W busy/);
    expect(text).toMatch(/1 A100-SXM4-80GB.*3%.*41°C\s+200W free/);
  });

  it("colours a GPU at 80 °C or more as a warning and leaves a cool one plain", () => {
    const f = frame(smallLab());
    expect(f).toMatch(/\x1b\[31m(\x1b\[1m)?\s*84°C/);
    expect(f).not.toMatch(/\x1b\[31m(\x1b\[1m)?\s*41°C/);
    expect(f).toMatch(/\x1b\[32m● healthy/);
    expect(f).toMatch(/\x1b\[33m● stale/);
  });

  it("shows missing GPU figures as dashes instead of numbers", () => {
    const text = plain(frame(smallLab()));
    expect(text).toMatch(/0 RTX 3090\s+·+\s+—\s+—\/24\.0 GiB\s+—\s+— free/);
  });

  it("scrolls 200 hosts of 8 GPUs to the selected host and expands only that one in 80×24", () => {
    const devices = Array.from({ length: 200 }, (_, i) => device(`node-${String(i).padStart(3, "0")}`, { gpus: Array.from({ length: 8 }, (_, g) => gpu(g, { utilizationPct: (i + g) % 100 })) }));
    let s = labState(devices, []);
    s = reduceAction(s, { type: "move", delta: 150 }).state;
    const f = frame(s);
    const text = plain(f);
    expectFits(f, 80, 23);
    expect(text).toMatch(/▸ node-150/);
    expect(text).not.toContain("node-000");
    // Only the selected host has GPU lines: 8 of them.
    expect(text.match(/^\s+\d A100/gm)).toHaveLength(8);
  });

  it("draws the selected host's bar across the whole width and the other host rows without trailing blanks", () => {
    const s = labState([device("gpu-a"), device("gpu-b")], []);
    const lines = frame(s, 160, 40).split("\n");
    const selected = lines.find((l) => plain(l).startsWith("▸ gpu-a"))!;
    const other = lines.find((l) => plain(l).startsWith("  gpu-b"))!;
    // Inverse runs to the last column: its blanks are part of what is seen.
    expect(selected).toMatch(/\x1b\[7m/);
    expect(plain(selected)).toHaveLength(160);
    expect(plain(other)).toBe(plain(other).trimEnd());
    expect(plain(other).length).toBeLessThan(160);
  });

  it("colours each GPU cell of a host row by its use, and red when that GPU is hot", () => {
    const s = labState([device("gpu-a", { gpus: [gpu(0, { utilizationPct: 95 }), gpu(1, { utilizationPct: 96 }), gpu(2, { utilizationPct: 10 }), gpu(3, { utilizationPct: 50, temperatureC: 85 })] })], [], { cursor: { devices: 5, queue: 0, containers: 0, events: 0 } });
    const row = frame(s, 160, 40).split("\n").find((l) => plain(l).includes("gpu-a") && plain(l).includes("●"))!;
    // Neighbours of one colour may share one escape; the cells and their colours are what count.
    const cells = [...row.matchAll(/\x1b\[(3\dm)([▁▂▃▄▅▆▇█]+)/g)].flatMap((m) => [...m[2]!].map((c) => `${m[1]}${c}`));
    expect(cells).toEqual(["32m█", "32m█", "34m▁", "31m▄"]);
  });

  it("cuts long host names, GPU names and job lists with an ellipsis instead of wrapping", () => {
    const long = "h".repeat(60);
    const s = labState([device(long, { gpus: [gpu(0, { name: "NVIDIA Some Extremely Long Accelerator Name Edition 2000" })], runningJobs: ["01aaaaaaaa", "01bbbbbbbb", "01cccccccc"] })], []);
    const f = frame(s);
    expectFits(f, 80, 23);
    expect(plain(f)).toContain("hhh…");
    expect(plain(f)).toContain("01aaaaaaaa +2");
  });

  it("uses a wide terminal: every host expanded and names shown whole", () => {
    const devices = Array.from({ length: 5 }, (_, i) => device(`a-rather-long-hostname-${i}.lab.example`, { gpus: [gpu(0), gpu(1), gpu(2)] }));
    const f = frame(labState(devices, []), 160, 50);
    const text = plain(f);
    expectFits(f, 160, 50);
    expect(text.match(/^\s+\d A100-SXM4-80GB /gm)).toHaveLength(15);
    expect(text).toContain("a-rather-long-hostname-4.lab.example");
    expect(text).not.toContain("…");
  });

  it("tells an operator with an empty lab how to add a host and submit a job", () => {
    const text = plain(frame(labState([], [])));
    expect(text).toContain("no devices yet");
    expect(text).toContain("pnpm labrig agent --url http://127.0.0.1:8000");
    expect(text).toContain("pnpm submit -- python train.py");
  });
});

describe("a lost dispatcher", () => {
  it("shows a banner with the reason, the retry countdown and how old the data is, and keeps the last data", () => {
    let s = setConnection(smallLab(), "disconnected", new Date(NOW - 7000), { error: "ECONNREFUSED", retryAt: NOW + 3000 });
    s = { ...s, connection: { ...s.connection, lastSyncAt: iso(20) } };
    const f = frame(s);
    const text = plain(f);
    expectFits(f, 80, 23);
    expect(text).toContain("✖ disconnected");
    expect(text).toContain("dispatcher unreachable for 7s (ECONNREFUSED); retrying in 3s");
    expect(text).toContain("gpu-a100");
  });

  it("says it is waiting for the dispatcher rather than that the lab is empty before the first connection", () => {
    const s = { ...labState([], []), connection: { status: "connecting" as const, since: null, error: null, retryAt: null, lastSyncAt: null } };
    const text = plain(frame(s));
    expect(text).toContain("waiting for the dispatcher at http://127.0.0.1:8000");
    expect(text).not.toContain("no devices yet");
  });
});

describe("who is on each GPU", () => {
  it("shows a labrig job's process and one outside labrig under their GPUs, and counts the latter's GPU as in use", () => {
    const d = device("gpu-a100", {
      gpus: [
        gpu(0, { busy: true, processes: [{ pid: 48213, usedMemoryMiB: 70912, user: "ana", command: "python train.py --epochs 90", jobId: "01jobrun00" }] }),
        gpu(1, { processes: [{ pid: 48377, usedMemoryMiB: 312, user: "bo", command: "python -m ipykernel_launcher", jobId: null }] }),
        gpu(2, { processes: [] }),
      ],
      runningJobs: ["01jobrun00"],
    });
    const text = plain(frame(labState([d], [])));
    const rows = text.split("\n");
    const g0 = rows.findIndex((l) => /^\s+0 A100/.test(l));
    expect(rows[g0]).toMatch(/busy$/);
    expect(rows[g0 + 1]).toBe("       ↳ job 01jobrun00 · ana pid 48213 · 69.3 GiB · python train.py --epochs 90");
    expect(rows[g0 + 2]).toMatch(/^\s+1 A100.* in use$/);
    expect(rows[g0 + 3]).toBe("       ↳ not labrig · bo pid 48377 · 0.3 GiB · python -m ipykernel_launcher");
    expect(rows[g0 + 4]).toMatch(/^\s+2 A100.* free$/);
    expect(rows.find((l) => l.includes("▸ gpu-a100"))).toMatch(/2\/3/);
    expect(rows[0]).toContain("GPUs 2/3 busy");
  });
});

describe("the first screen after jobs ended", () => {
  it("lists the newest job ends under the hosts, with state, age, host and exit code", () => {
    const s = smallLab();
    s.jobs["01done0000"] = job("01done0000", { name: "quick-eval", state: "succeeded", hostId: "gpu-a100", gpuIndices: [1], exitCode: 0, endedAt: iso(12) });
    const f = frame(s);
    expectFits(f, 80, 23);
    const text = plain(f);
    expect(text).toContain("recently ended (2 Queue lists every job)");
    const rows = text.split("\n");
    const first = rows.findIndex((l) => l.includes("01done0000"));
    expect(rows[first]).toMatch(/succeeded\s+12s ago\s+01done0000 quick-eval on gpu-a100:1 · exit 0/);
    expect(rows[first + 1]).toMatch(/failed\s+10m ago\s+01jobfail0 bert-tiny on gpu-3090:0 · exit 2 · exit code 2/);
  });

  it("leaves the strip out when there is no room or nothing ended", () => {
    expect(plain(frame(smallLab(), 80, 5))).not.toContain("recently ended");
    const none = smallLab();
    delete none.jobs["01jobfail0"];
    expect(plain(frame(none))).not.toContain("recently ended");
  });
});

describe("Queue view", () => {
  it("suggests the job-file flag submit really has when the queue is empty", () => {
    const text = plain(frame(labState([], [], { view: "queue" })));
    expect(text).toContain("pnpm submit --config job.yaml");
    expect(text).not.toContain("--file");
  });

    it("lists running, then queued by priority, then finished jobs with project, owner, GPUs, host, age and state", () => {
    const s = labState(
      [],
      [
        job("01done0000", { state: "succeeded", endedAt: iso(60), hostId: "h1", gpuIndices: [0], exitCode: 0 }),
        job("01low00000", { priority: "low", createdAt: iso(500) }),
        job("01high0000", { priority: "high", createdAt: iso(10) }),
        job("01run00000", { state: "running", hostId: "gpu-a100", gpuIndices: [2, 3], gpus: 2, startedAt: iso(90), owner: "alice" }),
        job("01lost0000", { state: "failed", reason: "lost", endedAt: iso(30) }),
      ],
      { view: "queue" },
    );
    const f = frame(s);
    expectFits(f, 80, 23);
    const rows = plain(f)
      .split("\n")
      .filter((l) => /^[▸ ] 01/.test(l));
    expect(rows.map((r) => r.slice(2, 12))).toEqual(["01run00000", "01high0000", "01low00000", "01lost0000", "01done0000"]);
    expect(rows[0]).toMatch(/vision\s+alice\s+norm\s+2 gpu-a100:2,3\s+1m running/);
    expect(rows[1]).toMatch(/vision\s+—\s+high/);
    expect(rows[3]).toMatch(/lost/);
    expect(plain(f)).toContain("1 running · 0 assigned · 2 queued · 2 finished");
  });

  it("keeps 1,000 queued jobs with 200-character names inside 80×24", () => {
    const jobs = Array.from({ length: 1000 }, (_, i) => job(`01q${String(i).padStart(7, "0")}`, { name: "x".repeat(200), createdAt: iso(5000 - i) }));
    const f = frame(labState([], jobs, { view: "queue" }));
    expectFits(f, 80, 23);
    expect(plain(f)).toContain("(1-17 of 1000)");
  });

  it("says how to submit a job when there are none", () => {
    expect(plain(frame(labState([], [], { view: "queue" })))).toContain("pnpm submit -- python train.py");
  });
});

describe("Job view", () => {
  it("shows the command, attempts, exit code, synced files and the end of the log", () => {
    const j = job("01jobx0000", { state: "failed", attempt: 2, maxRetries: 2, exitCode: 137, reason: "exit code 137", hostId: "gpu-a100", gpuIndices: [1], startedAt: iso(100), endedAt: iso(10), image: "pytorch/pytorch:2.4" });
    let s = labState([], [j], { view: "job", detailJobId: j.id });
    s = startLog(s, j.id);
    s = appendLogText(s, j.id, Array.from({ length: 300 }, (_, i) => `step ${i} loss ${(1 / (i + 1)).toFixed(4)}`).join("\n") + "\nKilled");
    s = { ...s, synced: { jobId: j.id, attempt: 2, files: [{ path: "job.log", size: 12_345, updatedAt: iso(10) }, { path: "metrics.csv", size: 2048, updatedAt: iso(10) }], error: null } };
    const f = frame(s);
    const text = plain(f);
    expectFits(f, 80, 23);
    expect(text).toContain("job 01jobx0000 train-01jobx0000 · vision · failed · attempt 2/3");
    expect(text).toContain("host gpu-a100 GPUs 1 · wants 1 GPU · exit code 137");
    expect(text).toContain("$ python train.py --lr 0.1");
    expect(text).toContain("image pytorch/pytorch:2.4");
    expect(text).toContain("synced (attempt 2): job.log 12.1 KiB · metrics.csv 2.0 KiB");
    expect(text).toContain("following");
    // The tail: the last lines, the unfinished one included; not the first.
    expect(text).toContain("step 299 loss 0.0033");
    expect(text).toContain("Killed");
    expect(text).not.toContain("step 0 loss");
  });

  it("shows the code snapshot a job runs in, with its git commit, branch and whether it was dirty", () => {
    const code = { snapshot: "3f2a9c1d0b7e".padEnd(64, "0"), files: 412, bytes: 3_250_000, git: { commit: "1a2b3c4d5e6f7a8b".padEnd(40, "0"), branch: "main", dirty: true, diffSha256: "ab".repeat(32), diffBytes: 120 } };
    const j = job("01jobc0000", { state: "running", hostId: "gpu-a100", gpuIndices: [0], startedAt: iso(30), code, workdir: "experiments" });
    const text = plain(frame(labState([], [j], { view: "job", detailJobId: j.id }), 120));
    expect(text).toContain("code 412 files, 3.1 MiB in snapshot 3f2a9c1d0b7e, git 1a2b3c4d (main, dirty) · runs in experiments");
    const clean = job("01jobc0001", { code: { ...code, git: { ...code.git, dirty: false, diffSha256: null, diffBytes: null } } });
    expect(plain(frame(labState([], [clean], { view: "job", detailJobId: clean.id }), 120))).toContain("git 1a2b3c4d (main)");
    // In 80 columns the line is cut with an ellipsis, never wrapped.
    expectFits(frame(labState([], [j], { view: "job", detailJobId: j.id })), 80, 23);
    expect(plain(frame(labState([], [job("01jobc0002")], { view: "job", detailJobId: "01jobc0002" })))).not.toContain("snapshot");
  });

  it("says why a queued job waits, here and in the Queue on its row", () => {
    const j = job("01jobw0000", { state: "queued", waiting: "behind 3 jobs of bob: fair share (they have used less lately)" });
    expect(plain(frame(labState([], [j], { view: "job", detailJobId: j.id }), 120))).toContain("waits: behind 3 jobs of bob: fair share");
    const queue = plain(frame(labState([], [j], { view: "queue" }), 120)).split("\n");
    expect(queue[2]).toContain("01jobw0000 waits: behind 3 jobs of bob: fair share");
  });

  it("says which job it is loading and what to do when none is open", () => {
    expect(plain(frame(labState([], [], { view: "job" })))).toContain("no job open: pick one in the Queue (2)");
    expect(plain(frame(labState([], [], { view: "job", detailJobId: "01zzzz0000" })))).toContain("loading job 01zzzz0000");
  });
});

describe("Containers view", () => {
  it("lists each host's labrig containers with state, CPU and memory, and a host's error in place of rows", () => {
    const s = labState([], [], {
      view: "containers",
      containers: {
        error: null,
        hosts: [
          {
            host: "local",
            via: "DOCKER_HOST unix:///run/docker.sock",
            updatedAt: iso(3),
            error: null,
            rows: [
              { id: "abc", name: "labrig-dispatcher", image: "labrig/dispatcher:latest", state: "running", status: "Up 2 hours", role: "dispatcher", jobId: null, cpuPct: 1.5, memUsedBytes: 80 * 1024 ** 2, memLimitBytes: 1024 ** 3 },
              { id: "def", name: "labrig-job-01jobrun00", image: "pytorch/pytorch:2.4", state: "exited", status: "Exited (0)", role: "job", jobId: "01jobrun00", cpuPct: null, memUsedBytes: null, memLimitBytes: null },
            ],
          },
          { host: "gpu-b", via: "ssh deploy@10.0.0.3:22", updatedAt: iso(3), error: "connect ECONNREFUSED 10.0.0.3:22", rows: [] },
        ],
      },
    });
    const f = frame(s);
    const text = plain(f);
    expectFits(f, 80, 23);
    expect(text).toMatch(/labrig-dispatcher\s+dispatcher\s+running\s+2%\s+80\.0 MiB \/ 1\.0 GiB/);
    expect(text).toMatch(/labrig-job-01jobr…\s+job 01jobrun00\s+exited\s+—\s+—/);
    expect(text).toContain("gpu-b ssh deploy@10.0.0.3:22 · 3s ago connect ECONNREFUSED");
  });
});

describe("Events view and the frame", () => {
  it("lists events newest first with their time and level", () => {
    let s = labState([], [], { view: "events" });
    s = addEvent(s, { at: iso(30), kind: "device", level: "info", text: "host gpu-a joined with 2 GPUs (healthy)" });
    s = addEvent(s, { at: iso(5), kind: "job", level: "error", text: "job 01x (t) running → failed exit 1" });
    const lines = plain(frame(s)).split("\n");
    const a = lines.findIndex((l) => l.includes("running → failed"));
    const b = lines.findIndex((l) => l.includes("joined with 2 GPUs"));
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(a);
  });

  it("shows the question of a pending action in the footer and the help on ?", () => {
    const s = smallLab({ view: "queue", modal: { kind: "confirm", command: { kind: "cancel", jobId: "01jobrun00" }, prompt: "cancel job 01jobrun00 (resnet50-sweep), now running on gpu-a100?" } });
    expect(plain(frame(s))).toContain("cancel job 01jobrun00 (resnet50-sweep), now running on gpu-a100? y yes · n no");
    const help = plain(frame(smallLab({ modal: { kind: "help" } })));
    expect(help).toContain("drain or undrain the selected host");
    expect(help).toContain("Esc or ? closes this help");
  });
});

describe("Queue view with a sweep group", () => {
  /** The small lab's three jobs and the 6-job sweep, in the Queue; the sweep's row sorts first. */
  const sweepLab = (over: Partial<TuiState> = {}) => {
    const small = smallLab();
    return labState(Object.values(small.devices), [...Object.values(small.jobs), ...sweepJobs()], { view: "queue", ...over });
  };
  const keys = (s: TuiState, ...ks: (string | [string, KeyInfo])[]) => {
    for (const k of ks) {
      const [input, key] = typeof k === "string" ? [k, {}] : k;
      const a = keyToAction(input, key, s);
      if (a) s = reduceAction(s, a, NOW).state;
    }
    return s;
  };
  const enter: [string, KeyInfo] = ["\r", { return: true }];
  const rowsOf = (f: string) => plain(f).split("\n").filter((l) => /^[▸ ] (01|g0)/.test(l));

  it("folds the sweep's 6 jobs into one row with its name, per-state counts and GPUs in 80×24", () => {
    const f = frame(sweepLab());
    expectFits(f, 80, 23);
    const rows = rowsOf(f);
    expect(rows.map((r) => r.slice(2, 13).trim())).toEqual([SWEEP, "01jobrun00", "01jobque00", "01jobfail0"]);
    expect(rows[0]).toMatch(new RegExp(`^▸ ${SWEEP} \\+ lr-sweep · 6 jobs: 2 running · 3 queued · 1 succeeded · 6 GPUs`));
    expect(plain(f)).not.toContain("01swp");
    // The header counts every job, the sweep's included.
    expect(plain(f)).toContain("3 running · 0 assigned · 4 queued · 2 finished · 1 sweep group");
    // Each count in its state's colour: running blue, queued yellow, succeeded green.
    expect(f).toMatch(/\x1b\[34m2 running/);
    expect(f).toMatch(/\x1b\[33m3 queued/);
    expect(f).toMatch(/\x1b\[32m1 succeeded/);
  });

  it("shows the whole group row, its owner included, in a wide terminal", () => {
    const f = frame(sweepLab(), 160, 40);
    expectFits(f, 160, 40);
    expect(rowsOf(f)[0]).toBe(`▸ ${SWEEP} + lr-sweep · 6 jobs: 2 running · 3 queued · 1 succeeded · 6 GPUs · ana`);
  });

  it("shows an opened group's jobs indented under its row, by their sweep point, and Enter again folds them", () => {
    const open = keys(sweepLab(), enter);
    const f = frame(open, 160, 40);
    expectFits(f, 160, 40);
    const rows = rowsOf(f);
    expect(rows[0]).toMatch(new RegExp(`^▸ ${SWEEP} - lr-sweep · 6 jobs`));
    expect(rows.slice(1, 7).map((r) => r.slice(2, 13).trim())).toEqual(["01swp00001", "01swp00002", "01swp00003", "01swp00004", "01swp00005", "01swp00000"]);
    expect(rows[1]).toMatch(/^ {2}01swp00001 {2}├ lr=0\.1,batch_size=64 +vision +ana +norm +1 gpu-a100:0 +3m running/);
    expect(rows[6]).toMatch(/^ {2}01swp00000 {2}└ lr=0\.1,batch_size=32 .* succeeded$/);
    expect(rows[7]).toMatch(/^ {2}01jobrun00 {2}resnet50-sweep/);
    // 80 columns: the same rows, cut to fit.
    const narrow = frame(open);
    expectFits(narrow, 80, 23);
    expect(rowsOf(narrow)).toHaveLength(10);
    expect(rowsOf(frame(keys(open, enter)))).toHaveLength(4);
  });

  it("moves the selection over the group's row as one row, and into its jobs once it is open", () => {
    const selected = (s: TuiState) => rowsOf(frame(s)).find((r) => r.startsWith("▸"))?.slice(2, 13).trim();
    expect(selected(sweepLab())).toBe(SWEEP);
    expect(selected(keys(sweepLab(), "j"))).toBe("01jobrun00");
    expect(selected(keys(sweepLab(), "j", "k"))).toBe(SWEEP);
    expect(selected(keys(sweepLab(), "G"))).toBe("01jobfail0");
    expect(selected(keys(sweepLab(), enter, "j"))).toBe("01swp00001");
    // ← from one of its jobs folds it and selects its row.
    expect(selected(keys(sweepLab(), enter, "j", "j", ["", { leftArrow: true }]))).toBe(SWEEP);
    expect(plain(frame(keys(sweepLab(), enter, "j")))).toContain("⏎ open  ← collapse  c cancel");
    expect(plain(frame(sweepLab()))).toContain("⏎ expand  c cancel group  r retry group");
  });

  it("filters to the group when one of its jobs matches, and leaves it out when none does", () => {
    const one = frame(keys(sweepLab(), "/", ..."lr=0.001,batch_size=64"));
    expect(rowsOf(one).map((r) => r.slice(2, 13).trim())).toEqual([SWEEP]);
    expect(rowsOf(one)[0]).toContain("6 jobs: 2 running · 3 queued · 1 succeeded");
    const none = frame(keys(sweepLab(), "/", ..."vit"));
    expect(rowsOf(none).map((r) => r.slice(2, 13).trim())).toEqual(["01jobque00"]);
    expect(plain(frame(keys(sweepLab(), "/", ..."nothing-like-it")))).toContain('no job matches the filter "nothing-like-it"');
  });

  it("keeps the answers of a long question about a group on an 80-column screen, cutting the question", () => {
    const long = sweepJobs().map((j) => ({ ...j, name: j.name.replace("lr-sweep", "resnet50-imagenet-lr-warmup-sweep") }));
    const s = keys(labState([], long, { view: "queue" }), "c");
    const f = frame(s);
    expectFits(f, 80, 23);
    const question = plain(f).split("\n").at(-2)!;
    expect(question).toBe(` cancel 5 jobs (2 running · 3 queued) of group ${SWEEP} (resne… y yes · n no `);
  });

  it("asks before cancelling the group, then calls cancelGroup and shows what it did", async () => {
    const store = new TuiStore(sweepLab());
    const client = new DataClient({ url: "http://127.0.0.1:9", token: "t", store });
    const cancelled = sweepJobs().map((j) => (j.state === "succeeded" ? j : { ...j, state: "cancelled" as const, endedAt: iso(0), reason: "cancelled by admin (the dashboard)" }));
    const cancelGroup = vi.spyOn(client.api, "cancelGroup").mockResolvedValue({
      group: { id: SWEEP, name: "lr-sweep", createdAt: iso(200), jobs: 6, states: { cancelled: 5, succeeded: 1 } },
      jobs: cancelled.filter((j) => j.state === "cancelled"),
    });
    const app = render(<App store={store} onEffect={(e) => (e.kind === "run" ? void client.perform(e.command) : undefined)} size={{ width: 100, height: 24 }} now={() => NOW} />);
    const text = () => plain(app.lastFrame() ?? "");
    const key = async (k: string) => {
      app.stdin.write(k);
      await new Promise((r) => setTimeout(r, 30));
    };
    try {
      await key("c");
      expect(text()).toContain(`cancel 5 jobs (2 running · 3 queued) of group ${SWEEP} (lr-sweep)? y yes · n no`);
      expect(cancelGroup).not.toHaveBeenCalled();
      await key("y");
      await vi.waitFor(() => expect(text()).toContain(`group ${SWEEP}: 5 jobs cancelled or asked to stop`));
      expect(cancelGroup).toHaveBeenCalledExactlyOnceWith(SWEEP);
      expect(text()).toContain("6 jobs: 1 succeeded · 5 cancelled");
    } finally {
      app.unmount();
      client.stop();
      store.close();
    }
  });
});

describe("Slurm's view in a Slurm lab", () => {
  const node = (name: string, state: string, reason = "") => ({ name, partitions: ["gpu*"], state, cpus: { allocated: 0, idle: 2, other: 0, total: 2 }, memoryMiB: 16384, gres: "gpu:fake:2", reason });
  const slurmLab = (nodes = [node("gpu-a100", "mixed"), node("gpu-3090", "drained", "fan broken, says Ana")], error?: string) => {
    const s = smallLab();
    s.slurm = {
      readAt: iso(4),
      nodes,
      queue: [
        { id: "100", state: "RUNNING", nodes: "gpu-a100", reason: "None", timeUsed: "1:02", timeLimit: "5:05", tresPerNode: "gres/gpu:1", account: "", name: "labrig-01jobrun00" },
        { id: "101", state: "PENDING", nodes: "", reason: "Resources", timeUsed: "0:00", timeLimit: "5:05", tresPerNode: "gres/gpu:2", account: "", name: "labrig-x" },
      ],
      ...(error ? { error } : {}),
    };
    return s;
  };

  it("heads a panel as Slurm's under labrig's hosts: node states, the queue and why it waits, each node out with its reason", () => {
    const f = frame(slurmLab());
    expectFits(f, 80, 23);
    const rows = plain(f).split("\n");
    const head = rows.findIndex((l) => l.startsWith("Slurm schedules this lab"));
    expect(head, plain(f)).toBeGreaterThan(0);
    expect(rows[head]).toBe("Slurm schedules this lab · 2 nodes: 1 drained, 1 mixed · queue: 1 pending, 1 ru…");
    expect(rows[head + 1]).toBe("  gpu-3090 drained · fan broken, says Ana");
    expect(plain(frame(slurmLab(), 160, 40))).toContain("queue: 1 pending, 1 running (waiting: Resources) · read 4s ago (labrig devices --slurm)");
    expect(plain(f)).toMatch(/gpu-a100\s+● healthy/);
  });

  it("says when the last read of Slurm failed, and keeps labrig's table when the screen is short", () => {
    const text = plain(frame(slurmLab(undefined, "ssh: connect to slurmctl: Connection refused"), 100, 23));
    expect(text).toContain("  the last read of Slurm failed: ssh: connect to slurmctl: Connection refused");
    const short = plain(frame(slurmLab(Array.from({ length: 40 }, (_, i) => node(`n${i}`, "down*", "Not responding"))), 80, 10)).split("\n");
    expect(short.length).toBeLessThanOrEqual(10);
    expect(short.some((l) => /^. gpu-\S+\s+● /.test(l))).toBe(true);
    expect(short.some((l) => l.startsWith("Slurm schedules this lab · 40 nodes: 40 down*"))).toBe(true);
  });

  it("shows no panel when labrig schedules", () => {
    expect(plain(frame(smallLab()))).not.toContain("Slurm");
  });
});
