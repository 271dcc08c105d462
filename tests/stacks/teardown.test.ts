// Delete's plans as data (no host): what each step's teardown removes, in order, and what it says
// stays. The firewall's, agent's and backup's are also carried out on a real host in
// provider-host.test.ts; the dispatcher's need Docker on the host and are checked here as plans.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { parseInventory } from "../../provision/inventory.js";
import type { Remote } from "../../provision/remote.js";
import { leavesAfterDelete, teardownFor } from "../../stacks/teardown.js";

const inventory = parseInventory(
  `lab: {name: t, dispatcher: {url: "http://10.0.0.2:8000"}}
hosts:
  nas: {address: 10.0.0.2, roles: [dispatcher], dispatcher: {port: 8100, containerName: lab-dispatcher}, backup: {repository: /srv/restic, passwordFile: /x}}
  gpu: {address: 10.0.0.3, roles: [gpu], port: 2222}
`,
  "inventory.yaml",
);
const [nas, gpu] = inventory.hosts as [(typeof inventory.hosts)[0], (typeof inventory.hosts)[0]];

/** These plans read nothing from the host; a call would be a bug. */
const untouchable = new Proxy({} as Remote, {
  get: (_t, prop) => {
    throw new Error(`the teardown plan used remote.${String(prop)}`);
  },
});

const plan = async (step: string, host = nas) => (await teardownFor(step, { host, remote: untouchable })).changes.map(describeChange);

describe("teardown plans", () => {
  it("removes nothing for base, docker and nvidia-toolkit, and says what stays", async () => {
    for (const step of ["base", "docker", "nvidia-toolkit"]) expect(await plan(step, gpu), step).toEqual([]);
    expect(leavesAfterDelete("docker", gpu)).toMatch(/^Docker/);
    expect(leavesAfterDelete("nvidia-toolkit", gpu)).toMatch(/NVIDIA container toolkit/);
  });

  it("stops and disables the agent before removing its unit, env file and bundle", async () => {
    expect(await plan("agent", gpu)).toEqual([
      "stop and disable labrig-agent.service (labrig no longer manages it)",
      "remove /etc/systemd/system/labrig-agent.service /etc/labrig/agent.env /opt/labrig/agent/labrig-agent.mjs (the agent's unit, env file (with the join token) and bundle)",
      "systemctl daemon-reload (labrig's unit files are gone)",
    ]);
    expect(leavesAfterDelete("agent", gpu)).toBe("Node.js, the user labrig-agent and /var/lib/labrig/agent (the jobs' files)");
  });

  it("removes the dispatcher container by its configured name and keeps its data", async () => {
    const t = await teardownFor("dispatcher-container", { host: nas, remote: untouchable });
    expect(t.changes.map(describeChange)).toEqual(["remove container lab-dispatcher (the dispatcher is no longer declared)"]);
    expect(Object.keys(t.runs)).toEqual(["remove container lab-dispatcher"]);
    expect(t.leaves).toContain("the data folders (the queue database");
  });

  it("takes the dispatcher's firewall chain off DOCKER-USER for its configured port", async () => {
    expect(await plan("dispatcher-firewall")).toEqual([
      "stop and disable labrig-dispatcher-firewall.service (labrig no longer manages it)",
      "remove the LABRIG-DISPATCHER chain from DOCKER-USER (labrig added it)",
      "remove /usr/local/sbin/labrig-dispatcher-firewall /etc/systemd/system/labrig-dispatcher-firewall.service (the firewall script and its unit)",
      "systemctl daemon-reload (labrig's unit files are gone)",
    ]);
    const t = await teardownFor("dispatcher-firewall", { host: nas, remote: untouchable });
    expect(Object.keys(t.runs)).toContain("remove the LABRIG-DISPATCHER chain from DOCKER-USER");
  });

  it("takes a GPU host's chain for containers' published ports off DOCKER-USER", async () => {
    expect(await plan("gpu-firewall", gpu)).toEqual([
      "stop and disable labrig-gpu-firewall.service (labrig no longer manages it)",
      "remove the LABRIG-GPU chain from DOCKER-USER (labrig added it)",
      "remove /usr/local/sbin/labrig-gpu-firewall /etc/systemd/system/labrig-gpu-firewall.service (the firewall script and its unit)",
      "systemctl daemon-reload (labrig's unit files are gone)",
    ]);
    expect(leavesAfterDelete("gpu-firewall", gpu)).toBe("iptables and Docker's own chains");
  });

  it("keeps the SSH rule on the host's own port when it says what the firewall leaves", () => {
    expect(leavesAfterDelete("firewall", gpu)).toContain("'allow 2222/tcp'");
  });

  it("keeps the backup repository and says which", async () => {
    expect(await plan("backup-timer")).toContain("stop and disable labrig-backup.timer (labrig no longer manages it)");
    expect(leavesAfterDelete("backup-timer", nas)).toBe("restic, and the backup repository /srv/restic with every snapshot in it");
  });
});
