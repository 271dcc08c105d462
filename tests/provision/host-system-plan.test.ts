// Plan tests (no host, no I/O) for what the host's system decides: which systems are provisioned
// for which roles and why others are refused, the steps DSM owns skipped on a Synology, the
// DOCKER-USER filter kept by a boot script DSM runs, and the nightly backup on the dispatcher
// container's own schedule there.
import { describe, expect, it } from "vitest";
import { nextBackupAt, parseBackupSchedule } from "../../core/backup-schedule.js";
import { describeChange } from "../../provision/change.js";
import type { FileState } from "../../provision/facts/files.js";
import { type HostSystem, hostSupport, parseHostSystem } from "../../provision/facts/host-system.js";
import { parseInventory } from "../../provision/inventory.js";
import { desiredSha256, sha256 } from "../../provision/ops.js";
import { anyFailed, provision, stepDecision } from "../../provision/runner.js";
import type { Step } from "../../provision/step.js";
import { backupFiles, backupKind, type BackupFacts, planBackupTimer } from "../../provision/steps/backup-timer.js";
import { containerBackupEnv, desiredContainer, dispatcherSettings } from "../../provision/steps/dispatcher-container-settings.js";
import { dispatcherFilter } from "../../provision/steps/dispatcher-firewall.js";
import { desiredChainRules, dsmBootScriptOf, planDsmDockerUserFilter, renderDsmBootScript } from "../../provision/steps/docker-user.js";
import { labSteps } from "../../provision/steps/index.js";
import { backupScheduleFromEnv, parseEnvFile, runScheduledBackup, scheduledBackupArgs } from "../../dispatcher/scheduled-backup.js";
import { systemRemote } from "./system-remote.js";

const dsmVersion = 'majorversion="7"\nminorversion="2"\nproductversion="7.2.1"\nbuildphase="GM"\nbuildnumber="69057"\n';
const debian12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n';
const dsm: HostSystem = { kind: "dsm", version: "7.2.1", major: 7, name: "Synology DSM 7.2.1-69057" };
const debian: HostSystem = parseHostSystem(`--labrig-facts--\n--labrig-facts--\n${debian12}`);
const supportedList = "labrig provisions Debian 11/12/13, Ubuntu 22.04/24.04 (every role); Synology DSM 7 (role dispatcher only)";

describe("the host's system", () => {
  it("reads DSM from /etc.defaults/VERSION before /etc/os-release, and a plain host from os-release", () => {
    expect(parseHostSystem(`${dsmVersion}--labrig-facts--\nsynology\n--labrig-facts--\n${debian12}`)).toEqual(dsm);
    expect(parseHostSystem(`--labrig-facts--\nsynology\n--labrig-facts--\n`)).toEqual({ kind: "dsm", version: "", name: "Synology DSM (no /etc.defaults/VERSION)" });
    expect(debian).toMatchObject({ kind: "linux", name: "Debian GNU/Linux 12 (bookworm)", os: { id: "debian", versionId: "12" } });
    expect(parseHostSystem("--labrig-facts--\n--labrig-facts--\n")).toEqual({ kind: "linux", name: "unknown (no /etc/os-release)" });
  });

  it("provisions DSM 7 as a dispatcher host only, and refuses other roles and releases with the reason and the supported list", () => {
    expect(hostSupport(dsm, ["dispatcher"])).toEqual({ supported: true, name: "Synology DSM 7.2.1-69057" });
    expect(hostSupport(debian, ["gpu", "dispatcher"]).supported).toBe(true);
    expect(hostSupport(dsm, ["dispatcher", "gpu"])).toEqual({
      supported: false,
      name: dsm.name,
      reason: `on DSM labrig runs only the dispatcher container (role dispatcher); this host's roles include gpu, which need Debian or Ubuntu; ${supportedList}`,
    });
    expect(hostSupport({ kind: "dsm", version: "6.2.4", major: 6, name: "Synology DSM 6.2.4" }, ["dispatcher"])).toMatchObject({
      supported: false,
      reason: `DSM 6.2.4 is not a release labrig supports; ${supportedList}`,
    });
    expect(hostSupport(parseHostSystem("--labrig-facts--\nsynology\n--labrig-facts--\n"), ["dispatcher"])).toMatchObject({ supported: false, reason: expect.stringContaining("/etc.defaults/VERSION does not say which release") });
    const ubuntu20 = parseHostSystem('--labrig-facts--\n--labrig-facts--\nID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n');
    expect(hostSupport(ubuntu20, ["gpu"])).toEqual({ supported: false, name: "Ubuntu 20.04.6 LTS", reason: `ubuntu 20.04 is not a release labrig was tested on; ${supportedList}` });
  });

  it("skips on DSM exactly the steps DSM owns (apt, Docker, ufw), each with its reason, and runs the dispatcher's", () => {
    const inventory = parseInventory("hosts:\n  nas: {address: a, roles: [dispatcher]}\n", "i.yaml", {});
    const nas = inventory.hosts[0]!;
    const decisions = Object.fromEntries(labSteps(inventory).map((s) => [s.id, stepDecision(s, nas, dsm)]));
    expect(decisions).toEqual({
      base: { run: false, reason: "on DSM: DSM has no apt; its packages come from Package Center" },
      docker: { run: false, reason: "on DSM: Docker comes from Container Manager (Package Center); labrig uses its /usr/local/bin/docker through sudo" },
      "nvidia-toolkit": { run: false, reason: "not for roles dispatcher" },
      agent: { run: false, reason: "not for roles dispatcher" },
      firewall: { run: false, reason: expect.stringMatching(/^on DSM: DSM has no ufw; .*Control Panel > Security > Firewall/) },
      "gpu-firewall": { run: false, reason: "not for roles dispatcher" },
      "dispatcher-container": { run: true },
      "dispatcher-firewall": { run: true },
      "backup-timer": { run: true },
    });
    expect(labSteps(inventory).filter((s) => stepDecision(s, nas, debian).run).map((s) => s.id)).toEqual(["base", "docker", "firewall", "dispatcher-container", "dispatcher-firewall", "backup-timer"]);
  });
});

