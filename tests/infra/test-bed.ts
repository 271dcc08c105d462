// What most real-host test files set up first and take down last: a temporary folder, a private
// network, one SSH key, and the hosts on it, started together.
//   const bed = await startTestBed("ssh", [{ name: "ssh-a" }, { name: "ssh-pw", sudo: "password" }]);
//   const [a, pw] = bed.hosts;  ...  bed.key.privateKeyFile  ...  await bed.stop();
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireDocker } from "./docker.js";
import { createTestNetwork, type TestNetwork } from "./network.js";
import { createSshKey, type TestSshKey } from "./ssh-key.js";
import { startTestHost, type TestHost, type TestHostOptions } from "./test-host.js";

export interface TestBed {
  dir: string;
  net: TestNetwork;
  key: TestSshKey;
  hosts: TestHost[];
  /** Stops the hosts, removes the network and the folder (also after a start that failed half-way). */
  stop(): Promise<void>;
}

export async function startTestBed(label: string, hosts: Omit<TestHostOptions, "network" | "publicKey">[]): Promise<TestBed> {
  await requireDocker();
  const dir = mkdtempSync(join(tmpdir(), `labrig-${label}-`));
  const started: TestHost[] = [];
  let net: TestNetwork | undefined;
  const stop = async () => {
    await Promise.all(started.map((h) => h.stop()));
    await net?.remove();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    net = await createTestNetwork(label);
    const key = createSshKey(dir);
    const network = net;
    await Promise.all(hosts.map(async (h, i) => (started[i] = await startTestHost({ ...h, network, publicKey: key.publicKey }))));
    return { dir, net, key, hosts: started, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
