// A private Docker network per test file: its test hosts talk to each other on it, and this
// machine reaches them directly at their addresses on it (it sits on the network's bridge, whose
// gateway address is where the hosts reach services the test runs here).
import { randomBytes } from "node:crypto";
import { docker, requireDocker } from "./docker.js";

export interface TestNetwork {
  name: string;
  /** e.g. 172.20.0.0/16 */
  subnet: string;
  /** This machine's address on the network: bind test services here (or 0.0.0.0) for hosts to reach. */
  gateway: string;
  remove(): Promise<void>;
}

export async function createTestNetwork(label = "net"): Promise<TestNetwork> {
  await requireDocker();
  const name = `labrig-test-${label}-${randomBytes(3).toString("hex")}`;
  await docker(["network", "create", "--label", "labrig-test=1", name]);
  const [config] = JSON.parse(await docker(["network", "inspect", name, "--format", "{{json .IPAM.Config}}"])) as {
    Subnet: string;
    Gateway: string;
  }[];
  return {
    name,
    subnet: config.Subnet,
    gateway: config.Gateway,
    remove: async () => {
      await docker(["network", "rm", name]).catch(() => undefined);
    },
  };
}
