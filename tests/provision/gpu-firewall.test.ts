// The gpu-firewall step for real: a GPU-role test host with systemd, sshd and its own Docker engine
// (nested), reached over SSH; a container on it publishing a port (someone's notebook, say) is
// reachable from anywhere although ufw denies incoming, until the step puts its DOCKER-USER chain
// in: then only firewall.allowFrom reaches it, the container's own outgoing traffic still passes,
// and the rules come back after the engine restarts.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change } from "../../provision/change.js";
import { parseInventory, type HostConfig, type Inventory } from "../../provision/inventory.js";
import { SshRemote } from "../../provision/ssh-remote.js";
import type { StepContext } from "../../provision/step.js";
import { hookRule } from "../../provision/steps/docker-user.js";
import { gpuFilter, gpuFirewallStep } from "../../provision/steps/gpu-firewall.js";
import { waitFor } from "../helpers/wait.js";
import { createSshKey, createTestNetwork, ensureTestHostImage, startTestHost, type TestHost, type TestNetwork } from "../infra/index.js";

let net: TestNetwork;
let gpu: TestHost;
let home: string;
let remote: SshRemote;
let inventory: Inventory;
let listener: Server;
let listenerPort: number;
const webImage = "labrig-test-web:1";
/** A published port as a person would start one: `docker run -p 8080:80`, kept across engine restarts. */
const published = 8080;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "labrig-gpu-fw-"));
  const key = createSshKey(home);
  net = await createTestNetwork("gpufw");
  gpu = await startTestHost({ name: "gpu-fw", network: net, publicKey: key.publicKey });
  await gpu.sh("DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends docker.io ufw >/dev/null");
  await gpu.sh("systemctl start docker && docker info --format '{{.ServerVersion}}'");
  // No registry here: an image holding only the host's perl, the libraries it loads and its base
  // modules, serving one line of HTTP.
  await gpu.sh(
    "set -e; r=$(mktemp -d); for f in /usr/bin/perl $(ldd /usr/bin/perl | grep -o '/[^ ]*\\.so[^ ]*'); do mkdir -p \"$r$(dirname $f)\"; cp -L $f \"$r$f\"; done; " +
      "mkdir -p $r/usr/lib/x86_64-linux-gnu && cp -a /usr/lib/x86_64-linux-gnu/perl-base $r/usr/lib/x86_64-linux-gnu/; " +
      `tar -C $r -c . | docker import - ${webImage} >/dev/null; rm -rf $r`,
  );
  const serve = "my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die $!; while (my $c = $s->accept) { while (<$c>) { last if /^\\r?$/ } print $c qq(HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n); close $c }";
  await gpu.sh(`docker run -d --name web --restart always -p ${published}:80 ${webImage} /usr/bin/perl -MIO::Socket::INET -e '${serve}'`);
  // Something outside the GPU host for the container to reach out to.
  listener = createServer((s) => s.end("hello\n"));
  await new Promise<void>((r) => listener.listen(0, "0.0.0.0", r));
  listenerPort = (listener.address() as { port: number }).port;
  inventory = parseInventory(
    `lab: { name: testlab }\nhosts:\n  gpu-fw:\n    address: ${gpu.ip}\n    user: deploy\n    identityFile: ${key.privateKeyFile}\n    roles: [gpu]\n`,
    "inventory.yaml",
  );
  remote = new SshRemote({ host: "gpu-fw", address: gpu.ip, port: 22, user: "deploy", identityFile: key.privateKeyFile }, { knownHostsFile: join(home, "known_hosts") });
}, 600_000);

afterAll(async () => {
  await remote?.close();
  await gpu?.stop();
  await net?.remove();
  await new Promise((r) => (listener ? listener.close(r) : r(undefined)));
  rmSync(home, { recursive: true, force: true });
});

function context(allowFrom: string[]): StepContext & { done: Change[] } {
  const host = { ...inventory.hosts[0]!, firewall: { enabled: true, allowFrom } } as HostConfig;
  const done: Change[] = [];
  return { host, inventory, remote, assets: {}, applied: (c) => done.push(c), log: () => undefined, done };
}

