// The stacks provisioning Slurm: the serialised step provider (as Pulumi's provider process runs
// it, one fresh process per call) takes each resource of a Slurm lab's graph in order — the
// controller's base, munge, slurm-accounting and slurm-controller, then the node's base, munge
// (after the controller's: it copies the key read back into LABRIG_HOME) and slurm-node (after
// slurm-controller) — against two real systemd + sshd test hosts. GPUs are fake: a device node
// made with mknod, so gres.conf is real. Checked inside the hosts: sinfo shows the node idle with
// its GPU, slurmdbd knows the cluster, and every resource then checks converged.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory, type Inventory } from "../../provision/inventory.js";
import { allSteps, slurmStepIds } from "../../provision/steps/index.js";
import { planLab, type StepInputs, stepInputs } from "../../stacks/graph.js";
import type { StepOutputs } from "../../stacks/step-runtime.js";
import { waitFor } from "../helpers/wait.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { type ProviderMethod, type SerialisedProvider, serialisedProvider } from "./serialised-provider.js";

let dir: string;
let home: string;
let net: TestNetwork;
let ctl: TestHost;
let node: TestHost;
let provider: SerialisedProvider;
let inventory: Inventory;

const call = <T>(method: ProviderMethod, ...args: unknown[]) => provider.call<T>(method, args, { env: { LABRIG_HOME: home } });
type Checked = { inputs: StepInputs; failures: unknown[] };

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-stack-slurm-"));
  home = join(dir, "labrig-home");
  net = await createTestNetwork("stkslurm");
  const key = createSshKey(dir);
  await Promise.all([
    startTestHost({ name: "stkctl", network: net, publicKey: key.publicKey }).then((h) => (ctl = h)),
    startTestHost({ name: "stk-gpu", network: net, publicKey: key.publicKey }).then((h) => (node = h)),
    serialisedProvider(dir).then((p) => (provider = p)),
  ]);
  await node.sh("mknod -m 0666 /dev/nvidia0 c 195 0"); // a FAKE GPU: NVIDIA's device number, no driver behind it
  const file = join(dir, "inventory.yaml");
  writeFileSync(
    file,
    `lab:
  name: stkslurm
  scheduler: slurm
  slurm: {clusterName: stkslurm, accounting: true}
defaults:
  identityFile: ${key.privateKeyFile}
  firewall: {enabled: false}
  gpu: none
hosts:
  stkctl: {address: ${ctl.ip}, roles: [slurm-controller]}
  stk-gpu: {address: ${node.ip}, roles: [gpu], labels: {gpu: fake}}
`,
  );
  inventory = loadInventory(file);
}, 600_000);

afterAll(async () => {
  await Promise.all([ctl, node].map((h) => h?.stop()));
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the stacks provisioning a Slurm cluster, through the serialised provider", { timeout: 900_000 }, () => {
  const outs = new Map<string, StepOutputs>();
  const inputsOf = (name: string) => {
    const [host, step] = name.split("/") as [string, string];
    return stepInputs(inventory, inventory.hosts.find((h) => h.name === host)!, step, { knownHostsFile: join(dir, "known_hosts") });
  };

  it("declares the Slurm steps with the node's waiting on the controller's", () => {
    const graph = planLab(inventory, allSteps);
    expect(graph.map((r) => r.name)).toEqual(["stkctl/base", "stkctl/munge", "stkctl/slurm-accounting", "stkctl/slurm-controller", "stk-gpu/base", "stk-gpu/docker", "stk-gpu/agent", "stk-gpu/munge", "stk-gpu/slurm-node"]);
    expect(graph.find((r) => r.name === "stk-gpu/munge")!.dependsOn).toContain("stkctl/munge");
    expect(graph.find((r) => r.name === "stk-gpu/slurm-node")!.dependsOn).toContain("stkctl/slurm-controller");
    expect(inputsOf("stkctl/slurm-controller").slurmHosts!.map((h) => h.name)).toEqual(["stk-gpu"]);
  });

  it("creates each resource in the graph's order from bare hosts: the node idle in sinfo with its GPU, the cluster in slurmdbd", async () => {
    // Docker and the agent are the labrig side of a node (tests/stacks/provider-host.test.ts); here, Slurm's.
    for (const r of planLab(inventory, allSteps).filter((r) => r.step === "base" || slurmStepIds.includes(r.step))) {
      const checked = await call<Checked>("check", {}, inputsOf(r.name));
      expect(checked.failures, r.name).toEqual([]);
      expect(checked.inputs.plan!.length, r.name).toBeGreaterThan(0);
      const created = await call<{ id: string; outs: StepOutputs }>("create", checked.inputs);
      expect(created.outs.plan, r.name).toEqual([]);
      outs.set(r.name, created.outs);
    }
    const sinfo = await waitFor("the node idle", async () => (await ctl.exec("sinfo -N -h -o '%N %t %G'")).stdout.trim(), (s) => s === "stk-gpu idle gpu:fake:1", 90_000, 1000);
    expect(sinfo).toBe("stk-gpu idle gpu:fake:1");
    expect(await ctl.sh("sacctmgr -n -P show cluster format=cluster")).toBe("stkslurm");
    expect(await ctl.sh("sha256sum < /etc/munge/munge.key")).toBe(await node.sh("sha256sum < /etc/munge/munge.key"));
    expect(await ctl.sh("sha256sum < /etc/slurm/slurm.conf")).toBe(await node.sh("sha256sum < /etc/slurm/slurm.conf"));
  });

  it("then plans nothing for any of them", async () => {
    for (const [name, out] of outs) {
      const checked = await call<Checked>("check", out, inputsOf(name));
      expect(checked.inputs.plan, name).toEqual([]);
    }
  });
});
