// A bare lab on test hosts, as the end-to-end test and the lab-bring-up benchmark use it: a
// NAS-role host (its Docker installed by provisioning, nested), two GPU-role hosts — gpu-a with a
// sudo that asks for a password, gpu-b reached only through a jump host (its SSH port closed to
// all else) — the inventory for them, and the `labrig provision --host all` arguments.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDispatcherImage } from "../compose/dispatcher-image.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { agentBundle } from "./helpers.js";

export interface TestLab {
  dir: string;
  /** LABRIG_HOME for the provisioning run: where the dispatcher's tokens are read back to. */
  home: string;
  net: TestNetwork;
  nas: TestHost;
  gpuA: TestHost;
  gpuB: TestHost;
  jump: TestHost;
  labName: string;
  sudoPassword: string;
  /** `provision` arguments (without --json) and environment. */
  args: string[];
  env: Record<string, string>;
  knownHostsFile: string;
  stop(): Promise<void>;
}

export async function startTestLab(label = "lab"): Promise<TestLab> {
  await requireDocker();
  const sudoPassword = "lab-e2e-Sud0-pass";
  const labName = "e2e";
  const dir = mkdtempSync(join(tmpdir(), `labrig-${label}-`));
  const home = join(dir, "labrig-home");
  const net = await createTestNetwork(label);
  const key = createSshKey(dir);
  const started = await Promise.allSettled([
    startTestHost({ name: "nas", network: net, publicKey: key.publicKey }),
    startTestHost({ name: "gpu-a", network: net, publicKey: key.publicKey, sudo: "password", sudoPassword }),
    startTestHost({ name: "gpu-b", network: net, publicKey: key.publicKey }),
    startTestHost({ name: "jump", network: net, publicKey: key.publicKey }),
  ]);
  const hosts = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const stop = async () => {
    await Promise.all(hosts.map((h) => h.stop()));
    await net.remove();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const [nas, gpuA, gpuB, jump] = hosts as [TestHost, TestHost, TestHost, TestHost];
    const [image, bundle] = await Promise.all([ensureDispatcherImage(), agentBundle(), gpuB.closeSshExceptFrom([jump.ip])]);
    writeFileSync(join(dir, "restic-pass"), "lab e2e restic password\n");
    const inventory = join(dir, "inventory.yaml");
    writeFileSync(
      inventory,
      `lab: {name: ${labName}}
defaults:
  identityFile: ${key.privateKeyFile}
  firewall: {allowFrom: [${net.subnet}]}
  gpu: none
hosts:
  nas:
    address: ${nas.ip}
    roles: [dispatcher]
    dispatcher: {image: ${image}, dataDir: /srv/labrig, healthTimeoutS: 120}
    backup: {repository: /srv/labrig/backup/restic, passwordFile: ${join(dir, "restic-pass")}}
  gpu-a: {address: ${gpuA.ip}, roles: [gpu], labels: {gpu: none}}
  gpu-b: {address: ${gpuB.ip}, roles: [gpu], labels: {gpu: none}, proxyJump: ${jump.ip}}
`,
    );
    const knownHostsFile = join(dir, "known_hosts");
    return {
      dir, home, net, nas, gpuA, gpuB, jump, labName, sudoPassword, knownHostsFile, stop,
      args: ["--host", "all", "--inventory", inventory, "--known-hosts", knownHostsFile, "--agent-bundle", bundle, "--ask-sudo-pass"],
      env: { LABRIG_HOME: home, DOCKER_HOST: process.env.DOCKER_HOST ?? "" },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
