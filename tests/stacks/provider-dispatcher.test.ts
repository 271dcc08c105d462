// The serialised step provider (serialised-provider.ts) bringing up the dispatcher container on a
// real NAS-like test host (systemd, sshd, its own nested Docker engine; the image built here and
// sent over SSH): the resource outputs the dispatcher's URL and the join token its step read back
// (what every agent resource takes as inputs), and deleting the backup timer and then the container
// removes the restic password from the container's config folder and says what stays.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory } from "../../provision/inventory.js";
import { type StepInputs, stepInputs } from "../../stacks/graph.js";
import type { StepOutputs } from "../../stacks/step-runtime.js";
import { ensureDispatcherImage } from "../compose/dispatcher-image.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";
import { type SerialisedProvider, serialisedProvider } from "./serialised-provider.js";

const resticPassword = "stk dispatcher restic password";
let dir: string;
let net: TestNetwork;
let nas: TestHost;
let image: string;
let provider: SerialisedProvider;

type Checked = { inputs: StepInputs; failures: unknown[] };

function inputsFor(step: string): StepInputs {
  const file = join(dir, "inventory.yaml");
  writeFileSync(
    file,
    `lab: {name: stk-d}
hosts:
  nas:
    address: ${nas.ip}
    identityFile: ${join(dir, "id_ed25519")}
    roles: [dispatcher]
    firewall: {enabled: false}
    dispatcher: {image: ${image}, dataDir: /srv/labrig, healthTimeoutS: 120}
    backup: {repository: /srv/labrig/backup/restic, passwordFile: /nonexistent/not-read-by-the-stack}
`,
  );
  const inventory = loadInventory(file);
  const inputs = stepInputs(inventory, inventory.hosts[0]!, step, { knownHostsFile: join(dir, "known_hosts") });
  return step === "backup-timer" ? { ...inputs, resticPassword } : inputs;
}

const env = () => ({ LABRIG_HOME: join(dir, "labrig-home") });

beforeAll(async () => {
  await requireDocker();
  dir = mkdtempSync(join(tmpdir(), "labrig-stack-nas-"));
  net = await createTestNetwork("stkd");
  const key = createSshKey(dir);
  [nas, image, provider] = await Promise.all([startTestHost({ name: "stk-nas", network: net, publicKey: key.publicKey }), ensureDispatcherImage(), serialisedProvider(dir)]);
  // The NAS's own engine (its docker step is tested elsewhere): Debian's docker.io inside the test host.
  await nas.sh("DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends docker.io >/dev/null");
  await nas.sh("systemctl start docker && docker info --format '{{.ServerVersion}}'");
}, 900_000);

afterAll(async () => {
  await nas?.stop();
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the serialised provider's dispatcher container on a real host", { timeout: 900_000 }, () => {
  let container: StepOutputs;

  it("outputs the dispatcher's URL and the join token it read back, for the agents' inputs", async () => {
    const checked = await provider.call<Checked>("check", [{}, inputsFor("dispatcher-container")], { env: env() });
    expect(checked.failures).toEqual([]);
    const created = await provider.call<{ id: string; outs: StepOutputs }>("create", [checked.inputs], { env: env() });
    container = created.outs;
    expect(container.dispatcherUrl).toBe(`http://${nas.ip}:8000`);
    expect(container.joinToken).toBe((await nas.sh("cat /srv/labrig/state/join-token")).trim());
    const health = await fetch(`${container.dispatcherUrl}/api/health`);
    expect(health.status).toBe(200);
    // A second check: nothing to do, and the outputs are no inputs of its own (no change from them).
    const again = await provider.call<Checked>("check", [container, inputsFor("dispatcher-container")], { env: env() });
    expect(again.inputs.plan).toEqual([]);
    expect(await provider.call("diff", ["nas/dispatcher-container", container, again.inputs], { env: env() })).toEqual({ changes: false, replaces: [] });
    expect(container.leavesOnDelete).toContain("/srv/labrig/config (/srv/labrig/config/restic-password, the restic password in plain text, until the backup-timer resource's delete removes it)");
  });

  it("deleting the backup timer removes the restic password from the container's config folder; deleting the container keeps the data and says so", async () => {
    const checked = await provider.call<Checked>("check", [{}, inputsFor("backup-timer")], { env: env() });
    expect(checked.failures).toEqual([]);
    const backup = (await provider.call<{ outs: StepOutputs }>("create", [checked.inputs], { env: env() })).outs;
    expect((await nas.sh("cat /srv/labrig/config/restic-password")).trim()).toBe(resticPassword);

    await provider.call("delete", ["nas/backup-timer", backup], { env: env() });
    expect((await nas.exec("test -e /srv/labrig/config/restic-password")).exitCode).not.toBe(0);
    expect((await nas.exec("systemctl is-enabled labrig-backup.timer")).exitCode).not.toBe(0);

    const deleted = await provider.run("delete", ["nas/dispatcher-container", container], { env: env() });
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect((await nas.exec("docker inspect labrig-dispatcher")).exitCode).not.toBe(0);
    expect(deleted.stderr).toContain("removed: remove container labrig-dispatcher");
    expect(deleted.stderr).toContain("left in place: the data folders: /srv/labrig/state (the queue database");
    expect(deleted.stderr).toContain("rm -rf /srv/labrig on nas");
    expect((await nas.exec("test -s /srv/labrig/state/join-token && test -d /srv/labrig/backup/restic")).exitCode).toBe(0);
  });
});
