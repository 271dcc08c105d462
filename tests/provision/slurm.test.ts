// A Slurm cluster provisioned for real from bare test hosts by `labrig provision --host all`: a
// controller and two compute nodes whose GPUs are fake (device nodes made with mknod, no driver,
// named "fake" in the inventory), Debian's munge, slurmctld and slurmd from the mirror. Checked
// inside the hosts by docker exec: one munge key everywhere, the same slurm.conf everywhere,
// `sinfo` showing both nodes idle, `srun --gres=gpu:1` running on a node with CUDA_VISIBLE_DEVICES
// set, and a second run changing and restarting nothing. --only leaves out the steps that need a
// dispatcher (docker, agent, …); the dispatcher driving Slurm is not built yet.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { provisionCli, statuses, stepOf } from "./helpers.js";
import { waitFor } from "../helpers/wait.js";
import { gpusOf, parseSinfoNodes, parseSqueue, SINFO_NODES_COMMAND, SQUEUE_COMMAND } from "../../dispatcher/slurm-status.js";

let dir: string;
let home: string;
let net: TestNetwork;
let ctl: TestHost;
let gpuA: TestHost;
let gpuB: TestHost;
let args: string[];
const slurmSteps = ["base", "firewall", "munge", "slurm-controller", "slurm-node"];
const env = () => ({ LABRIG_HOME: home });

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-slurm-"));
  home = join(dir, "labrig-home");
  net = await createTestNetwork("slurm");
  const key = createSshKey(dir);
  [ctl, gpuA, gpuB] = await Promise.all(["slurmctl", "gpu-a", "gpu-b"].map((name) => startTestHost({ name, network: net, publicKey: key.publicKey })));
  // Fake GPUs: NVIDIA's character devices (major 195) with no driver behind them; gres.conf names them.
  await gpuA.sh("mknod -m 0666 /dev/nvidia0 c 195 0 && mknod -m 0666 /dev/nvidia1 c 195 1");
  await gpuB.sh("mknod -m 0666 /dev/nvidia0 c 195 0");
  const inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    `lab:
  name: slurm-e2e
  scheduler: slurm
  slurm:
    clusterName: labtest
    partitions:
      gpu: {labels: {gpu: fake}}
defaults:
  identityFile: ${key.privateKeyFile}
  firewall: {allowFrom: [${net.subnet}]}
  gpu: none
hosts:
  slurmctl: {address: ${ctl.ip}, roles: [slurm-controller]}
  gpu-a: {address: ${gpuA.ip}, roles: [gpu], labels: {gpu: fake}}
  gpu-b: {address: ${gpuB.ip}, roles: [gpu], labels: {gpu: fake}}
`,
  );
  args = ["--host", "all", "--inventory", inventory, "--known-hosts", join(dir, "known_hosts"), "--only", slurmSteps.join(",")];
}, 600_000);

