// The dispatcher-container step for real: a test host with systemd, sshd and its own Docker engine
// (nested), reached over SSH like a NAS; the image built here and streamed over with docker save |
// docker load; the dispatcher answering on the host's port 8000; tokens read back into
// LABRIG_HOME; a second run changing nothing; a settings change replacing the container with the
// data kept; and a container that never becomes healthy rolled back.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherClient } from "../../core/client.js";
import { type Change, describeChange } from "../../provision/change.js";
import { parseInventory, type HostConfig, type Inventory } from "../../provision/inventory.js";
import { SshRemote } from "../../provision/ssh-remote.js";
import type { StepContext } from "../../provision/step.js";
import { savedDispatcherDir } from "../../provision/saved-dispatcher.js";
import { dispatcherContainerStep } from "../../provision/steps/dispatcher-container.js";
import type { DispatcherSettings } from "../../provision/steps/dispatcher-container-settings.js";
import { dispatcherFirewallStep } from "../../provision/steps/dispatcher-firewall.js";
import { hookRule } from "../../provision/steps/docker-user.js";
import { execa } from "execa";
import { ensureDispatcherImage } from "../compose/dispatcher-image.js";
import { createSshKey, createTestNetwork, ensureTestHostImage, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { waitFor } from "../helpers/wait.js";

let net: TestNetwork;
let nas: TestHost;
let home: string;
let remote: SshRemote;
let inventory: Inventory;
let image: string;
const oldHome = process.env.LABRIG_HOME;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "labrig-deploy-home-"));
  process.env.LABRIG_HOME = home;
  const key = createSshKey(home);
  net = await createTestNetwork("nas");
  [nas, image] = await Promise.all([startTestHost({ name: "nas", network: net, publicKey: key.publicKey }), ensureDispatcherImage()]);
  // The NAS's own engine (Container Manager on a Synology): Debian's docker.io inside the test host.
  await nas.sh("DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends docker.io >/dev/null");
  await nas.sh("systemctl start docker && docker info --format '{{.ServerVersion}}'");
  inventory = parseInventory(
    `lab: { name: testlab }\nhosts:\n  nas:\n    address: ${nas.ip}\n    user: deploy\n    identityFile: ${key.privateKeyFile}\n    roles: [dispatcher]\n`,
    "inventory.yaml",
  );
  remote = new SshRemote({ host: "nas", address: nas.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile }, { knownHostsFile: join(home, "known_hosts") });
}, 600_000);

afterAll(async () => {
  await remote?.close();
  await nas?.stop();
  await net?.remove();
  if (oldHome === undefined) delete process.env.LABRIG_HOME;
  else process.env.LABRIG_HOME = oldHome;
  rmSync(home, { recursive: true, force: true });
});

function context(settings: Partial<DispatcherSettings>, hostOverrides: Partial<HostConfig> = {}): StepContext & { done: Change[] } {
  const log: string[] = [];
  const host = { ...inventory.hosts[0]!, ...hostOverrides, dispatcher: { image, dataDir: "/srv/labrig", healthTimeoutS: 40, ...settings } } as HostConfig;
  const done: Change[] = [];
  return { host, inventory, remote, assets: {}, applied: (c) => done.push(c), log: (m) => log.push(m), done };
}

/** A change's line without its reason: "replace container labrig-dispatcher". */
const what = (c: Change) => describeChange(c).slice(0, -(c.reason.length + 3));
const whats = (changes: Change[]) => changes.map(what);

async function containerOnNas(name = "labrig-dispatcher") {
  return JSON.parse(await nas.sh(`docker inspect ${name} --format '{{json .}}'`)) as { Id: string; State: { Running: boolean }; Config: { Labels: Record<string, string> } };
}

