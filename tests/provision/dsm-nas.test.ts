// A Synology as the lab's NAS, end to end on a DSM-like test host (tests/infra/dsm-host.ts: no apt,
// no ufw, Docker only at /usr/local/bin/docker with a root-only socket, /volume1 and /usr/syno,
// a sudo that asks the admin's password). One `labrig provision --host nas --ask-sudo-pass`
// brings the dispatcher up there (healthy, tokens read back here), reports the steps DSM owns as
// skipped, keeps the dispatcher's port filtered through DOCKER-USER by a boot script DSM runs
// (flushed rules, as after a reboot, come back when it runs the way DSM runs it), and the
// dispatcher container backs itself up on its own schedule into a restic snapshot with no
// systemd unit of labrig's on the host; a second run changes nothing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherClient } from "../../core/client.js";
import { savedDispatcherDir } from "../../provision/saved-dispatcher.js";
import { hookRule } from "../../provision/steps/docker-user.js";
import { ensureDispatcherImage } from "../compose/dispatcher-image.js";
import { waitFor } from "../helpers/wait.js";
import { createSshKey, createTestNetwork, type DsmLikeHost, ensureTestHostImage, requireDocker, startDsmLikeHost, type TestNetwork } from "../infra/index.js";
import { type CliRun, provisionCli, statuses, stepOf } from "./helpers.js";

const sudoPassword = "dsm-Adm1n-pass";
const dataDir = "/volume1/docker/labrig";
const bootScript = "/usr/local/etc/rc.d/labrig-dispatcher-firewall.sh";
let dir: string;
let net: TestNetwork;
let nas: DsmLikeHost;
let args: string[];
let env: Record<string, string>;
let first: CliRun;

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-dsm-"));
  net = await createTestNetwork("dsm");
  const key = createSshKey(dir);
  let image: string;
  [nas, image] = await Promise.all([startDsmLikeHost({ name: "nas", network: net, publicKey: key.publicKey, sudoPassword }), ensureDispatcherImage()]);
  writeFileSync(join(dir, "restic-pass"), "dsm restic password\n");
  const inventory = join(dir, "inventory.yaml");
  // No dataDir: on DSM it is /volume1/docker/labrig. The short schedule makes the container's own backup run within the test.
  writeFileSync(
    inventory,
    `lab: {name: syno}
hosts:
  nas:
    address: ${nas.ip}
    identityFile: ${key.privateKeyFile}
    roles: [dispatcher]
    firewall: {allowFrom: [${net.gateway}]}
    dispatcher: {image: ${image}, healthTimeoutS: 120}
    backup: {repository: ${dataDir}/backup/restic, passwordFile: ${join(dir, "restic-pass")}, schedule: every 15s}
`,
  );
  args = ["--host", "nas", "--inventory", inventory, "--known-hosts", join(dir, "known_hosts"), "--ask-sudo-pass"];
  env = { LABRIG_HOME: join(dir, "home"), DOCKER_HOST: process.env.DOCKER_HOST ?? "" };
}, 900_000);