/** curl from another machine on the lab network (a throwaway container): the HTTP status, or "blocked". */
async function fromOtherMachine(): Promise<string> {
  const res = await execa("docker", ["run", "--rm", "--network", net.name, "--entrypoint", "curl", await ensureTestHostImage(), "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", `http://${gpu.ip}:${published}/`], { reject: false });
  return res.exitCode === 0 ? res.stdout : "blocked";
}
/** From this machine, which is on the lab network at its gateway address. */
const fromHere = async () => (await fetch(`http://${gpu.ip}:${published}/`, { signal: AbortSignal.timeout(3000) })).status;
/** The container reaching out to this machine: not a DNAT'ed connection, so never filtered. */
const outgoing = () => gpu.sh(`docker exec web /usr/bin/perl -MIO::Socket::INET -e 'my $c = IO::Socket::INET->new(PeerAddr => "${net.gateway}:${listenerPort}", Timeout => 3) or die "no: $!"; print scalar <$c>'`);

describe("gpu-firewall step", { timeout: 180_000 }, () => {
  it("lets only firewall.allowFrom reach a container's published port, which ufw alone does not stop, and a second run changes nothing", async () => {
    // ufw denying incoming (SSH aside): the published port is reachable from anywhere all the same.
    await gpu.sh("ufw allow 22/tcp >/dev/null && ufw default deny incoming >/dev/null && ufw --force enable >/dev/null");
    expect(await gpu.sh("ufw status verbose")).toContain("Default: deny (incoming)");
    expect(await fromOtherMachine(), "ufw does not filter Docker's published ports").toBe("200");

    const onlyHere = context([net.gateway]);
    const plan = await gpuFirewallStep.check(onlyHere);
    expect(plan.changes.map((c) => (c.kind === "write-file" ? c.path : c.kind))).toEqual([
      "/usr/local/sbin/labrig-gpu-firewall",
      "/etc/systemd/system/labrig-gpu-firewall.service",
      "daemon-reload",
      "enable-unit",
      "restart-unit",
    ]);
    await gpuFirewallStep.apply(onlyHere, plan.changes);
    expect(onlyHere.done).toEqual(plan.changes);
    expect(await fromHere()).toBe(200);
    expect(await fromOtherMachine()).toBe("blocked");
    expect(await outgoing()).toBe("hello");
    expect((await gpuFirewallStep.check(onlyHere)).changes).toEqual([]);

    const wholeNetwork = context([net.gateway, net.subnet]);
    const widen = await gpuFirewallStep.check(wholeNetwork);
    expect(widen.changes.map((c) => c.kind)).toEqual(["write-file", "restart-unit"]);
    await gpuFirewallStep.apply(wholeNetwork, widen.changes);
    expect(await fromOtherMachine()).toBe("200");
    expect((await gpuFirewallStep.check(wholeNetwork)).changes).toEqual([]);
  });

  it("puts the rules back when the engine restarts, as after a reboot", async () => {
    const ctx = context([net.gateway]);
    await gpuFirewallStep.apply(ctx, (await gpuFirewallStep.check(ctx)).changes);
    expect(await fromOtherMachine()).toBe("blocked");
    // What a reboot does to the rules: gone.
    await gpu.sh(`iptables -D ${hookRule(gpuFilter)} && iptables -F LABRIG-GPU && iptables -X LABRIG-GPU`);
    expect(await fromOtherMachine()).toBe("200");
    expect((await gpuFirewallStep.check(ctx)).changes.map((c) => c.kind)).toEqual(["restart-unit"]);
    await gpu.sh("systemctl restart docker");
    await waitFor("the container to answer after the engine restart", () => fromHere().catch(() => 0), (s) => s === 200, 60_000, 500);
    expect(await fromOtherMachine()).toBe("blocked");
    expect(await outgoing()).toBe("hello");
    expect((await gpuFirewallStep.check(ctx)).changes).toEqual([]);
  });
});