afterAll(async () => {
  await Promise.all([ctl, gpuA, gpuB].map((h) => h?.stop()));
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Each node's name, state and GPUs, read with the dispatcher's own sinfo command and parser. */
async function nodeStates(): Promise<string> {
  return parseSinfoNodes(await ctl.sh(SINFO_NODES_COMMAND))
    .map((n) => `${n.name} ${n.state} ${n.gres}`)
    .join("\n");
}

describe("a Slurm cluster provisioned from bare hosts", { timeout: 900_000 }, () => {
  it("dry run plans every Slurm step on the bare hosts and installs nothing", async () => {
    const run = await provisionCli(["--dry-run", ...args], env());
    expect(run.exitCode, run.stdout).toBe(0);
    expect(statuses(run, "slurmctl")).toMatchObject({ munge: "changed", "slurm-controller": "changed", "slurm-node": "skipped" });
    expect(statuses(run, "gpu-a")).toMatchObject({ munge: "changed", "slurm-controller": "skipped", "slurm-node": "changed" });
    expect(stepOf(run, "gpu-a", "munge").changes.map((c) => c.line)).toContain(`write the munge key read back from the controller (not read back yet from slurmctl (${join(home, "labs", "slurm-e2e", "munge.key")}))`);
    expect((await ctl.exec("dpkg-query -W munge slurmctld")).exitCode).not.toBe(0);
  });

  it("brings up munge, slurmctld and two slurmd nodes: both idle, srun gets a fake GPU", async () => {
    const started = Date.now();
    const run = await provisionCli(args, env());
    console.log(`first run (bare to cluster): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(run.exitCode, JSON.stringify(run.report, null, 1)).toBe(0);
    expect(statuses(run, "slurmctl")).toEqual({ base: "changed", firewall: "changed", munge: "changed", "slurm-controller": "changed", "slurm-node": "skipped" });
    for (const node of ["gpu-a", "gpu-b"]) expect(statuses(run, node)).toEqual({ base: "changed", firewall: "changed", munge: "changed", "slurm-controller": "skipped", "slurm-node": "changed" });

    // One munge key: read back here 0600, on every host 0400 munge:munge, never printed.
    const saved = join(home, "labs", "slurm-e2e", "munge.key");
    const key = readFileSync(saved);
    expect((statSync(saved).mode & 0o777).toString(8)).toBe("600");
    for (const h of [ctl, gpuA, gpuB]) {
      expect(await h.sh("stat -c '%a %U:%G' /etc/munge/munge.key")).toBe("400 munge:munge");
      expect(await h.sh("sha256sum < /etc/munge/munge.key | cut -d' ' -f1")).toBe(sha(key));
    }
    for (const text of [run.stdout, run.stderr]) {
      expect(text).not.toContain(key.toString("base64"));
      expect(text).not.toContain(key.toString("hex"));
    }
    // A credential made on one node is accepted on another: the key really is shared.
    const cred = await gpuA.sh("munge -n");
    expect(cred).toMatch(/^MUNGE:/);
    expect(await ctl.sh(`echo '${cred}' | unmunge | sed -n 's/^STATUS: *//p'`)).toMatch(/^Success/);

    // The same three files on every host; slurm.conf lists both nodes with their fake GPUs.
    for (const file of ["slurm.conf", "gres.conf", "cgroup.conf"]) {
      const sums = await Promise.all([ctl, gpuA, gpuB].map((h) => h.sh(`sha256sum < /etc/slurm/${file}`)));
      expect(new Set(sums).size, file).toBe(1);
    }
    const conf = await ctl.sh("cat /etc/slurm/slurm.conf");
    console.log(`slurm.conf generated for the test lab:\n${conf}\ngres.conf:\n${await ctl.sh("cat /etc/slurm/gres.conf")}`);
    expect(conf).toContain(`SlurmctldHost=slurmctl(${ctl.ip})`);
    expect(conf).toMatch(new RegExp(`^NodeName=gpu-a NodeAddr=${gpuA.ip.replace(/\./g, "\\.")} CPUs=\\d+ .*Gres=gpu:fake:2 State=UNKNOWN$`, "m"));
    expect(conf).toMatch(/^NodeName=gpu-b .*Gres=gpu:fake:1 State=UNKNOWN$/m);
    expect(conf).toContain("PartitionName=gpu Nodes=gpu-a,gpu-b Default=YES MaxTime=INFINITE State=UP");
    expect(await gpuA.sh("cat /etc/slurm/gres.conf")).toContain("NodeName=gpu-a Name=gpu Type=fake File=/dev/nvidia1");

    // Both nodes registered and idle, with the GPUs gres.conf gave them.
    const deadline = Date.now() + 90_000;
    let states = await nodeStates();
    while (Date.now() < deadline && states !== "gpu-a idle gpu:fake:2\ngpu-b idle gpu:fake:1") {
      await new Promise((r) => setTimeout(r, 1000));
      states = await nodeStates();
    }
    expect(states, `slurmctld log: ${(await ctl.exec("tail -20 /var/log/slurm/slurmctld.log")).stdout}`).toBe("gpu-a idle gpu:fake:2\ngpu-b idle gpu:fake:1");

    // A job asking one GPU runs on a node, through the firewall, and is given one device.
    const env1 = await ctl.sh("timeout 60 srun --gres=gpu:1 env");
    expect(env1).toMatch(/^CUDA_VISIBLE_DEVICES=0$/m);
    expect(env1).toMatch(/^SLURMD_NODENAME=gpu-[ab]$/m);
    // Two GPUs fit only gpu-a.
    expect(await ctl.sh("timeout 60 srun --gres=gpu:2 sh -c 'echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES'")).toBe("gpu-a 0,1");
    // Slurm's own view as the dispatcher reads it: a batch job holding both of gpu-a's GPUs shows in
    // squeue as running there, and gpu-a as allocated or mixed in sinfo; scancel empties the queue.
    const slurmId = await ctl.sh("sbatch --parsable --gres=gpu:2 --job-name='view|probe' --wrap 'sleep 120'");
    const queue = async () => parseSqueue(await ctl.sh(SQUEUE_COMMAND));
    const queued = await waitFor(`Slurm job ${slurmId} running`, queue, (q) => q.some((j) => j.id === slurmId && j.state === "RUNNING"), 60_000, 500);
    console.log(`squeue with a running job:\n${await ctl.sh(SQUEUE_COMMAND)}\nsinfo:\n${await ctl.sh(SINFO_NODES_COMMAND)}`);
    expect(queued.find((j) => j.id === slurmId)).toMatchObject({ state: "RUNNING", nodes: "gpu-a", name: "view|probe", tresPerNode: expect.stringContaining("gpu:2") });
    const nodes = parseSinfoNodes(await ctl.sh(SINFO_NODES_COMMAND));
    expect(nodes.map((n) => [n.name, gpusOf(n.gres), n.partitions])).toEqual([["gpu-a", 2, ["gpu*"]], ["gpu-b", 1, ["gpu*"]]]);
    expect(nodes[0]!.state).toMatch(/^(allocated|mixed)$/);
    expect(nodes[0]!.cpus.allocated).toBeGreaterThan(0);
    await ctl.sh(`scancel ${slurmId}`);
    await waitFor("an empty Slurm queue after scancel", queue, (q) => q.length === 0, 60_000, 500);
    expect(await ctl.sh("ufw status")).toMatch(/^6817\/tcp\s+ALLOW\s+/m);
    expect(await gpuB.sh("ufw status")).toMatch(/^6818\/tcp\s+ALLOW\s+/m);
  });

  it("a second run changes nothing and restarts no daemon", async () => {
    const pids = "systemctl show -p MainPID --value munge slurmctld slurmd | tr '\\n' ' '";
    const before = await Promise.all([ctl, gpuA, gpuB].map((h) => h.sh(pids)));
    const started = Date.now();
    const run = await provisionCli(args, env());
    console.log(`second run: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(run.exitCode, JSON.stringify(run.report, null, 1)).toBe(0);
    for (const host of run.report.hosts) {
      for (const step of host.steps) expect([step.status, step.changes], `${host.host} ${step.id}`).toEqual([step.status === "skipped" ? "skipped" : "ok", []]);
    }
    expect(await Promise.all([ctl, gpuA, gpuB].map((h) => h.sh(pids)))).toEqual(before);
    expect(await nodeStates()).toBe("gpu-a idle gpu:fake:2\ngpu-b idle gpu:fake:1");
  });
});