afterAll(async () => {
  await nas?.stop();
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** curl from another machine on the lab network (a throwaway container): the HTTP status, or "blocked". */
async function probeFromOtherMachine(): Promise<string> {
  const res = await execa("docker", ["run", "--rm", "--network", net.name, "--entrypoint", "curl", await ensureTestHostImage(), "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", `http://${nas.ip}:8000/api/health`], { reject: false });
  return res.exitCode === 0 ? res.stdout : "blocked";
}

describe("a Synology (DSM 7) as the NAS", { timeout: 600_000 }, () => {
  it("brings the dispatcher up with one provision run, skipping the steps DSM owns, and reads its tokens back", async () => {
    first = await provisionCli(args, env, { input: `${sudoPassword}\n`, timeoutMs: 600_000 });
    expect(first.exitCode, `${first.stdout}\n${first.stderr}`).toBe(0);
    expect(first.report.hosts[0]!.system).toBe("Synology DSM 7.2.1-69057");
    expect(statuses(first, "nas")).toEqual({
      base: "skipped",
      docker: "skipped",
      "nvidia-toolkit": "skipped",
      agent: "skipped",
      firewall: "skipped",
      "gpu-firewall": "skipped",
      "dispatcher-container": "changed",
      "dispatcher-firewall": "changed",
      "backup-timer": "changed",
    });
    for (const id of ["base", "docker", "firewall"]) expect(stepOf(first, "nas", id).reason, id).toMatch(/^on DSM: /);
    expect(stepOf(first, "nas", "backup-timer").changes.map((c) => c.line)).not.toContainEqual(expect.stringMatching(/systemctl|labrig-backup\.(timer|service)/));

    const saved = savedDispatcherDir("syno", { LABRIG_HOME: env.LABRIG_HOME });
    const adminToken = readFileSync(join(saved, "admin-token"), "utf8").trim();
    expect(adminToken).toBe(await nas.sh(`cat ${dataDir}/state/admin-token`));
    expect(readFileSync(join(saved, "join-token"), "utf8").trim()).toBe(await nas.sh(`cat ${dataDir}/state/join-token`));
    const admin = new DispatcherClient({ url: `http://${nas.ip}:8000`, token: adminToken });
    expect((await admin.health()).status).toBe("ok");
    expect(await nas.sh("docker inspect labrig-dispatcher --format '{{.State.Health.Status}}'")).toBe("healthy");
    // Nothing of labrig's on the host's systemd: DSM has none to give it.
    expect(await nas.sh("ls /etc/systemd/system | grep labrig || true")).toBe("");
    expect(first.stdout + first.stderr, "the sudo password is in no output").not.toContain(sudoPassword);
  });

  it("filters the dispatcher's port through DOCKER-USER, and the boot script DSM runs puts flushed rules back", async () => {
    expect(await nas.sh(`stat -c '%a %U' ${bootScript}`)).toBe("755 root");
    expect(await probeFromOtherMachine()).toBe("blocked");
    expect((await fetch(`http://${nas.ip}:8000/api/health`)).status, "allowFrom (this machine, the network's gateway) gets through").toBe(200);
    // What a reboot does to the rules: gone.
    await nas.sh(`iptables -D ${hookRule({ chain: "LABRIG-DISPATCHER", port: 8000 })} && iptables -F LABRIG-DISPATCHER && iptables -X LABRIG-DISPATCHER`);
    expect(await probeFromOtherMachine()).toBe("200");
    await nas.runBootScripts();
    await waitFor("the boot script to apply the rules", () => nas.exec(`iptables -C ${hookRule({ chain: "LABRIG-DISPATCHER", port: 8000 })}`), (r) => r.exitCode === 0, 30_000, 500);
    expect(await probeFromOtherMachine()).toBe("blocked");
  });

  it("backs the dispatcher up from inside its container on the container's own schedule", async () => {
    const snapshots = () =>
      nas.sh(`docker exec --env-file ${dataDir}/config/backup.env labrig-dispatcher restic snapshots --json --tag labrig`).then((out) => JSON.parse(out) as { hostname: string; tags: string[] }[]);
    // Said at start; missing, the container runs an image without the schedule (another build of the test image's tag on a shared engine).
    expect(await nas.sh("docker logs labrig-dispatcher 2>&1"), "the dispatcher keeps the schedule").toContain("labrig dispatcher: backing up on its own schedule 'every 15s'");
    const found = await waitFor("a snapshot from the container's own schedule", snapshots, (s) => s.length > 0, 180_000, 3000).catch(async (err: Error) => {
      throw new Error(`${err.message}\nthe container's log:\n${(await nas.exec("docker logs --tail 40 labrig-dispatcher 2>&1")).stdout}`);
    });
    expect(found[0]!.tags).toContain("labrig");
    expect(found[0]!.hostname, "the inventory's name, not the container's").toBe("nas");
    expect(await nas.sh("docker logs labrig-dispatcher 2>&1 | grep -c 'scheduled backup done' || true")).not.toBe("0");
  });

  it("a second run changes nothing", async () => {
    const again = await provisionCli(args, env, { input: `${sudoPassword}\n`, timeoutMs: 300_000 });
    expect(again.exitCode, again.stderr).toBe(0);
    const changed = again.report.hosts[0]!.steps.filter((s) => s.status === "changed").map((s) => `${s.id}: ${s.changes.map((c) => c.line).join("; ")}`);
    expect(changed).toEqual([]);
  });
});
