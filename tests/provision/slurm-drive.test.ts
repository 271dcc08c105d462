// The dispatcher driving a real Slurm cluster: a controller and two compute nodes provisioned by
// `labrig provision` from bare test hosts (Debian's munge, slurmctld, slurmd; GPUs are fake: device
// nodes made with mknod, and a fake nvidia-smi printing them for the labrig agent), each compute
// node also running the labrig agent installed by the agent step, and a real dispatcher process
// with LABRIG_SCHEDULER=slurm that reaches the controller over SSH. `labrig submit --gpus 1` becomes
// an sbatch whose batch script claims the job for its node; that node's agent runs it and its
// job.log arrives; `labrig cancel` ends a running job and scancels its Slurm job; `labrig devices`
// and the dashboard (in tmux) show Slurm's view; with accounting on, each person's jobs run under
// their own Slurm account.
import { createServer } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Device, Job } from "../../core/api.js";
import { nodeWithTsx, repoRoot, startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { TmuxSession } from "../helpers/tmux.js";
import { waitFor } from "../helpers/wait.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { agentBundle, provisionCli, statuses } from "./helpers.js";

let dir: string;
let net: TestNetwork;
let ctl: TestHost;
let gpuA: TestHost;
let gpuB: TestHost;
let dispatcher: DispatcherProcess;
let args: string[];
let cliEnv: Record<string, string>;

/** A fake nvidia-smi (no driver here): the GPU query prints `n` GPUs in the CSV the agent parses, the process query none. */
const fakeNvidiaSmi = (n: number) =>
  `#!/bin/sh\n# FAKE nvidia-smi for the labrig Slurm test: no GPU is really here.\ncase "$*" in *query-compute-apps*) exit 0 ;; esac\n` +
  Array.from({ length: n }, (_, i) => `echo '${i}, GPU-fake-0000-${i}, Fake GPU, 16384, 0, 0, 30, 20'`).join("\n") +
  "\n";

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "0.0.0.0", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-slurm-drive-"));
  net = await createTestNetwork("slurmdrive");
  const key = createSshKey(dir);
  const port = await freePort();
  const dispatcherUrl = `http://${net.gateway}:${port}`;
  const bundle = agentBundle();
  [ctl, gpuA, gpuB] = await Promise.all(["slurmctl", "gpu-a", "gpu-b"].map((name) => startTestHost({ name, network: net, publicKey: key.publicKey })));
  // Fake GPUs: NVIDIA's character devices (major 195) with no driver behind them, for gres.conf; and nvidia-smi for the agent.
  const installSmi = (n: number) => `echo ${Buffer.from(fakeNvidiaSmi(n)).toString("base64")} | base64 -d > /usr/local/bin/nvidia-smi && chmod 755 /usr/local/bin/nvidia-smi`;
  await gpuA.sh(`mknod -m 0666 /dev/nvidia0 c 195 0 && mknod -m 0666 /dev/nvidia1 c 195 1 && ${installSmi(2)}`);
  await gpuB.sh(`mknod -m 0666 /dev/nvidia0 c 195 0 && ${installSmi(1)}`);
  const knownHosts = join(dir, "known_hosts");
  // The dispatcher first (its join token is what the agents join with); it reaches the controller only once a job is queued.
  writeFileSync(knownHosts, "");
  dispatcher = await startDispatcher({
    port,
    args: ["--bind", "0.0.0.0"],
    env: {
      LABRIG_HEARTBEAT_S: "1",
      LABRIG_SCHEDULER: "slurm",
      LABRIG_SLURM_SSH: `deploy@${ctl.ip}`,
      LABRIG_SLURM_IDENTITY: key.privateKeyFile,
      LABRIG_SLURM_KNOWN_HOSTS: knownHosts,
      LABRIG_SLURM_DISPATCHER_URL: dispatcherUrl,
    },
  });
  const inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    `lab:
  name: slurm-drive
  scheduler: slurm
  dispatcher: {url: "${dispatcherUrl}", joinTokenFile: ${join(dispatcher.stateDir, "join-token")}}
  slurm:
    clusterName: labdrive
    accounting: true
    partitions:
      gpu: {labels: {gpu: fake}}
defaults:
  identityFile: ${key.privateKeyFile}
  firewall: {allowFrom: [${net.subnet}]}
  gpu: none
  agent: {port: 8020}
hosts:
  slurmctl: {address: ${ctl.ip}, roles: [slurm-controller]}
  gpu-a: {address: ${gpuA.ip}, roles: [gpu], labels: {gpu: fake}}
  gpu-b: {address: ${gpuB.ip}, roles: [gpu], labels: {gpu: fake}}
`,
  );
  args = ["--host", "all", "--inventory", inventory, "--known-hosts", knownHosts, "--agent-bundle", await bundle, "--only", "base,firewall,munge,slurm-accounting,slurm-controller,slurm-node,agent"];
  cliEnv = { LABRIG_URL: dispatcher.url, LABRIG_TOKEN: dispatcher.adminToken };
}, 600_000);

