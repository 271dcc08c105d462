// A CVLab-Kit experiment swept over a 2×3 grid on two real agents: `labrig submit --cvlab exp.yaml
// --sweep` against a real dispatcher, six jobs each running the lab's queue command in the lab's
// CVLab-Kit checkout with its own point written into its YAML, `labrig jobs --group`, and the group
// cancelled (each process stopped) and retried as one. No GPU here: the agents' nvidia-smi prints
// recorded output, and a shell script stands in for CVLab-Kit's main.py.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../core/api.js";
import { parseCvlabConfig } from "../../core/cvlab-config.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type InProcessDispatcher, startInProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { waitFor } from "../helpers/wait.js";
import { cliEnv, runCli } from "./cli-process.js";

let d: InProcessDispatcher;
let agents: AgentProcess[] = [];
let checkout: string;
let env: Record<string, string>;

const experiment = `# a CVLab-Kit experiment: two learning rates × three batch sizes
project: sweep_demo
agent: classification
model: resnet18(num_classes=10)
betas: !!python/tuple [0.9, 0.999]
lr: [0.1, 0.01]
batch_size: [32, 64, 128]
device: 2
`;

beforeAll(async () => {
  checkout = mkdtempSync(join(tmpdir(), "labrig-cvlab-checkout-"));
  // Stands in for `uv run main.py --config X --fast`: shows what it got, then trains until stopped.
  writeFileSync(
    join(checkout, "train.sh"),
    '#!/bin/sh\necho "args: $*"\necho "cwd: $(pwd)"\necho "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"\necho "device in config: $(grep ^device: "$2")"\nexec sleep 120\n',
  );
  chmodSync(join(checkout, "train.sh"), 0o755);
  writeFileSync(join(checkout, "exp.yaml"), experiment);
  d = await startInProcessDispatcher({ env: { LABRIG_QUEUE_COMMAND: "sh train.sh --config {config_path} --fast", LABRIG_CVLAB_DIR: checkout, LABRIG_HEARTBEAT_S: "1" } });
  agents = await Promise.all([
    startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-4x", gpus: "a100-80gb-x4.txt" }),
    startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-2x", gpus: "rtx-4090-x2.txt" }),
  ]);
  env = cliEnv({ LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: checkout });
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const a of agents) a.cleanup();
  await d?.stop();
  d?.cleanup();
  rmSync(checkout, { recursive: true, force: true });
});

describe("labrig submit --cvlab --sweep on two agents", () => {
  it("runs six jobs, each with its point in its YAML, and cancels and retries the group as one", async () => {
    const sub = await runCli(["submit", "--cvlab", join(checkout, "exp.yaml"), "--sweep", "--json"], env);
    expect(sub.stderr).toBe("");
    expect(sub.exitCode).toBe(0);
    const { group, jobs } = JSON.parse(sub.stdout) as { group: { id: string; jobs: number }; jobs: Job[] };
    expect(group.jobs).toBe(6);
    expect(jobs.map((j) => j.name)).toEqual([
      "exp [lr=0.1,batch_size=32]",
      "exp [lr=0.1,batch_size=64]",
      "exp [lr=0.1,batch_size=128]",
      "exp [lr=0.01,batch_size=32]",
      "exp [lr=0.01,batch_size=64]",
      "exp [lr=0.01,batch_size=128]",
    ]);
    expect(jobs.every((j) => j.project === "sweep_demo" && j.gpus === 1 && j.group === group.id)).toBe(true);

    const admin = d.admin();
    const points = [0.1, 0.01].flatMap((lr) => [32, 64, 128].map((bs) => ({ lr, bs })));
    for (const [i, j] of jobs.entries()) {
      const yaml = await admin.jobConfig(j.id);
      // Only the two grid values changed; the tuple, the comment and the rest are as written.
      expect(yaml).toBe(experiment.replace("lr: [0.1, 0.01]", `lr: ${points[i]!.lr}`).replace("batch_size: [32, 64, 128]", `batch_size: ${points[i]!.bs}`));
    }

    // Six GPUs across the two hosts: all six run at once.
    const running = await waitFor("all six running", () => admin.jobs({ state: "running" }), (js) => js.length === 6, 60_000, 250);
    expect(new Set(running.map((j) => j.hostId))).toEqual(new Set(["gpu-4x", "gpu-2x"]));

    // Each ran the queue command in the checkout, on its leased GPU, with device mapped to it.
    for (const j of running) {
      const log = await waitFor(`job ${j.id}'s log`, () => admin.syncGet(j.id, "job.log").catch(() => Buffer.from("")), (b) => b.toString().includes("device in config"), 20_000, 250);
      expect(log.toString()).toContain(`cwd: ${checkout}`);
      expect(log.toString()).toMatch(/args: --config \/\S+\/config\.yaml --fast/);
      expect(log.toString()).toContain(`CUDA_VISIBLE_DEVICES=${j.gpuIndices[0]}`);
      expect(log.toString()).toContain("device in config: device: 0");
      const synced = parseCvlabConfig((await admin.syncGet(j.id, "config.yaml")).toString());
      const i = jobs.findIndex((x) => x.id === j.id);
      expect(synced.data).toMatchObject({ lr: points[i]!.lr, batch_size: points[i]!.bs, device: 0, betas: [0.9, 0.999] });
    }

    const listed = await runCli(["jobs", "--group", group.id, "--json"], env);
    expect((JSON.parse(listed.stdout) as Job[]).map((j) => j.id).sort()).toEqual(jobs.map((j) => j.id).sort());

    const cancel = await runCli(["group", "cancel", group.id], env);
    expect(cancel.exitCode).toBe(0);
    expect(cancel.stdout).toContain(`group ${group.id}: 6 jobs cancelled or asked to stop`);
    const ended = await waitFor("the group cancelled", () => admin.group(group.id), (g) => g.jobs.every((j) => j.state === "cancelled"), 30_000, 250);
    expect(ended.group.states).toEqual({ cancelled: 6 });

    const retry = await runCli(["group", "retry", group.id, "--json"], env);
    expect((JSON.parse(retry.stdout) as { jobs: Job[] }).jobs.map((j) => j.attempt)).toEqual([2, 2, 2, 2, 2, 2]);
    await waitFor("the retried group running", () => admin.jobs({ state: "running" }), (js) => js.length === 6, 60_000, 250);
    await runCli(["group", "cancel", group.id], env);
    await waitFor("the group cancelled again", () => admin.group(group.id), (g) => g.jobs.every((j) => j.state === "cancelled"), 30_000, 250);
  }, 180_000);
});
