import { mkdtempSync, rmSync, statSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { describeChange, type Change } from "../../provision/change.js";
import { fileStates } from "../../provision/facts/files.js";
import { parseOsRelease, supportedOs } from "../../provision/facts/os-release.js";
import { parseUfwState } from "../../provision/facts/ufw.js";
import { baseStep } from "../../provision/steps/base.js";
import { type HostConfig, loadInventory, parseInventory } from "../../provision/inventory.js";
import { LocalRemote } from "../../provision/local-remote.js";
import { systemRemote } from "./system-remote.js";
import { desiredSha256, planFile } from "../../provision/ops.js";
import { provision, type ProvisionEvent } from "../../provision/runner.js";
import type { Step } from "../../provision/step.js";
import { mergeMissing, withCgroupfsDriver, withLogRotation } from "../../provision/steps/daemon-json.js";
import { desiredUfwRules, reconcileUfwRules } from "../../provision/steps/firewall.js";
import { type BackupFacts, backupEnvFile, backupFiles, backupKind, backupServiceFile, backupTimerFile, containerRepository, planBackupTimer } from "../../provision/steps/backup-timer.js";

const dir = mkdtempSync(join(tmpdir(), "labrig-plan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("daemon.json merge", () => {
  it("adds log rotation to an empty config", () => {
    const r = withLogRotation({}, "50m", "5");
    expect(r.config).toEqual({ "log-driver": "json-file", "log-opts": { "max-size": "50m", "max-file": "5" } });
    expect(r.added).toEqual(["log-driver", "log-opts"]);
  });

  it("keeps the admin's values and unrelated keys, adding only what is missing", () => {
    const admin = { "data-root": "/data/docker", "log-opts": { "max-size": "10m" }, runtimes: { nvidia: { path: "nvidia-container-runtime" } } };
    const r = withLogRotation(admin, "50m", "5");
    expect(r.config).toEqual({ ...admin, "log-driver": "json-file", "log-opts": { "max-size": "10m", "max-file": "5" } });
    expect(r.added).toEqual(["log-driver", "log-opts.max-file"]);
  });

  it("leaves a non-file log driver alone", () => {
    expect(withLogRotation({ "log-driver": "journald" }, "50m", "5").added).toEqual([]);
  });

  it("sets the cgroupfs driver unless the admin chose a driver", () => {
    expect(withCgroupfsDriver({ "exec-opts": ["foo=bar"] }).config["exec-opts"]).toEqual(["foo=bar", "native.cgroupdriver=cgroupfs"]);
    expect(withCgroupfsDriver({ "exec-opts": ["native.cgroupdriver=systemd"] }).added).toEqual([]);
  });

  it("is a no-op on a config that already has everything", () => {
    const full = withLogRotation({}, "50m", "5").config;
    expect(mergeMissing(full, { "log-opts": { "max-size": "1m" } }).added).toEqual([]);
  });
});

describe("ufw rules", () => {
  const show = `Added user rules (see 'ufw status' for running firewall):
ufw allow 22/tcp comment 'labrig'
ufw allow from 10.9.0.0/16 to any port 8020 proto tcp comment 'labrig'
ufw allow 80
ufw allow from 10.1.0.0/16 to any port 8020 proto tcp comment 'monitoring'
`;

  it("parses state, defaults and rules with their comments", () => {
    const s = parseUfwState(`Status: inactive\n--labrig-section--\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n--labrig-section--\n${show}`);
    expect(s).toMatchObject({ installed: true, active: false, defaults: { incoming: "deny", outgoing: "allow" } });
    expect(s.rules).toEqual([
      { rule: "allow 22/tcp", comment: "labrig" },
      { rule: "allow from 10.9.0.0/16 to any port 8020 proto tcp", comment: "labrig" },
      { rule: "allow 80" },
      { rule: "allow from 10.1.0.0/16 to any port 8020 proto tcp", comment: "monitoring" },
    ]);
  });

  it("adds missing labrig rules, removes stale labrig rules, and keeps the admin's", () => {
    const current = parseUfwState(`Status: active\n--labrig-section--\n--labrig-section--\n${show}`).rules;
    const { add, remove } = reconcileUfwRules(["allow 22/tcp", "allow from 192.168.1.0/24 to any port 8020 proto tcp"], current);
    expect(add).toEqual(["allow from 192.168.1.0/24 to any port 8020 proto tcp"]);
    expect(remove).toEqual(["allow from 10.9.0.0/16 to any port 8020 proto tcp"]);
  });

  it("wants SSH first, then the agent port from each allowed network, spelt as ufw prints it", () => {
    const inv = parseInventory("hosts:\n  g: {address: h, port: 2222, roles: [gpu], firewall: {allowFrom: [10.0.0.0/8, 192.168.1.7/32]}}\n", "i.yaml", {});
    expect(desiredUfwRules(inv.hosts[0]!)).toEqual([
      "allow 2222/tcp",
      "allow from 10.0.0.0/8 to any port 8020 proto tcp",
      "allow from 192.168.1.7 to any port 8020 proto tcp",
    ]);
  });
});

describe("os release", () => {
  const release = (id: string, version: string, pretty: string) => parseOsRelease(`PRETTY_NAME="${pretty}"\nNAME="x"\nVERSION_ID="${version}"\nID=${id}\n`);

  it("accepts the Debian and Ubuntu releases the README names", () => {
    expect(supportedOs(release("debian", "12", "Debian GNU/Linux 12 (bookworm)"))).toEqual({ supported: true, name: "Debian GNU/Linux 12 (bookworm)" });
    expect(supportedOs(release("ubuntu", "24.04", "Ubuntu 24.04.1 LTS")).supported).toBe(true);
    expect(supportedOs(release("ubuntu", "22.04", "Ubuntu 22.04.5 LTS")).supported).toBe(true);
  });

  it("refuses anything else with the reason and what is supported", () => {
    expect(supportedOs(release("ubuntu", "20.04", "Ubuntu 20.04.6 LTS"))).toEqual({
      supported: false,
      name: "Ubuntu 20.04.6 LTS",
      reason: "ubuntu 20.04 is not a release labrig was tested on; labrig provisions Debian 11/12/13 and Ubuntu 22.04/24.04",
    });
    expect(supportedOs(release("rocky", "9.3", "Rocky Linux 9.3 (Blue Onyx)"))).toEqual({
      supported: false,
      name: "Rocky Linux 9.3 (Blue Onyx)",
      reason: "Rocky Linux 9.3 (Blue Onyx) is not Debian or Ubuntu (labrig's steps use apt, systemd and Debian's package names); labrig provisions Debian 11/12/13 and Ubuntu 22.04/24.04",
    });
    expect(supportedOs(undefined)).toMatchObject({ supported: false, reason: expect.stringContaining("no /etc/os-release") });
  });

  it("stops a host at the base step, before any change, on an unsupported release (the step run on its own, as the Pulumi providers run it)", async () => {
    const fake = systemRemote('ID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME="Alpine Linux v3.20"\n');
    const inv = parseInventory("hosts:\n  h: {address: a}\n", "i.yaml", {});
    const ctx = { host: inv.hosts[0]!, inventory: inv, remote: fake, assets: {}, applied: () => undefined, log: () => undefined };
    expect(await baseStep.check(ctx)).toEqual({
      facts: { os: "Alpine Linux v3.20" },
      changes: [],
      fail: "refused before any change: Alpine Linux v3.20 is not Debian or Ubuntu (labrig's steps use apt, systemd and Debian's package names); labrig provisions Debian 11/12/13, Ubuntu 22.04/24.04 (every role); Synology DSM 7 (role dispatcher only)",
    });
  });
});

describe("files", () => {
  it("plans a write only when content differs, and a mode fix when only the mode does", async () => {
    const remote = new LocalRemote();
    const path = join(dir, "agent.env");
    const want = { path, content: "A=1\n", mode: 0o600, owner: "root" };
    expect(planFile((await fileStates(remote, [path])).get(path), want)).toMatchObject({ kind: "write-file", reason: "file missing" });
    await remote.writeFile(path, "A=1\n", { mode: 0o644 });
    expect(planFile((await fileStates(remote, [path])).get(path), want)).toMatchObject({ kind: "set-mode", mode: "0600", reason: "is 0644 root:root" });
    await remote.writeFile(path, "A=1\n", { mode: 0o600 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8")).toBe("A=1\n");
    expect(planFile((await fileStates(remote, [path])).get(path), want)).toBeUndefined();
    expect(planFile((await fileStates(remote, [path])).get(path), { ...want, content: "A=2\n" })).toMatchObject({ kind: "write-file", reason: "file differs" });
  });

  it("reads an owner with no name on the host as its number, so a container user's file converges", async () => {
    const remote = new LocalRemote();
    const path = join(dir, "restic-password");
    const want = { path, content: "pw\n", mode: 0o400, owner: "48213", group: "48214" };
    await remote.writeFile(path, "pw\n", { mode: 0o400, owner: "48213", group: "48214" });
    expect((await fileStates(remote, [path])).get(path)).toMatchObject({ owner: "48213", group: "48214", mode: "0400" });
    expect(planFile((await fileStates(remote, [path])).get(path), want)).toBeUndefined();
  });
});

describe("backup-timer plan", () => {
  const lab = parseInventory(
    `lab: {name: demo}
defaults:
  backup: {repository: /srv/labrig/backup/restic, passwordFile: /control/restic-pass}
hosts:
  nas: {address: a, roles: [dispatcher]}
  gpu-a: {address: b, roles: [gpu], backup: {repository: "sftp:backup@nas:/volume1/backups/labrig", passwordFile: /control/restic-pass}}
`,
    "i.yaml",
    {},
  );
  const [nas, gpu] = lab.hosts as [HostConfig, HostConfig];
  const password = "correct horse battery staple";
  const bare = (container?: string): BackupFacts => ({ files: new Map(), initialised: false, container, timer: { enabled: "not-found", active: "inactive" } });
  /** Facts of a host where every planned file is already in place, the repository answers and the timer runs. */
  const converged = (files: ReturnType<typeof backupFiles>, container?: string): BackupFacts => ({
    files: new Map(files.map((f) => [f.path, { exists: true, mode: `0${f.mode.toString(8)}`, owner: f.owner ?? "root", group: f.group ?? f.owner ?? "root", sha256: desiredSha256(f) }])),
    initialised: true,
    restic: "0.14.0",
    container,
    timer: { enabled: "enabled", active: "active" },
  });
  const content = (files: ReturnType<typeof backupFiles>, path: string) => String(files.find((f) => f.path === path)!.content);
  const execLines = (unit: string) => unit.split("\n").filter((l) => /^Exec/.test(l));

  it("plans every host of the worked example inventory.yaml, the NAS backing up from inside its container", () => {
    const example = loadInventory(join(import.meta.dirname, "../../inventory.yaml"), {});
    for (const host of example.hosts) {
      const kind = backupKind(host, host.backup!, "/srv/labrig");
      if ("fail" in kind) throw new Error(`${host.name}: ${kind.fail}`);
      expect(kind.kind, host.name).toBe(host.roles.includes("dispatcher") ? "dispatcher-container" : "host-restic");
    }
  });

  it("on a dispatcher host, runs labrig backup inside the dispatcher container, the password in its config folder and off every command line", () => {
    const kind = backupKind(nas, nas.backup!, "/srv/labrig");
    expect(kind).toMatchObject({ kind: "dispatcher-container", container: "labrig-dispatcher", repository: "/var/lib/labrig-backup/restic", passwordFile: "/srv/labrig/config/restic-password" });
    if ("fail" in kind) throw new Error(kind.fail);
    const files = backupFiles(kind, nas.backup!, password);
    const changes = planBackupTimer(kind, files, bare("running"));
    expect(changes.map(describeChange)).toEqual([
      "write /srv/labrig/config/restic-password (0400 10001:10001) (file missing)",
      `write ${backupEnvFile} (0600 root:root) (file missing)`,
      `write ${backupServiceFile} (0644 root:root) (file missing; it runs labrig backup inside container labrig-dispatcher)`,
      `write ${backupTimerFile} (0644 root:root) (file missing)`,
      "systemctl daemon-reload (backup units changed)",
      "restic init inside container labrig-dispatcher (if /var/lib/labrig-backup/restic has no repository; not asked: its settings are new or change)",
      "enable labrig-backup.timer (is not-found)",
      "start labrig-backup.timer (is inactive)",
    ]);
    const unit = content(files, backupServiceFile);
    expect(execLines(unit)).toEqual([
      "ExecStartPre=/bin/sh -c 'docker container inspect --format {{.State.Running}} labrig-dispatcher 2>/dev/null | grep -qx true || { echo \"labrig-backup: the dispatcher container labrig-dispatcher is not running on nas, and the backup runs inside it. Start it with: docker start labrig-dispatcher (on nas), or bring it back from the control machine with: labrig provision --host nas\" >&2; exit 1; }'",
      "ExecStart=docker exec --env-file /etc/labrig/backup.env labrig-dispatcher labrig backup --state /var/lib/labrig --config /etc/labrig --host nas --keep-daily 7 --keep-weekly 4 --keep-monthly 6",
    ]);
    // The env file holds where the container finds the repository and the password, never the password.
    expect(content(files, backupEnvFile)).toContain("RESTIC_REPOSITORY=/var/lib/labrig-backup/restic\nRESTIC_PASSWORD_FILE=/etc/labrig/restic-password\n");
    expect(content(files, "/srv/labrig/config/restic-password")).toBe(`${password}\n`);
    for (const f of files.filter((x) => x.path !== "/srv/labrig/config/restic-password")) expect(String(f.content), f.path).not.toContain(password);
    expect(changes.some((c) => c.kind === "install-packages"), "the image carries restic; the host needs none").toBe(false);
    expect(planBackupTimer(kind, files, converged(files, "running"))).toEqual([]);
  });

  it("on a GPU host, runs restic on the host over its paths and prunes by the same policy", () => {
    const kind = backupKind(gpu, gpu.backup!);
    expect(kind).toEqual({ kind: "host-restic", repository: "sftp:backup@nas:/volume1/backups/labrig", paths: ["/var/lib/labrig"] });
    if ("fail" in kind) throw new Error(kind.fail);
    const files = backupFiles(kind, gpu.backup!, password);
    expect(planBackupTimer(kind, files, bare()).map(describeChange)).toEqual([
      "install restic (not installed)",
      `write /etc/labrig/restic-password (0600 root:root) (file missing)`,
      `write ${backupEnvFile} (0600 root:root) (file missing)`,
      `write ${backupServiceFile} (0644 root:root) (file missing; it runs restic over /var/lib/labrig)`,
      `write ${backupTimerFile} (0644 root:root) (file missing)`,
      "systemctl daemon-reload (backup units changed)",
      "restic init (if sftp:backup@nas:/volume1/backups/labrig has no repository; not asked: its settings are new or change)",
      "enable labrig-backup.timer (is not-found)",
      "start labrig-backup.timer (is inactive)",
    ]);
    expect(execLines(content(files, backupServiceFile))).toEqual([
      "ExecStart=/usr/bin/restic backup --tag labrig /var/lib/labrig",
      "ExecStartPost=/usr/bin/restic forget --tag labrig --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --prune",
    ]);
    expect(content(files, backupEnvFile)).toBe(`RESTIC_REPOSITORY=sftp:backup@nas:/volume1/backups/labrig\nRESTIC_PASSWORD_FILE=/etc/labrig/restic-password\n`);
    expect(planBackupTimer(kind, files, converged(files))).toEqual([]);
  });

  it("plans the repository's creation for later when the dispatcher container is not up yet, naming it", () => {
    const kind = backupKind(nas, nas.backup!, "/srv/labrig");
    if ("fail" in kind) throw new Error(kind.fail);
    const files = backupFiles(kind, nas.backup!, password);
    const facts = { ...converged(files, "missing"), initialised: false };
    expect(planBackupTimer(kind, files, facts).map(describeChange)).toEqual([
      "restic init inside container labrig-dispatcher (if /var/lib/labrig-backup/restic has no repository; not asked: container labrig-dispatcher is missing now, the dispatcher-container step starts it)",
    ]);
  });

  it("maps a repository under the dispatcher's backup folder into the container, and refuses one the container cannot reach", () => {
    expect(containerRepository("/srv/labrig/backup/restic", "/srv/labrig")).toEqual({ repository: "/var/lib/labrig-backup/restic" });
    expect(containerRepository("local:/volume1/docker/labrig/backup/", "/volume1/docker/labrig")).toEqual({ repository: "/var/lib/labrig-backup" });
    expect(containerRepository("rest:https://backup.lab:8000/labrig", "/srv/labrig")).toEqual({ repository: "rest:https://backup.lab:8000/labrig" });
    expect(containerRepository("/srv/labrig/backupx", "/srv/labrig")).toMatchObject({ fail: expect.stringContaining("/srv/labrig/backupx is a folder the dispatcher container does not see") });
    const outside = containerRepository("/var/backups/labrig-restic", "/srv/labrig");
    expect("fail" in outside && outside.fail).toMatch(/use a folder under \/srv\/labrig\/backup \(the container's \/var\/lib\/labrig-backup\), e\.g\. \/srv\/labrig\/backup\/restic, or a rest: s3: /);
    const sftp = containerRepository("sftp:backup@nas:/volume1/backups/labrig", "/srv/labrig");
    expect("fail" in sftp && sftp.fail).toContain("restic's sftp backend runs ssh, with a key");
  });

  it("follows the inventory's container name, user and data folder", () => {
    const inv = parseInventory(
      "hosts:\n  nas: {address: a, roles: [dispatcher], dispatcher: {containerName: q, uid: 1026, gid: 100, dataDir: /volume1/lab}, backup: {repository: /volume1/lab/backup/r, passwordFile: /p}}\n",
      "i.yaml",
      {},
    );
    const host = inv.hosts[0]!;
    const kind = backupKind(host, host.backup!, "/volume1/lab");
    if ("fail" in kind) throw new Error(kind.fail);
    const files = backupFiles(kind, host.backup!, password);
    expect(files[0]).toMatchObject({ path: "/volume1/lab/config/restic-password", owner: "1026", group: "100", mode: 0o400 });
    expect(content(files, backupServiceFile)).toContain("ExecStart=docker exec --env-file /etc/labrig/backup.env q labrig backup --state /var/lib/labrig --config /etc/labrig --host nas ");
  });
});

describe("runner", () => {
  const inventory = parseInventory("hosts:\n  h1: {address: a, roles: [gpu]}\n  h2: {address: b, roles: [gpu]}\n", "i.yaml", {});

  /** A step over an in-memory host: its state is a set of flags, its changes set them. */
  function flagStep(id: string, flags: string[], opts: { failOn?: string; failHost?: string } = {}): Step {
    return {
      id,
      description: id,
      roles: ["gpu"],
      async check(ctx) {
        const state = hostState(ctx.host.name);
        const changes: Change[] = flags.filter((f) => !state.has(f)).map((f) => ({ kind: "run", what: `set ${f}`, reason: "unset" }));
        return { facts: {}, changes };
      },
      async apply(ctx, changes) {
        for (const c of changes) {
          const flag = (c as { what: string }).what.slice(4);
          if (flag === opts.failOn && ctx.host.name === opts.failHost) throw new Error(`cannot set ${flag}`);
          hostState(ctx.host.name).add(flag);
          ctx.applied(c);
        }
      },
    };
  }
  const states = new Map<string, Set<string>>();
  const hostState = (h: string) => (states.get(h) ?? states.set(h, new Set()).get(h))!;
  const connect = () => systemRemote('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n');

  it("applies changes, then reports ok on a second run; a dry run changes nothing", async () => {
    states.clear();
    const steps = [flagStep("one", ["a", "b"]), flagStep("two", ["c"])];
    const dry = await provision({ inventory, hosts: inventory.hosts, steps, dryRun: true, connect });
    expect(dry.hosts[0]!.steps.map((s) => [s.id, s.status, s.changes.length])).toEqual([["one", "changed", 2], ["two", "changed", 1]]);
    expect(states.get("h1")?.size ?? 0).toBe(0);
    const first = await provision({ inventory, hosts: inventory.hosts, steps, connect });
    expect(first.hosts.flatMap((h) => h.steps.map((s) => s.status))).toEqual(["changed", "changed", "changed", "changed"]);
    expect(first.hosts[0]!.steps[0]!.changes[0]).toEqual({ kind: "run", what: "set a", reason: "unset", line: "set a (unset)", doneAtMs: expect.any(Number) });
    const second = await provision({ inventory, hosts: inventory.hosts, steps, connect });
    expect(second.hosts.flatMap((h) => h.steps.map((s) => s.status))).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it("stops a host at its failed step, says what it left changed, and lets other hosts go on", async () => {
    states.clear();
    const events: ProvisionEvent[] = [];
    const steps = [flagStep("one", ["a", "b", "x"], { failOn: "b", failHost: "h1" }), flagStep("two", ["c"])];
    const report = await provision({ inventory, hosts: inventory.hosts, steps, connect, concurrency: 1, onEvent: (e) => events.push(e) });
    const [h1, h2] = report.hosts;
    expect(h1!.steps.map((s) => s.status)).toEqual(["failed", "skipped"]);
    expect(h1!.steps[0]!.reason).toBe("cannot set b. It left changed: set a (unset). Not done: set b (unset); set x (unset).");
    expect(h1!.steps[0]!.changes.map((c) => c.line)).toEqual(["set a (unset)"]);
    expect(h1!.steps[1]!.reason).toBe("not run: step one failed");
    expect(h2!.steps.map((s) => s.status)).toEqual(["changed", "changed"]);
    expect(events.filter((e) => e.type === "step-end").length).toBe(4);
    expect(events[0]).toEqual({ type: "host-start", host: "h1", steps: ["one", "two"] });
  });

  it("brings dispatcher hosts up first, then every other host in parallel, even when a dispatcher host fails", async () => {
    states.clear();
    const lab = parseInventory("hosts:\n  g1: {address: a, roles: [gpu]}\n  nas: {address: b, roles: [dispatcher]}\n  g2: {address: c, roles: [gpu]}\n", "i.yaml", {});
    const events: ProvisionEvent[] = [];
    const anyRole = (s: Step): Step => ({ ...s, roles: "all" });
    const steps = [anyRole(flagStep("one", ["a", "b"], { failOn: "b", failHost: "nas" }))];
    const report = await provision({ inventory: lab, hosts: lab.hosts, steps, connect, onEvent: (e) => events.push(e) });
    const order = events.filter((e) => e.type === "host-start" || e.type === "host-end").map((e) => `${e.type}:${e.host}`);
    expect(order.slice(0, 2)).toEqual(["host-start:nas", "host-end:nas"]);
    expect(order.slice(2, 4).sort()).toEqual(["host-start:g1", "host-start:g2"]);
    expect(report.hosts.map((h) => [h.host, h.steps[0]!.status])).toEqual([["g1", "changed"], ["nas", "failed"], ["g2", "changed"]]);
  });

  it("fails a step whose apply does not converge", async () => {
    states.clear();
    const stubborn: Step = { ...flagStep("s", ["a"]), apply: async () => undefined };
    const report = await provision({ inventory, hosts: [inventory.hosts[0]!], steps: [stubborn], connect });
    expect(report.hosts[0]!.steps[0]).toMatchObject({ status: "failed", reason: expect.stringContaining("still not in the desired state after applying: set a (unset)") });
  });

  it("rejects unknown step ids in --only and --skip, naming the known ones", async () => {
    await expect(provision({ inventory, hosts: inventory.hosts, steps: [flagStep("one", [])], only: ["nope"], connect })).rejects.toThrow("--only: unknown step 'nope'; steps: one");
  });

  it("describes every kind of change in one line", () => {
    const c: Change = { kind: "ufw-add", rule: "allow 22/tcp", reason: "SSH, before enabling" };
    expect(describeChange(c)).toBe("ufw allow 22/tcp (SSH, before enabling)");
  });
});
