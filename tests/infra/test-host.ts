// A test host: a container from the test host image running systemd and sshd with the flags
// this engine needs for them (--cgroupns=host, cgroup rw, tmpfs /run, ALL caps but SYS_RESOURCE,
// no seccomp or apparmor profile: systemd, ufw and a nested dockerd work under them), on the test's network,
// with a `deploy` user who logs in with the test's key and has passwordless sudo (or, with
// `sudo: "password"`, a sudo that asks for a password, as some admins set it up).
import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { docker } from "./docker.js";
import { ensureTestHostImage } from "./image.js";
import type { TestNetwork } from "./network.js";

export interface TestHostOptions {
  /** The host's name (its hostname too); the container gets a unique name from it. */
  name: string;
  network: TestNetwork;
  /** Put in /home/deploy/.ssh/authorized_keys. */
  publicKey: string;
  /** "nopasswd" (default): `sudo -n` works. "password": sudo asks for `sudoPassword`. */
  sudo?: "nopasswd" | "password";
  /** deploy's password when `sudo: "password"` (default "deploy"). */
  sudoPassword?: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface TestHost {
  name: string;
  container: string;
  /** Its address on the test network; this machine reaches it directly. */
  ip: string;
  sshPort: number;
  /** Runs `bash -c cmd` as root inside the host via `docker exec` (no SSH): how tests check what provisioning did. */
  exec(cmd: string): Promise<ExecResult>;
  /** Like exec, but throws unless it exits 0, and returns stdout trimmed. */
  sh(cmd: string): Promise<string>;
  /** Closes its SSH port to every address but these (raw-table DROP, which ufw never touches): a host reached only through a jump host. */
  closeSshExceptFrom(addresses: string[]): Promise<void>;
  /** Removes the container and its volumes. */
  stop(): Promise<void>;
}

export async function startTestHost(opts: TestHostOptions): Promise<TestHost> {
  const image = await ensureTestHostImage();
  const container = `labrig-test-${opts.name}-${randomBytes(3).toString("hex")}`;
  await docker([
    "run", "-d", "--name", container, "--hostname", opts.name, "--network", opts.network.name,
    "--label", "labrig-test=1",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    // A volume, so a dockerd inside the host gets a real filesystem for overlay2 (not overlay on overlay).
    "-v", "/var/lib/docker",
    image,
  ]);
  const exec = async (cmd: string): Promise<ExecResult> => {
    const res = await execa("docker", ["exec", container, "bash", "-c", cmd], { reject: false, timeout: 300_000 });
    return { stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode ?? -1 };
  };
  const sh = async (cmd: string): Promise<string> => {
    const res = await exec(cmd);
    if (res.exitCode !== 0) throw new Error(`in ${opts.name}: ${cmd} exited ${res.exitCode}: ${res.stderr.trim() || res.stdout.trim()}`);
    return res.stdout.trim();
  };
  const stop = async () => {
    await docker(["rm", "-f", "-v", container]).catch(() => undefined);
  };
  try {
    const ip = await docker(["inspect", container, "--format", `{{(index .NetworkSettings.Networks "${opts.network.name}").IPAddress}}`]);
    await waitForBoot(exec, opts.name);
    await sh(
      `install -m 0600 -o deploy -g deploy /dev/stdin /home/deploy/.ssh/authorized_keys <<'KEY'\n${opts.publicKey}\nKEY`,
    );
    if (opts.sudo === "password") {
      await sh(`echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy && chpasswd <<'PW'\ndeploy:${opts.sudoPassword ?? "deploy"}\nPW`);
    }
    await waitForPort(ip, 22, opts.name);
    const closeSshExceptFrom = async (addresses: string[]) => {
      await sh("command -v iptables >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=120 update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120 install --no-install-recommends iptables >/dev/null; }");
      await sh(`${addresses.map((a) => `iptables -t raw -A PREROUTING -p tcp --dport 22 -s ${a} -j ACCEPT`).join(" && ")} && iptables -t raw -A PREROUTING -p tcp --dport 22 -j DROP`);
    };
    return { name: opts.name, container, ip, sshPort: 22, exec, sh, stop, closeSshExceptFrom };
  } catch (err) {
    const logs = await docker(["logs", "--tail", "40", container]).catch(() => "");
    await stop();
    throw new Error(`test host ${opts.name} did not start: ${(err as Error).message}\n${logs}`);
  }
}

async function waitForBoot(exec: (cmd: string) => Promise<ExecResult>, name: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  let state = "";
  while (Date.now() < deadline) {
    state = (await exec("systemctl is-system-running")).stdout.trim();
    if (state === "running" || state === "degraded") return;
    await sleep(250);
  }
  const failed = (await exec("systemctl --failed --no-legend")).stdout;
  throw new Error(`systemd in ${name} did not finish booting in 90 s (state '${state}'; failed units: ${failed})`);
}

async function waitForPort(host: string, port: number, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((done) => {
      const s = createConnection({ host, port, timeout: 1000 });
      s.once("connect", () => (s.destroy(), done(true)));
      s.once("error", () => done(false));
      s.once("timeout", () => (s.destroy(), done(false)));
    });
    if (open) return;
    await sleep(200);
  }
  throw new Error(`sshd of ${name} at ${host}:${port} is not reachable from this machine`);
}