afterAll(async () => {
  if (dispatcher) console.log(`dispatcher output:\n${dispatcher.output().slice(-4000)}`);
  await Promise.all([ctl, gpuA, gpuB].map((h) => h?.stop()));
  await dispatcher?.stop();
  dispatcher?.cleanup();
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function labrig(cliArgs: string[], env: Record<string, string> = {}) {
  return execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", ...cliArgs], { cwd: repoRoot, reject: false, env: { ...cliEnv, ...env }, timeout: 60_000 });
}

describe("the dispatcher driving a provisioned Slurm cluster", { timeout: 900_000 }, () => {
  it("provisions Slurm and the agents: both nodes idle in sinfo, both agents healthy with their fake GPUs", async () => {
    const run = await provisionCli(args, { LABRIG_ADMIN_TOKEN: dispatcher.adminToken }, { timeoutMs: 900_000 });
    expect(run.exitCode, JSON.stringify(run.report, null, 1)).toBe(0);
    expect(statuses(run, "gpu-a")).toMatchObject({ munge: "changed", "slurm-node": "changed", agent: "changed" });
    expect(statuses(run, "slurmctl")).toMatchObject({ munge: "changed", "slurm-accounting": "changed", "slurm-controller": "changed" });
    // slurmdbd on MariaDB keeps the cluster, and the SSH user the dispatcher logs in as may add accounts.
    expect(await ctl.sh("sacctmgr -n -P show cluster format=cluster")).toBe("labdrive");
    expect(await ctl.sh("sacctmgr -n -P show user where name=deploy format=user,adminlevel")).toBe("deploy|Operator");
    expect(await ctl.sh("stat -c '%a %U:%G' /etc/slurm/slurmdbd.conf")).toBe("600 slurm:slurm");
    const conf = await ctl.sh("cat /etc/slurm/slurm.conf");
    expect(conf).toContain("AccountingStorageType=accounting_storage/slurmdbd\n");
    console.log(`the slurm.conf labrig generated for the test lab:\n${conf}`);
    const states = await waitFor("both nodes idle", async () => (await ctl.exec("sinfo -N -h -o '%N %t %G'")).stdout.trim(), (s) => s === "gpu-a idle gpu:fake:2\ngpu-b idle gpu:fake:1", 90_000, 1000);
    expect(states).toBe("gpu-a idle gpu:fake:2\ngpu-b idle gpu:fake:1");
    const devices = await waitFor("both agents healthy", () => dispatcher.admin().devices(), (ds: Device[]) => ["gpu-a", "gpu-b"].every((h) => ds.find((d) => d.hostId === h)?.status === "healthy"), 120_000, 1000);
    expect(Object.fromEntries(devices.map((d) => [d.hostId, d.gpus.length]))).toEqual({ "gpu-a": 2, "gpu-b": 1 });
  });

  it("shows Slurm's view in `labrig devices`, below labrig's own hosts, as Slurm reads it on the controller", async () => {
    const shown = await waitFor("Slurm's view of both nodes", () => labrig(["devices"]), (r) => /^gpu-b\s+idle\s+gpu\*/m.test(String(r.stdout)), 60_000, 1000);
    const text = String(shown.stdout);
    expect(shown.exitCode, shown.stderr).toBe(0);
    expect(text.indexOf("HOST")).toBeLessThan(text.indexOf("Slurm schedules this lab (read from the controller"));
    expect(text).toMatch(/^gpu-a\s+idle\s+gpu\*\s+0\/\d+\s+\d+ GiB\s+gpu:fake:2\s+-$/m);
    expect(text).toMatch(/^gpu-b\s+idle\s+gpu\*\s+0\/\d+\s+\d+ GiB\s+gpu:fake:1\s+-$/m);
    expect(text).toContain("Slurm's queue is empty");
    const only = await labrig(["devices", "--slurm", "--json"]);
    expect(only.exitCode, only.stderr).toBe(0);
    expect((JSON.parse(only.stdout) as { nodes: { name: string }[] }).nodes.map((n) => n.name)).toEqual(["gpu-a", "gpu-b"]);
  });

  it("runs `labrig submit --gpus 1` through sbatch on a compute node, and its job.log arrives exactly", async () => {
    const submitted = await labrig(["submit", "--gpus", "1", "--name", "via-slurm", "--json", "--", "sh", "-c", "echo hello from $(hostname) on GPU $CUDA_VISIBLE_DEVICES; echo second line"]);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const id = (JSON.parse(submitted.stdout) as Job).id;
    const job = await waitFor("the job to end", () => dispatcher.admin().job(id), (j) => ["succeeded", "failed", "cancelled", "timed_out"].includes(j.state), 180_000, 500);
    expect(job.state, `${JSON.stringify(job)}\n${dispatcher.output().slice(-3000)}`).toBe("succeeded");
    expect(["gpu-a", "gpu-b"]).toContain(job.hostId);
    expect(dispatcher.output()).toMatch(new RegExp(`sbatch: job ${id} attempt 1 is Slurm job \\d+`));
    const slurmId = new RegExp(`sbatch: job ${id} attempt 1 is Slurm job (\\d+)`).exec(dispatcher.output())![1]!;
    // Slurm ran the batch on the node the job ran on, and its accounting says it completed.
    const shown = await waitFor("Slurm to see the batch end", () => ctl.sh(`scontrol show job ${slurmId}`), (s) => /JobState=(COMPLETED|FAILED|CANCELLED)/.test(s), 60_000, 1000);
    expect(shown).toMatch(/JobState=COMPLETED/);
    expect(shown).toContain(`BatchHost=${job.hostId}`);
    expect(shown).toMatch(/ Account=admin /);
    expect(await waitFor("slurmdbd to have the job", () => ctl.sh(`sacct -n -P -X -j ${slurmId} -o account,state`), (out) => out.startsWith("admin|COMPLETED"), 60_000, 1000)).toBe("admin|COMPLETED");
    const logs = await waitFor("its log", () => labrig(["logs", id]), (r) => String(r.stdout).includes("second line"), 30_000, 500);
    expect(String(logs.stdout)).toMatch(new RegExp(`^hello from ${job.hostId} on GPU .*\\nsecond line\\n?$`));
  });

  it("ends a running job with `labrig cancel`, which scancels its Slurm job", async () => {
    const submitted = await labrig(["submit", "--gpus", "1", "--name", "to-cancel", "--json", "--", "sleep", "600"]);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const id = (JSON.parse(submitted.stdout) as Job).id;
    await waitFor("the job to run", () => dispatcher.admin().job(id), (j) => j.state === "running", 180_000, 500);
    const slurmId = new RegExp(`sbatch: job ${id} attempt 1 is Slurm job (\\d+)`).exec(dispatcher.output())![1]!;
    expect(await ctl.sh(`squeue -h -j ${slurmId} -o '%T'`)).toBe("RUNNING");
    const cancelled = await labrig(["cancel", id]);
    expect(cancelled.exitCode, cancelled.stderr).toBe(0);
    const job = await waitFor("the job to end", () => dispatcher.admin().job(id), (j) => j.state !== "running", 60_000, 500);
    expect(job.state).toBe("cancelled");
    await waitFor("scancel", () => dispatcher.output(), (o) => o.includes(`scancel ${slurmId} (job ${id} attempt 1)`), 30_000, 500);
    const shown = await waitFor("Slurm to see it cancelled", () => ctl.sh(`scontrol show job ${slurmId}`), (s) => /JobState=CANCELLED/.test(s), 60_000, 1000);
    expect(shown).toMatch(/JobState=CANCELLED/);
    await waitFor("both nodes idle again", async () => (await ctl.exec("sinfo -N -h -o '%N %t'")).stdout.trim(), (s) => s === "gpu-a idle\ngpu-b idle", 60_000, 1000);
  });

  it("runs two jobs that together ask for more GPUs than one node has on different nodes, at once", async () => {
    const ids: string[] = [];
    // Two people's jobs: each runs under its owner's Slurm account, made by the dispatcher on first use.
    const ana = await fetch(`${dispatcher.url}/api/users`, { method: "POST", headers: { authorization: `Bearer ${dispatcher.adminToken}`, "content-type": "application/json" }, body: JSON.stringify({ name: "ana", role: "member" }) });
    expect(ana.status).toBe(201);
    const anaToken = ((await ana.json()) as { token: string }).token;
    for (const [gpus, token] of [["2", dispatcher.adminToken], ["1", anaToken]] as const) {
      const submitted = await labrig(["submit", "--gpus", gpus, "--name", `pair-${gpus}`, "--json", "--", "sleep", "600"], { LABRIG_TOKEN: token });
      expect(submitted.exitCode, submitted.stderr).toBe(0);
      ids.push((JSON.parse(submitted.stdout) as Job).id);
    }
    const both = await waitFor("both jobs running", () => Promise.all(ids.map((id) => dispatcher.admin().job(id))), (js: Job[]) => js.every((j) => j.state === "running"), 180_000, 500);
    expect(both.map((j) => [j.hostId, j.gpuIndices.length])).toEqual([["gpu-a", 2], ["gpu-b", 1]]);
    const slurmIds = ids.map((id) => new RegExp(`sbatch: job ${id} attempt 1 is Slurm job (\\d+)`).exec(dispatcher.output())![1]!);
    expect(await ctl.sh(`squeue -h -o '%i %T %N' -j ${slurmIds.join(",")} | sort`)).toBe(slurmIds.map((sid, i) => `${sid} RUNNING ${["gpu-a", "gpu-b"][i]}`).sort().join("\n"));
    // Slurm's queue, as labrig devices shows it, holds both beside labrig's own table.
    const shown = await waitFor("both in Slurm's view", () => labrig(["devices"]), (r) => slurmIds.every((sid) => new RegExp(`^${sid}\\s+RUNNING\\s+gpu-`, "m").test(String(r.stdout))), 60_000, 1000);
    expect(String(shown.stdout)).toMatch(/^gpu-a\s+(allocated|mixed)\s/m);
    expect(await ctl.sh(`squeue -h -o '%i %a' -j ${slurmIds.join(",")} | sort`)).toBe([`${slurmIds[0]} admin`, `${slurmIds[1]} ana`].sort().join("\n"));
    expect((await ctl.sh("sshare -n -P -a -o account,user")).split("\n").map((l) => l.trim())).toEqual(expect.arrayContaining(["admin|", "admin|deploy", "ana|", "ana|deploy"]));
    // The operator's dashboard in a real terminal: labrig's hosts first, Slurm's panel under them.
    const tui = await TmuxSession.start({ cols: 140, rows: 30, cwd: repoRoot, env: { ...cliEnv, LABRIG_HOME: join(dir, "home") }, command: `${nodeWithTsx.join(" ")} cli/main.ts tui; exec sleep 600` });
    try {
      const screen = await tui.waitForText(/Slurm schedules this lab · 2 nodes: .* · queue: 2 running/, 60_000);
      const head = screen.findIndex((l) => l.includes("Slurm schedules this lab"));
      const hostRow = screen.findIndex((l) => /gpu-a\s+● healthy/.test(l));
      expect(hostRow, screen.join("\n")).toBeGreaterThan(-1);
      expect(hostRow).toBeLessThan(head);
      expect(screen.some((l) => /gpu-b\s+● healthy/.test(l)), screen.join("\n")).toBe(true);
      await tui.keys("q");
      await tui.waitFor("the dashboard to quit", (lines) => !lines.some((l) => l.includes("Slurm schedules this lab")), 15_000);
    } finally {
      await tui.kill();
    }
    for (const id of ids) expect((await labrig(["cancel", id])).exitCode).toBe(0);
    await waitFor("both Slurm jobs gone", () => ctl.sh(`squeue -h -j ${slurmIds.join(",")} -o '%i' || true`), (out) => out.trim() === "", 60_000, 1000);
    await waitFor("both nodes idle at the end", async () => (await ctl.exec("sinfo -N -h -o '%N %t'")).stdout.trim(), (out) => out === "gpu-a idle\ngpu-b idle", 60_000, 1000);
  });

  it("a second provisioning run, with accounting, changes nothing", async () => {
    const run = await provisionCli(args, { LABRIG_ADMIN_TOKEN: dispatcher.adminToken }, { timeoutMs: 600_000 });
    expect(run.exitCode, JSON.stringify(run.report, null, 1)).toBe(0);
    for (const host of ["slurmctl", "gpu-a", "gpu-b"]) {
      for (const [step, status] of Object.entries(statuses(run, host))) expect(status, `${host} ${step}`).toMatch(/^(ok|skipped)$/);
    }
    expect(statuses(run, "slurmctl")["slurm-accounting"]).toBe("ok");
  });
});