describe("the runner and the host's system", () => {
  const inventory = parseInventory("hosts:\n  old: {address: a, roles: [gpu]}\n  nas: {address: b, roles: [dispatcher]}\n  gpu: {address: c, roles: [gpu]}\n", "i.yaml", {});
  const remotes = {
    old: systemRemote('ID=centos\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n', {}, "old"),
    nas: systemRemote("", { dsmVersion }, "nas"),
    gpu: systemRemote(debian12, {}, "gpu"),
  };
  const ran: string[] = [];
  const recording = (id: string, roles: Step["roles"], ownedByDsm?: string): Step => ({
    id,
    description: id,
    roles,
    ...(ownedByDsm ? { ownedByDsm } : {}),
    async check(ctx) {
      ran.push(`${ctx.host.name}:${id}:${ctx.system?.kind}`);
      return { facts: {}, changes: [] };
    },
    apply: async () => undefined,
  });
  const steps = [recording("packages", "all", "DSM has no apt"), recording("container", ["dispatcher"]), recording("agent", ["gpu"])];

  it("refuses an unsupported host before any step checks anything, names the reason and the list, and lets the others go on", async () => {
    const report = await provision({ inventory, hosts: inventory.hosts, steps, connect: (h) => remotes[h.name as keyof typeof remotes] });
    const old = report.hosts.find((h) => h.host === "old")!;
    expect(old.system).toBe("CentOS Linux 7 (Core)");
    expect(old.steps.map((s) => [s.id, s.status, s.reason])).toEqual([
      ["packages", "failed", `refused before any change: CentOS Linux 7 (Core) is not Debian or Ubuntu (labrig's steps use apt, systemd and Debian's package names); ${supportedList}`],
      ["container", "skipped", "not run: step packages failed"],
      ["agent", "skipped", "not run: step packages failed"],
    ]);
    expect(ran.filter((r) => r.startsWith("old:"))).toEqual([]);
    expect(remotes.old.commands.length, "only the system was read").toBe(1);
    expect(anyFailed(report)).toBe(true);
    expect(report.hosts.find((h) => h.host === "gpu")!.steps.map((s) => s.status)).toEqual(["ok", "skipped", "ok"]);
  });

  it("on DSM, skips the steps DSM owns and hands the system to the steps that run", async () => {
    ran.length = 0;
    const report = await provision({ inventory, hosts: [inventory.hosts[1]!], steps, connect: () => remotes.nas });
    expect(report.hosts[0]!.system).toBe("Synology DSM 7.2.1-69057");
    expect(report.hosts[0]!.steps.map((s) => [s.id, s.status, s.reason])).toEqual([
      ["packages", "skipped", "on DSM: DSM has no apt"],
      ["container", "ok", undefined],
      ["agent", "skipped", "not for roles dispatcher"],
    ]);
    expect(ran).toEqual(["nas:container:dsm"]);
    expect(anyFailed(report)).toBe(false);
  });
});