describe("dispatcher-container step", () => {
  let admin: DispatcherClient;
  let jobId: string;

  it("first run creates the folders, sends the image over SSH, starts a healthy container and saves its tokens here", async () => {
    const ctx = context({});
    const plan = await dispatcherContainerStep.check(ctx);
    expect(plan.fail).toBeUndefined();
    expect(whats(plan.changes)).toEqual([
      "create folders under /srv/labrig",
      `send image ${image} from this machine`,
      "create container labrig-dispatcher",
      "save the dispatcher's tokens for lab testlab",
    ]);
    await dispatcherContainerStep.apply(ctx, plan.changes);
    expect(whats(ctx.done)).toEqual(whats(plan.changes));

    expect(await nas.sh("stat -c '%u:%g %a' /srv/labrig/state /srv/labrig/runs")).toBe("10001:10001 700\n10001:10001 700");
    const saved = savedDispatcherDir("testlab");
    const adminToken = readFileSync(join(saved, "admin-token"), "utf8").trim();
    expect(adminToken).toBe(await nas.sh("cat /srv/labrig/state/admin-token"));
    expect(readFileSync(join(saved, "join-token"), "utf8").trim()).toBe(await nas.sh("cat /srv/labrig/state/join-token"));
    for (const f of ["admin-token", "join-token", "dispatcher.json"]) expect(statSync(join(saved, f)).mode & 0o777, f).toBe(0o600);
    const info = JSON.parse(readFileSync(join(saved, "dispatcher.json"), "utf8"));
    expect(info.url).toBe(`http://${nas.ip}:8000`);

    admin = new DispatcherClient({ url: info.url, token: adminToken });
    expect((await admin.health()).status).toBe("ok");
    jobId = (await admin.submit({ name: "kept", project: "p", command: "true", gpus: 0 })).id;
  }, 240_000);

  it("a second run finds nothing to change", async () => {
    const plan = await dispatcherContainerStep.check(context({}));
    expect(plan.changes).toEqual([]);
    expect(plan.facts).toMatchObject({ dataDir: "/srv/labrig", container: { running: true, health: "healthy" }, tokensSaved: true });
  });

  it("a settings change replaces the container, and the jobs and tokens stay", async () => {
    const before = await containerOnNas();
    const ctx = context({ env: { LABRIG_HEARTBEAT_S: "5" } });
    const plan = await dispatcherContainerStep.check(ctx);
    expect(plan.changes.map((c) => `${what(c)}: ${c.reason}`)).toEqual([
      "replace container labrig-dispatcher: its settings changed",
      "save the dispatcher's tokens for lab testlab: the container changes",
    ]);
    await dispatcherContainerStep.apply(ctx, plan.changes);
    const after = await containerOnNas();
    expect(after.Id).not.toBe(before.Id);
    expect(after.State.Running).toBe(true);
    expect((await nas.exec("docker inspect labrig-dispatcher-previous")).exitCode, "the previous container is removed once the new one is healthy").not.toBe(0);
    expect((await admin.job(jobId)).name).toBe("kept");
    expect((await dispatcherContainerStep.check(ctx)).changes).toEqual([]);
  }, 120_000);

  it("a new container that never becomes healthy is removed and the previous one runs again", async () => {
    const before = await containerOnNas();
    // The dispatcher refuses to start with this setting, so the new container exits at once.
    const ctx = context({ env: { LABRIG_HEARTBEAT_S: "5", LABRIG_STALE_AFTER_S: "-1" } });
    const plan = await dispatcherContainerStep.check(ctx);
    expect(whats(plan.changes)[0]).toBe("replace container labrig-dispatcher");
    await expect(dispatcherContainerStep.apply(ctx, plan.changes)).rejects.toThrow(/did not become healthy \(it exited.*\); the previous container is running again\. Its last output:\n.*LABRIG_STALE_AFTER_S: expected a positive number/);
    const after = await containerOnNas();
    expect(after.Id).toBe(before.Id);
    expect(after.Config.Labels["org.labrig.config-hash"]).toBe(before.Config.Labels["org.labrig.config-hash"]);
    await waitFor("the previous dispatcher to answer again", () => admin.job(jobId), (j) => j.name === "kept", 30_000, 500);
    expect((await dispatcherContainerStep.check(context({ env: { LABRIG_HEARTBEAT_S: "5" } }))).changes).toEqual([]);
  }, 120_000);
});

describe("dispatcher-firewall step", () => {
  /** curl from another machine on the lab network (a throwaway container): the HTTP status, or "blocked". */
  async function probeFromOtherMachine(): Promise<string> {
    const res = await execa("docker", ["run", "--rm", "--network", net.name, "--entrypoint", "curl", await ensureTestHostImage(), "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", `http://${nas.ip}:8000/api/health`], { reject: false });
    return res.exitCode === 0 ? res.stdout : "blocked";
  }
  const fromHere = async () => (await fetch(`http://${nas.ip}:8000/api/health`, { signal: AbortSignal.timeout(3000) })).status;
  const firewall = (allowFrom: string[]) => ({ firewall: { enabled: true, allowFrom } });
  const settings = { env: { LABRIG_HEARTBEAT_S: "5" } };

  it("lets only firewall.allowFrom reach the dispatcher's published port, and a second run changes nothing", async () => {
    expect(await probeFromOtherMachine(), "reachable before the step").toBe("200");
    const onlyHere = context(settings, firewall([net.gateway]));
    const plan = await dispatcherFirewallStep.check(onlyHere);
    expect(plan.changes.map((c) => c.kind)).toEqual(["write-file", "write-file", "daemon-reload", "enable-unit", "restart-unit"]);
    await dispatcherFirewallStep.apply(onlyHere, plan.changes);
    expect(await fromHere()).toBe(200);
    expect(await probeFromOtherMachine()).toBe("blocked");
    expect((await dispatcherFirewallStep.check(onlyHere)).changes).toEqual([]);

    const wholeNetwork = context(settings, firewall([net.gateway, net.subnet]));
    const widen = await dispatcherFirewallStep.check(wholeNetwork);
    expect(widen.changes.map((c) => c.kind)).toEqual(["write-file", "restart-unit"]);
    await dispatcherFirewallStep.apply(wholeNetwork, widen.changes);
    expect(await probeFromOtherMachine()).toBe("200");
    expect((await dispatcherFirewallStep.check(wholeNetwork)).changes).toEqual([]);
  }, 120_000);

  it("puts the rules back when the engine restarts, as after a reboot", async () => {
    const ctx = context(settings, firewall([net.gateway]));
    await dispatcherFirewallStep.apply(ctx, (await dispatcherFirewallStep.check(ctx)).changes);
    expect(await probeFromOtherMachine()).toBe("blocked");
    // What a reboot does to the rules: gone.
    await nas.sh(`iptables -D ${hookRule({ chain: "LABRIG-DISPATCHER", port: 8000 })} && iptables -F LABRIG-DISPATCHER && iptables -X LABRIG-DISPATCHER`);
    expect(await probeFromOtherMachine()).toBe("200");
    expect((await dispatcherFirewallStep.check(ctx)).changes.map((c) => c.kind)).toEqual(["restart-unit"]);
    await nas.sh("systemctl restart docker");
    await waitFor("the dispatcher to answer after the engine restart", fromHere, (s) => s === 200, 60_000, 500);
    expect(await probeFromOtherMachine()).toBe("blocked");
    expect((await dispatcherFirewallStep.check(ctx)).changes).toEqual([]);
  }, 120_000);
});
