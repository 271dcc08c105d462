// Delete's plans as data (no host): what each step's teardown removes, in order, and what it says
// stays. The firewall's, agent's and backup's are also carried out on a real host in
// provider-host.test.ts, the dispatcher container's and a dispatcher host's backup in
// provider-dispatcher.test.ts; the firewall chains need Docker's chains and are checked here as plans.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { parseInventory } from "../../provision/inventory.js";
import { LocalRemote } from "../../provision/local-remote.js";
import type { Remote } from "../../provision/remote.js";
import { leavesAfterDelete, teardownFor } from "../../stacks/teardown.js";

const inventory = parseInventory(
  `lab: {name: t, dispatcher: {url: "http://10.0.0.2:8000"}}
hosts:
  nas: {address: 10.0.0.2, roles: [dispatcher], dispatcher: {port: 8100, containerName: lab-dispatcher, dataDir: /srv/lab}, backup: {repository: /srv/lab/backup/restic, passwordFile: /x}}
  nas2: {address: 10.0.0.4, roles: [dispatcher]}
  gpu: {address: 10.0.0.3, roles: [gpu], port: 2222}
`,
  "inventory.yaml",
);
const [nas, nas2, gpu] = inventory.hosts as [(typeof inventory.hosts)[0], (typeof inventory.hosts)[0], (typeof inventory.hosts)[0]];

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

  it("stops and disables the agent before removing its unit, env file, bundle and Node runtime", async () => {
    expect(await plan("agent", gpu)).toEqual([
      "stop and disable labrig-agent.service (labrig no longer manages it)",
      "remove /etc/systemd/system/labrig-agent.service /etc/labrig/agent.env /opt/labrig/agent/labrig-agent.mjs /opt/labrig/node/bin/node (the agent's unit, env file (with the join token), bundle and Node runtime)",
      "systemctl daemon-reload (labrig's unit files are gone)",
    ]);
    expect(leavesAfterDelete("agent", gpu)).toBe("the user labrig-agent and /var/lib/labrig/agent (the jobs' files)");
  });

  it("removes the dispatcher container by its configured name and names each data folder it keeps, the restic password's file among them", async () => {
    const t = await teardownFor("dispatcher-container", { host: nas, remote: untouchable });
    expect(t.changes.map(describeChange)).toEqual(["remove container lab-dispatcher (the dispatcher is no longer declared)"]);
    expect(Object.keys(t.runs)).toEqual(["remove container lab-dispatcher"]);
    expect(t.leaves).toContain("/srv/lab/state (the queue database, and the admin and join tokens");
    expect(t.leaves).toContain("/srv/lab/runs (the jobs' files)");
    expect(t.leaves).toContain("/srv/lab/config (/srv/lab/config/restic-password, the restic password in plain text, until the backup-timer resource's delete removes it)");
    expect(t.leaves).toContain("/srv/lab/backup (the backups)");
    expect(t.leaves).toContain("the image labrig/dispatcher:latest");
    expect(t.leaves).toContain("rm -rf /srv/lab on nas");
  });

  it("finds the dispatcher's data folder on the host when the inventory names none (this machine, no Synology)", async () => {
    const remote = new LocalRemote();
    try {
      const t = await teardownFor("dispatcher-container", { host: nas2, remote });
      expect(t.leaves).toContain("/srv/labrig/state (the queue database");
      expect(t.leaves).toContain("/srv/labrig/config (empty unless something else was put there)");
    } finally {
      await remote.close();
    }
    // Before the host was asked (a resource's leavesOnDelete from the inventory alone), both defaults are named.
    expect(leavesAfterDelete("dispatcher-container", nas2)).toContain("(<dataDir>: /srv/labrig, or /volume1/docker/labrig on a Synology)");
  });

  it("removes the restic password from the dispatcher's config folder with the backup timer on a dispatcher host", async () => {
    expect(await plan("backup-timer")).toContain(
      "remove /etc/systemd/system/labrig-backup.timer /etc/systemd/system/labrig-backup.service /etc/labrig/backup.env /srv/lab/config/restic-password (the backup units, settings and password)",
    );
    expect(await plan("backup-timer", gpu)).toContain(
      "remove /etc/systemd/system/labrig-backup.timer /etc/systemd/system/labrig-backup.service /etc/labrig/backup.env /etc/labrig/restic-password (the backup units, settings and password)",
    );
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
    expect(leavesAfterDelete("backup-timer", nas)).toBe("restic, and the backup repository /srv/lab/backup/restic with every snapshot in it (its password stays in the stack's config and the inventory's passwordFile)");
  });
});