describe("the dispatcher's port filter on DSM", () => {
  const inv = parseInventory("hosts:\n  nas: {address: a, roles: [dispatcher], firewall: {allowFrom: [10.1.0.0/16, 192.168.5.7]}}\n", "i.yaml", {});
  const host = inv.hosts[0]!;
  const f = dispatcherFilter(host);
  const allowFrom = host.firewall.allowFrom;
  const script = renderDsmBootScript(f, allowFrom);
  const asWritten: FileState = { exists: true, mode: "0755", owner: "root", group: "root", sha256: sha256(script) };
  const live = desiredChainRules(f.chain, allowFrom);

  it("writes a boot script in DSM's rc.d that waits for the engine, then applies the rules; applies them now", () => {
    expect(dsmBootScriptOf(f)).toBe("/usr/local/etc/rc.d/labrig-dispatcher-firewall.sh");
    expect(script).toContain("until iptables -C FORWARD -j DOCKER-USER");
    expect(script).toContain("iptables -A LABRIG-DISPATCHER -s 10.1.0.0/16 -j RETURN\n  iptables -A LABRIG-DISPATCHER -s 192.168.5.7/32 -j RETURN\n  iptables -A LABRIG-DISPATCHER -j DROP");
    expect(script).toContain("iptables -I DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8000 --ctdir ORIGINAL -j LABRIG-DISPATCHER");
    const fresh = planDsmDockerUserFilter(f, allowFrom, { iptablesInstalled: true, bootScript: { exists: false }, liveRules: [], hooked: false });
    expect(fresh.changes.map(describeChange)).toEqual([
      "write /usr/local/etc/rc.d/labrig-dispatcher-firewall.sh (0755 root:root) (boot script DSM runs missing)",
      "apply the rules now: sh /usr/local/etc/rc.d/labrig-dispatcher-firewall.sh apply (the live iptables rules differ from allowFrom)",
    ]);
    expect(fresh.changes.some((c) => c.kind === "install-packages" || c.kind === "enable-unit" || c.kind === "daemon-reload"), "no apt, no systemd on DSM").toBe(false);
  });

  it("changes nothing once converged, and only re-applies after the rules were flushed (a reboot)", () => {
    expect(planDsmDockerUserFilter(f, allowFrom, { iptablesInstalled: true, bootScript: asWritten, liveRules: live, hooked: true })).toEqual({ changes: [] });
    const flushed = planDsmDockerUserFilter(f, allowFrom, { iptablesInstalled: true, bootScript: asWritten, liveRules: [], hooked: false });
    expect(flushed.changes.map((c) => c.kind)).toEqual(["run"]);
  });

  it("without iptables, fails and says what to set in DSM's firewall instead", () => {
    const plan = planDsmDockerUserFilter(f, allowFrom, { iptablesInstalled: false, bootScript: undefined, liveRules: [], hooked: false });
    expect(plan.changes).toEqual([]);
    expect(plan.fail).toBe(
      "the host has no iptables, so labrig cannot filter the dispatcher container's port 8000 through DOCKER-USER; set it in DSM, Control Panel > Security > Firewall: edit the profile's rules to allow TCP port 8000 from 10.1.0.0/16, 192.168.5.7 and deny it from everyone else, with \"Deny access\" for traffic no rule matches",
    );
  });
});

