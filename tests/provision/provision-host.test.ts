// Provisions a bare Debian test host for real over SSH with `labrig provision`, then checks inside
// it by `docker exec` (not by trusting the tool's report). One host is shared by the whole file,
// in order: dry run, first run, checks, second run, reconciliation, the NVIDIA step. It runs with
// the dispatcher's admin token (LABRIG_ADMIN_TOKEN), so the agent joins with a single-use join
// token made for it. Its apt offers no nodejs at all (held back by an apt preference, as where a
// distribution ships an old one): the agent runs on the Node labrig sends.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Device, JoinToken } from "../../core/api.js";
import { pinnedNodeVersion } from "../../provision/node-runtime.js";
import { agentNodeRemote } from "../../provision/steps/agent.js";
import { startDispatcher, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { agentBundle, provisionCli, stepOf, statuses } from "./helpers.js";
import { startFakeNvidiaMirror, type FakeNvidiaMirror } from "./nvidia-mirror.js";

const hostName = "gpu-t1";
let dir: string;
let net: TestNetwork;
let host: TestHost;
let dispatcher: DispatcherProcess;
let bundle: string;
let common: string[];

function writeInventory(file: string, extra: { hostFields?: string; labels?: string; defaults?: string } = {}) {
  writeFileSync(
    join(dir, file),
    `lab:
  name: test
  dispatcher: {url: "http://${net.gateway}:${dispatcher.port}", joinTokenFile: ${join(dispatcher.stateDir, "join-token")}}
defaults:
  identityFile: ${join(dir, "id_ed25519")}
  firewall: {allowFrom: [${net.subnet}]}
  agent: {port: 8020}
  backup: {repository: /var/backups/labrig-restic, passwordFile: ${join(dir, "restic-pass")}, schedule: "*-*-* 04:30:00"}
${extra.defaults ?? ""}
hosts:
  ${hostName}: {address: ${host.ip}, roles: [gpu], labels: {${extra.labels ?? "gpu: none"}}${extra.hostFields ?? ""}}
`,
  );
  return join(dir, file);
}

/** `labrig provision` as the lab's admin runs it: with the dispatcher's admin token at hand. */
const provision = (args: string[]) => provisionCli(args, { LABRIG_ADMIN_TOKEN: dispatcher.adminToken });
const joinTokensFor = async (host: string) => (await dispatcher.admin().request<{ joinTokens: JoinToken[] }>("GET", "/api/join-tokens")).body.joinTokens.filter((t) => t.note === `labrig provision: ${host}`);

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-prov-"));
  net = await createTestNetwork("prov");
  const key = createSshKey(dir);
  [host, dispatcher, bundle] = await Promise.all([
    startTestHost({ name: hostName, network: net, publicKey: key.publicKey }),
    // 0.0.0.0 so the agent inside the test host reaches it at the network's gateway address.
    startDispatcher({ args: ["--bind", "0.0.0.0"] }),
    agentBundle(),
  ]);
  await host.sh("printf 'Package: nodejs\\nPin: release *\\nPin-Priority: -1\\n' > /etc/apt/preferences.d/no-nodejs");
  writeFileSync(join(dir, "restic-pass"), "correct horse battery staple\n");
  common = ["--host", hostName, "--inventory", writeInventory("inventory.yaml"), "--known-hosts", join(dir, "known_hosts"), "--agent-bundle", bundle];
}, 600_000);