describe("the nightly backup on DSM: the dispatcher container's own schedule", () => {
  const inv = parseInventory(
    "hosts:\n  nas: {address: a, roles: [dispatcher], backup: {repository: /volume1/docker/labrig/backup/restic, passwordFile: /p, schedule: '*-*-* 02:30:00'}}\n",
    "i.yaml",
    {},
  );
  const nas = inv.hosts[0]!;
  const dataDir = "/volume1/docker/labrig";

  it("gives the container the schedule and where its settings are, on DSM only; a change to it replaces the container", () => {
    expect(containerBackupEnv(nas, dsm)).toEqual({ LABRIG_BACKUP_SCHEDULE: "*-*-* 02:30:00", LABRIG_BACKUP_ENV_FILE: "/etc/labrig/backup.env", LABRIG_BACKUP_HOST: "nas" });
    expect(containerBackupEnv(nas, debian)).toEqual({});
    const s = dispatcherSettings(nas);
    const plain = desiredContainer(s, dataDir, "img", "sha256:1", "lab");
    const own = desiredContainer(s, dataDir, "img", "sha256:1", "lab", containerBackupEnv(nas, dsm));
    expect(own.spec.Env).toContain("LABRIG_BACKUP_SCHEDULE=*-*-* 02:30:00");
    expect(own.hash).not.toBe(plain.hash);
    const weekly = { ...nas, backup: { ...nas.backup!, schedule: "Sun *-*-* 03:00:00" } };
    expect(() => containerBackupEnv(weekly, dsm)).toThrow(/host 'nas', field 'backup.schedule' \(on DSM the dispatcher container keeps it\): 'Sun \*-\*-\* 03:00:00' is not a schedule the dispatcher container keeps; use '\*-\*-\* HH:MM\[:SS\]'/);
  });

  it("writes the repository settings into the container's config folder, makes the repository, and plans no systemd unit", () => {
    const kind = backupKind(nas, nas.backup!, dataDir, dsm);
    if ("fail" in kind) throw new Error(kind.fail);
    expect(kind).toMatchObject({ kind: "dispatcher-container", timer: "container", envFile: "/volume1/docker/labrig/config/backup.env", repository: "/var/lib/labrig-backup/restic" });
    const files = backupFiles(kind, nas.backup!, "pw");
    expect(files.map((f) => [f.path, f.mode.toString(8), f.owner])).toEqual([
      ["/volume1/docker/labrig/config/restic-password", "400", "10001"],
      ["/volume1/docker/labrig/config/backup.env", "400", "10001"],
    ]);
    expect(parseEnvFile(String(files[1]!.content))).toEqual({ RESTIC_REPOSITORY: "/var/lib/labrig-backup/restic", RESTIC_PASSWORD_FILE: "/etc/labrig/restic-password" });
    const bare: BackupFacts = { files: new Map(), initialised: false, container: "running" };
    expect(planBackupTimer(kind, files, bare).map(describeChange)).toEqual([
      "write /volume1/docker/labrig/config/restic-password (0400 10001:10001) (file missing)",
      "write /volume1/docker/labrig/config/backup.env (0400 10001:10001) (file missing)",
      "restic init inside container labrig-dispatcher (if /var/lib/labrig-backup/restic has no repository; not asked: its settings are new or change)",
    ]);
    const converged: BackupFacts = {
      files: new Map(files.map((f) => [f.path, { exists: true, mode: "0400", owner: "10001", group: "10001", sha256: desiredSha256(f) }])),
      initialised: true,
      container: "running",
    };
    expect(planBackupTimer(kind, files, converged)).toEqual([]);
  });

  it("runs labrig backup with the same retention as the host timer", () => {
    const args = scheduledBackupArgs({ schedule: parseBackupSchedule("daily"), text: "daily", envFile: "/nope/backup.env", state: "/var/lib/labrig", config: "/nope", host: "nas" });
    expect(args).toEqual(["backup", "--state", "/var/lib/labrig", "--host", "nas", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6"]);
  });

  it("skips a due backup, saying why, until provisioning has written the repository settings; no schedule set, none kept", async () => {
    const b = backupScheduleFromEnv({ LABRIG_BACKUP_SCHEDULE: "every 10s", LABRIG_BACKUP_ENV_FILE: "/nonexistent/backup.env", LABRIG_BACKUP_HOST: "nas" }, "/var/lib/labrig")!;
    expect(b).toMatchObject({ schedule: { kind: "every", ms: 10_000 }, host: "nas", config: "/etc/labrig" });
    const lines: string[] = [];
    expect(await runScheduledBackup(b, (l) => lines.push(l))).toBe(1);
    expect(lines).toEqual(["labrig dispatcher: scheduled backup skipped: /nonexistent/backup.env does not exist yet (labrig provision writes it: its backup-timer step)"]);
    expect(backupScheduleFromEnv({}, "/s")).toBeUndefined();
    expect(() => backupScheduleFromEnv({ LABRIG_BACKUP_SCHEDULE: "weekly" }, "/s")).toThrow("LABRIG_BACKUP_SCHEDULE: 'weekly' is not a schedule the dispatcher container keeps");
  });

  it("keeps daily, hourly and interval schedules, and refuses what it cannot keep, naming the field", () => {
    const at = (s: string, now: string) => nextBackupAt(parseBackupSchedule(s), new Date(now)).toString();
    expect(at("*-*-* 03:00:00", "2026-01-10T01:00:00")).toBe(new Date("2026-01-10T03:00:00").toString());
    expect(at("03:00", "2026-01-10T03:00:00")).toBe(new Date("2026-01-11T03:00:00").toString());
    expect(at("daily", "2026-01-10T12:00:00")).toBe(new Date("2026-01-11T00:00:00").toString());
    expect(at("hourly", "2026-01-10T12:20:00")).toBe(new Date("2026-01-10T13:00:00").toString());
    expect(at("every 20s", "2026-01-10T12:00:00")).toBe(new Date("2026-01-10T12:00:20").toString());
    expect(() => parseBackupSchedule("every 1s", "LABRIG_BACKUP_SCHEDULE")).toThrow("LABRIG_BACKUP_SCHEDULE: 'every 1s' is shorter than 5 s");
    expect(() => parseBackupSchedule("25:00")).toThrow("backup.schedule: '25:00' is not a schedule the dispatcher container keeps");
  });
});