afterAll(async () => {
  await host?.stop();
  await dispatcher?.stop();
  dispatcher?.cleanup();
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("provisioning a bare host over SSH", { timeout: 300_000 }, () => {
  it("dry run on the bare host lists every change and changes nothing", async () => {
    const before = await host.sh("dpkg-query -W -f='${Package}\\n' | sort | sha256sum; ls /etc/systemd/system | sort | sha256sum");
    const run = await provision(["--dry-run", ...common]);
    expect(run.exitCode).toBe(0);
    expect(run.report.dryRun).toBe(true);
    expect(statuses(run, hostName)).toEqual({ base: "changed", docker: "changed", "nvidia-toolkit": "skipped", agent: "changed", firewall: "changed", "gpu-firewall": "changed", "dispatcher-container": "skipped", "dispatcher-firewall": "skipped", "backup-timer": "changed" });
    expect(stepOf(run, hostName, "docker").changes.map((c) => c.kind)).toContain("install-packages");
    expect(stepOf(run, hostName, "firewall").changes.map((c) => c.line)).toContain("ufw allow 22/tcp (SSH, before enabling)");
    expect(stepOf(run, hostName, "agent").changes.map((c) => c.line)).toContain("write /etc/labrig/agent.env (0600 root:root) (env file missing; join token: a single-use join token made for it: not registered yet)");
    expect(stepOf(run, hostName, "agent").changes.map((c) => c.line)).toContainEqual(expect.stringMatching(new RegExp(`^write ${agentNodeRemote} \\(0755 root:root\\) \\(Node runtime missing: Node v${pinnedNodeVersion().replaceAll(".", "\\.")} for x64, \\d+ MB, run once there before it replaces the old one\\)$`)));
    expect(await joinTokensFor(hostName), "a dry run makes no join token").toEqual([]);
    expect(run.stderr).toContain(`recorded the host key of ${hostName}`);
    expect(await host.sh("dpkg-query -W -f='${Package}\\n' | sort | sha256sum; ls /etc/systemd/system | sort | sha256sum")).toBe(before);
    expect((await host.exec("ls /etc/labrig /etc/docker /usr/sbin/ufw")).exitCode).not.toBe(0);
  });

  it("provisions it: docker, firewall, agent, backups, all checked inside the host", async () => {
    const run = await provision(common);
    expect(run.exitCode, JSON.stringify(run.report, null, 1)).toBe(0);
    expect(statuses(run, hostName)).toEqual({ base: "changed", docker: "changed", "nvidia-toolkit": "skipped", agent: "changed", firewall: "changed", "gpu-firewall": "changed", "dispatcher-container": "skipped", "dispatcher-firewall": "skipped", "backup-timer": "changed" });
    expect(stepOf(run, hostName, "nvidia-toolkit").reason).toMatch(/no working NVIDIA driver/);

    // Docker runs, with log rotation, and the login user may use it.
    expect(await host.sh("systemctl is-enabled docker; systemctl is-active docker")).toBe("enabled\nactive");
    expect(await host.sh("su - deploy -c 'docker info --format {{.ServerVersion}}'")).toMatch(/^\d+\.\d+/);
    expect(JSON.parse(await host.sh("cat /etc/docker/daemon.json"))).toMatchObject({ "log-driver": "json-file", "log-opts": { "max-size": "50m", "max-file": "5" } });
    expect(await host.sh("jq --version")).toMatch(/^jq-/);

    // ufw: active, deny in / allow out, SSH and the agent port from the lab network only.
    const ufw = await host.sh("ufw status verbose");
    expect(ufw).toContain("Status: active");
    expect(ufw).toContain("Default: deny (incoming), allow (outgoing)");
    expect(ufw).toMatch(/^22\/tcp\s+ALLOW IN\s+Anywhere\s+# labrig$/m);
    expect(ufw).toMatch(new RegExp(`^8020/tcp\\s+ALLOW IN\\s+${net.subnet.replace(/[./]/g, "\\$&")}\\s+# labrig$`, "m"));

    // The agent: enabled, active, running as its own user.
    expect(await host.sh("systemctl is-enabled labrig-agent; systemctl is-active labrig-agent")).toBe("enabled\nactive");
    expect(await host.sh("systemctl show -p User --value labrig-agent")).toBe("labrig-agent");
    // On labrig's Node: the host has none, and its apt offers none.
    expect(await host.sh(`${agentNodeRemote} --version`)).toBe(`v${pinnedNodeVersion()}`);
    expect(await host.sh("systemctl show -p ExecStart --value labrig-agent")).toContain(`path=${agentNodeRemote} ;`);
    expect((await host.exec("command -v node nodejs")).exitCode, "no node on the host's PATH").not.toBe(0);
    expect(await host.sh("apt-cache policy nodejs | sed -n 's/^ *Candidate: //p'")).toBe("(none)");

    // Backups: timer listed at the schedule, repository initialised.
    expect(await host.sh("systemctl list-timers --all --no-legend labrig-backup.timer")).toContain("labrig-backup.service");
    expect(await host.sh("systemctl show -p TimersCalendar --value labrig-backup.timer")).toContain("*-*-* 04:30:00");
    expect(await host.sh("set -a; . /etc/labrig/backup.env; restic cat config | jq -r .version")).toMatch(/^\d+$/);

    // Secrets: root-only, and the login user cannot read them.
    expect(await host.sh("stat -c '%a %U' /etc/labrig/agent.env /etc/labrig/backup.env /etc/labrig/restic-password")).toBe("600 root\n600 root\n600 root");
    expect((await host.exec("su - deploy -c 'cat /etc/labrig/agent.env'")).exitCode).not.toBe(0);
    expect(await host.sh("grep -c LABRIG_JOIN_TOKEN= /etc/labrig/agent.env")).toBe("1");

    // The join token: one made for this host, not the lab's shared one.
    const joinToken = (await host.sh("sed -n 's/^LABRIG_JOIN_TOKEN=//p' /etc/labrig/agent.env"));
    expect(joinToken).toMatch(/^lrj_/);
    expect(joinToken).not.toBe(dispatcher.joinToken);
    expect(await joinTokensFor(hostName)).toEqual([expect.objectContaining({ usesLeft: expect.any(Number), revokedAt: null })]);
    expect(stepOf(run, hostName, "agent").changes.find((c) => c.kind === "write-file" && c.path === "/etc/labrig/agent.env")?.reason).toMatch(/; join token: a single-use join token made for it: not registered yet \(id [0-9a-f]+, until /);
  });

  it("its agent is healthy at the dispatcher and runs a gpus: 0 job constrained to the host", async () => {
    const admin = dispatcher.admin();
    const deadline = Date.now() + 60_000;
    let device: Device | undefined;
    while (Date.now() < deadline) {
      device = (await admin.devices()).find((d) => d.hostId === hostName);
      if (device?.status === "healthy") break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(device?.status, `journal: ${await host.sh("journalctl -u labrig-agent --no-pager | tail -20")}`).toBe("healthy");
    const submitted = await admin.submit({ name: "where", project: "prov", command: "test \"$(hostname)\" = " + hostName, gpus: 0, constraints: { hostId: hostName } });
    let job = submitted;
    while (Date.now() < deadline + 60_000) {
      job = await admin.job(submitted.id);
      if (["succeeded", "failed", "timed_out", "cancelled"].includes(job.state)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(job, `journal: ${await host.sh("journalctl -u labrig-agent --no-pager | tail -20")}`).toMatchObject({ state: "succeeded", hostId: hostName, exitCode: 0 });
    // It registered with its join token, which is used up now.
    expect(await joinTokensFor(hostName)).toEqual([expect.objectContaining({ uses: 1, usesLeft: 0, usable: false })]);
  });

  it("a second run reports no changed step and restarts nothing", async () => {
    const pids = "systemctl show -p MainPID --value docker labrig-agent";
    const before = await host.sh(pids);
    const run = await provision(common);
    expect(run.exitCode).toBe(0);
    expect(Object.values(statuses(run, hostName)).filter((s) => s === "changed")).toEqual([]);
    expect(await host.sh(pids)).toBe(before);
    expect(await joinTokensFor(hostName), "no join token made for a registered host").toHaveLength(1);
  });

  it("restarts Docker when daemon.json lacks its settings, keeping the admin's own", async () => {
    await host.sh(`jq '. + {"debug": true} | del(."log-opts"."max-file")' /etc/docker/daemon.json > /tmp/d && mv /tmp/d /etc/docker/daemon.json`);
    const before = await host.sh("systemctl show -p MainPID --value docker");
    const run = await provision([...common, "--only", "docker"]);
    expect(Object.keys(statuses(run, hostName))).toEqual(["docker"]);
    expect(stepOf(run, hostName, "docker").changes.map((c) => c.line)).toEqual(["write /etc/docker/daemon.json (0644 root:root) (adds log-opts.max-file)", "restart docker.service (daemon.json changed)"]);
    expect(JSON.parse(await host.sh("cat /etc/docker/daemon.json"))).toMatchObject({ debug: true, "log-opts": { "max-size": "50m", "max-file": "5" } });
    expect(await host.sh("systemctl show -p MainPID --value docker")).not.toBe(before);
    expect(await host.sh("docker info --format '{{.Debug}}'")).toBe("true");
  });

  it("reconciles the firewall: a stale labrig rule goes, the admin's rule stays", async () => {
    await host.sh("ufw allow from 10.99.0.0/16 to any port 8020 proto tcp comment labrig && ufw allow 9999/tcp");
    const run = await provision([...common, "--only", "firewall"]);
    expect(stepOf(run, hostName, "firewall").changes.map((c) => c.line)).toEqual(["ufw delete allow from 10.99.0.0/16 to any port 8020 proto tcp (a labrig rule no longer wanted)"]);
    const rules = await host.sh("ufw show added");
    expect(rules).not.toContain("10.99.0.0/16");
    expect(rules).toContain("ufw allow 9999/tcp");
    expect(rules).toContain("ufw allow 22/tcp comment 'labrig'");
  });

  it("refuses a Node runtime that does not start on the host, before it replaces the one there", async () => {
    const bad = join(dir, "node-for-another-arch");
    writeFileSync(bad, "#!/bin/sh\necho 'cannot execute binary file: Exec format error' >&2\nexit 126\n", { mode: 0o755 });
    const pid = await host.sh("systemctl show -p MainPID --value labrig-agent");
    const run = await provision([...common, "--only", "agent", "--node-runtime", bad]);
    expect(run.exitCode).toBe(1);
    const agent = stepOf(run, hostName, "agent");
    expect(agent.status).toBe("failed");
    expect(agent.reason).toContain("the agent's Node runtime does not start on this host: cannot execute binary file: Exec format error; pass --node-runtime PATH");
    expect(await host.sh(`${agentNodeRemote} --version`), "the old runtime stays").toBe(`v${pinnedNodeVersion()}`);
    expect(await host.sh(`ls -A ${agentNodeRemote.replace(/\/node$/, "")}`), "nothing staged is left behind").toBe("node");
    expect(await host.sh("systemctl show -p MainPID --value labrig-agent"), "the agent was not restarted").toBe(pid);
  });

  it("restarts the agent when its settings change, and only then", async () => {
    const before = await host.sh("systemctl show -p MainPID --value labrig-agent");
    const inv = writeInventory("inventory-labels.yaml", { labels: "gpu: none, room: b12" });
    const run = await provision([...common, "--inventory", inv, "--only", "agent"]);
    expect(stepOf(run, hostName, "agent").changes.map((c) => c.kind)).toEqual(["write-file", "restart-unit"]);
    expect(await host.sh("systemctl show -p MainPID --value labrig-agent")).not.toBe(before);
    expect(await host.sh("grep LABRIG_LABELS /etc/labrig/agent.env")).toBe("LABRIG_LABELS=gpu=none,room=b12");
  });
});

describe("the NVIDIA toolkit step on the same host", { timeout: 300_000 }, () => {
  let mirror: FakeNvidiaMirror;
  afterAll(async () => {
    await mirror?.close();
  });

  it("fails without a driver when the inventory says gpu: required", async () => {
    const inv = writeInventory("inventory-required.yaml", { hostFields: ", gpu: required" });
    const run = await provision([...common, "--inventory", inv, "--only", "nvidia-toolkit"]);
    expect(run.exitCode).toBe(1);
    expect(stepOf(run, hostName, "nvidia-toolkit")).toMatchObject({ status: "failed", reason: expect.stringContaining("gpu: required") });
  });

  it("installs the toolkit from a local mirror (fake driver and package, no GPU here)", async () => {
    mirror = await startFakeNvidiaMirror(join(dir, "nvidia-mirror"), net.gateway);
    // A stand-in driver: nvidia-smi -L answers as with one GPU.
    await host.sh("printf '#!/bin/sh\\necho \"GPU 0: NVIDIA Stand-in (UUID: GPU-00000000-test)\"\\n' > /usr/local/bin/nvidia-smi && chmod +x /usr/local/bin/nvidia-smi");
    const inv = writeInventory("inventory-nvidia.yaml", { hostFields: `, nvidia: {repository: "${mirror.repository}", keyUrl: "${mirror.keyUrl}"}` });
    const dockerPid = await host.sh("systemctl show -p MainPID --value docker");
    const run = await provision([...common, "--inventory", inv, "--only", "nvidia-toolkit"]);
    expect(run.exitCode, JSON.stringify(run.report, null, 1)).toBe(0);
    expect(stepOf(run, hostName, "nvidia-toolkit").changes.map((c) => c.line)).toEqual([
      `fetch the signing key from ${mirror.keyUrl} (for NVIDIA's repository)`,
      expect.stringMatching(/^write \/etc\/apt\/sources\.list\.d\/labrig-nvidia-container-toolkit\.list/),
      "install nvidia-container-toolkit (not installed)",
      "nvidia-ctk runtime configure --runtime=docker (Docker has no nvidia runtime in daemon.json)",
      "set native.cgroupdriver=cgroupfs in daemon.json (keeps GPUs in running containers across daemon-reload)",
      "restart docker.service (if daemon.json changed)",
    ]);
    expect(await host.sh("dpkg-query -W -f='${Status}' nvidia-container-toolkit")).toBe("install ok installed");
    expect(mirror.requests()).toContain("/nvidia-container-toolkit_1.17.0-1_all.deb");
    const daemon = JSON.parse(await host.sh("cat /etc/docker/daemon.json"));
    expect(daemon).toMatchObject({ runtimes: { nvidia: { path: "nvidia-container-runtime" } }, "exec-opts": ["native.cgroupdriver=cgroupfs"], debug: true, "log-opts": { "max-file": "5" } });
    expect(await host.sh("docker info --format '{{json .Runtimes}}' | jq -r 'keys[]'")).toContain("nvidia");
    expect(await host.sh("docker info --format '{{.CgroupDriver}}'")).toBe("cgroupfs");
    expect(await host.sh("systemctl show -p MainPID --value docker")).not.toBe(dockerPid);

    const again = await provision([...common, "--inventory", inv, "--only", "nvidia-toolkit"]);
    expect(statuses(again, hostName)).toEqual({ "nvidia-toolkit": "ok" });
  });
});
