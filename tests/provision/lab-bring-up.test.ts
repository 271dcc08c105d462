// The path a lab's admin takes, end to end on bare test hosts: a NAS-role host (nested Docker), two
// GPU-role hosts, one of them reached only through a jump host (its SSH port closed to all else),
// the other with a sudo that asks for a password. One `labrig provision --host all --ask-sudo-pass`
// brings the lab up in order: the dispatcher container healthy on the NAS and its tokens read back
// here, then both agents joined through it with nothing copied by hand, each with a single-use
// join token made for it. A job submitted with the CLI runs on a GPU host and its log arrives; the
// NAS's backup timer is active, and its service (what the timer runs) backs the dispatcher up from
// inside its container, into a snapshot that restores to a sound database holding that job; a
// second run changes nothing. The bring-up timeline is printed for the report.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Device, Job, JoinToken } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";
import { formatSummary } from "../../provision/command.js";
import { savedDispatcherDir } from "../../provision/saved-dispatcher.js";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { inventorySources, pollSources } from "../../tui/containers.js";
import type { TestHost } from "../infra/index.js";
import { type CliRun, provisionCli, statuses } from "./helpers.js";
import { startTestLab, type TestLab } from "./lab-fixture.js";

let lab: TestLab;
let nas: TestHost;
let gpuA: TestHost;
let gpuB: TestHost;
let jump: TestHost;
let home: string;
let sudoPassword: string;
let args: string[];
let env: Record<string, string>;
let first: CliRun;
let firstWallS: number;
let firstJobId: string;

beforeAll(async () => {
  lab = await startTestLab();
  ({ nas, gpuA, gpuB, jump, home, sudoPassword, args, env } = lab);
}, 900_000);

afterAll(async () => {
  await lab?.stop();
});

/** The join tokens `labrig provision` made at the NAS's dispatcher, by host. */
async function joinTokensMade(): Promise<JoinToken[]> {
  const admin = new DispatcherClient({ url: `http://${nas.ip}:8000`, token: readFileSync(join(savedDispatcherDir("e2e", { LABRIG_HOME: home }), "admin-token"), "utf8").trim() });
  const { joinTokens } = (await admin.request<{ joinTokens: JoinToken[] }>("GET", "/api/join-tokens")).body;
  return joinTokens.filter((t) => t.note?.startsWith("labrig provision: ")).sort((a, b) => a.note!.localeCompare(b.note!));
}

function labrigCli(cliArgs: string[], extraEnv: Record<string, string>) {
  return execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", ...cliArgs], { cwd: repoRoot, reject: false, env: { ...env, ...extraEnv } });
}

describe("bringing a lab up from bare hosts with one command", { timeout: 1_200_000 }, () => {
  it("provisions the dispatcher host first, then both GPU hosts against it, with nothing copied by hand", async () => {
    const started = Date.now();
    first = await provisionCli(args, env, { input: `${sudoPassword}\n`, timeoutMs: 1_200_000 });
    firstWallS = (Date.now() - started) / 1000;
    expect(first.exitCode, JSON.stringify(first.report, null, 1)).toBe(0);
    expect(statuses(first, "nas")).toMatchObject({ docker: "changed", "dispatcher-container": "changed", "dispatcher-firewall": "changed", "backup-timer": "changed", agent: "skipped" });
    for (const gpu of ["gpu-a", "gpu-b"]) expect(statuses(first, gpu)).toMatchObject({ docker: "changed", agent: "changed", firewall: "changed", "dispatcher-container": "skipped" });

    // In order: both GPU hosts' agent steps ran after the NAS's dispatcher container was up.
    const saved = savedDispatcherDir("e2e", { LABRIG_HOME: home });
    const info = JSON.parse(readFileSync(join(saved, "dispatcher.json"), "utf8")) as { url: string };
    expect(info.url).toBe(`http://${nas.ip}:8000`);
    const sharedJoinToken = readFileSync(join(saved, "join-token"), "utf8").trim();
    const hostTokens = new Set<string>();
    for (const gpu of [gpuA, gpuB]) {
      expect(await gpu.sh("grep -E '^LABRIG_URL=' /etc/labrig/agent.env")).toBe(`LABRIG_URL=${info.url}`);
      // Each joined with a single-use join token made for it with the admin token read back, not the shared one.
      const token = await gpu.sh("sed -n 's/^LABRIG_JOIN_TOKEN=//p' /etc/labrig/agent.env");
      expect(token).toMatch(/^lrj_/);
      expect(token).not.toBe(sharedJoinToken);
      hostTokens.add(token);
    }
    expect(hostTokens.size).toBe(2);
    expect((await joinTokensMade()).map((t) => t.note).sort()).toEqual(["labrig provision: gpu-a", "labrig provision: gpu-b"]);
    expect(first.report.next?.some((n) => n.startsWith(`watch the lab: LABRIG_URL=${info.url} LABRIG_TOKEN=$(cat ${join(saved, "admin-token")})`))).toBe(true);
    // gpu-b was reached through the jump host only, and every hop's key is pinned.
    expect(readFileSync(lab.knownHostsFile, "utf8").split("\n").map((l) => l.split(" ")[0]).filter(Boolean).sort()).toEqual([gpuA.ip, gpuB.ip, jump.ip, nas.ip].sort());
    expect(first.stdout + first.stderr).not.toContain(sudoPassword);
  });

  it("has the dispatcher container healthy on the NAS and both agents registered and healthy through it", async () => {
    // Its health check is a node process with a 3 s limit: on a loaded machine a probe can miss it, so wait for the verdict.
    await waitFor("the dispatcher container to be healthy", () => nas.sh("docker inspect labrig-dispatcher --format '{{.State.Health.Status}}'"), (s) => s === "healthy", 120_000, 1000);
    const admin = new DispatcherClient({ url: `http://${nas.ip}:8000`, token: readFileSync(join(savedDispatcherDir("e2e", { LABRIG_HOME: home }), "admin-token"), "utf8").trim() });
    const devices = await waitFor("both agents healthy", () => admin.devices(), (ds: Device[]) => ["gpu-a", "gpu-b"].every((h) => ds.find((d) => d.hostId === h)?.status === "healthy"), 120_000, 1000);
    expect(devices.map((d) => d.hostId).sort()).toEqual(["gpu-a", "gpu-b"]);
    // Each registered with its own join token, which is used up now.
    expect((await joinTokensMade()).map((t) => [t.note, t.uses, t.usable])).toEqual([
      ["labrig provision: gpu-a", 1, false],
      ["labrig provision: gpu-b", 1, false],
    ]);
  });

  it("runs a job submitted with the CLI on a GPU host, and its log arrives", async () => {
    const saved = savedDispatcherDir("e2e", { LABRIG_HOME: home });
    const target = { LABRIG_URL: `http://${nas.ip}:8000`, LABRIG_TOKEN: readFileSync(join(saved, "admin-token"), "utf8").trim() };
    const submitted = await labrigCli(["submit", "--gpus", "0", "--name", "first-job", "--json", "--", "sh", "-c", "echo hello from $(hostname)"], target);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const id = (JSON.parse(submitted.stdout) as Job).id;
    firstJobId = id;
    const admin = new DispatcherClient({ url: target.LABRIG_URL, token: target.LABRIG_TOKEN });
    const job = await waitFor("the first job to succeed", () => admin.job(id), (j) => j.state === "succeeded" || j.state === "failed", 120_000, 500);
    expect(job.state).toBe("succeeded");
    expect(["gpu-a", "gpu-b"]).toContain(job.hostId);
    const logs = await waitFor("its log", () => labrigCli(["logs", id], target), (r) => String(r.stdout).includes("hello from"), 30_000, 500);
    expect(String(logs.stdout).trim()).toBe(`hello from ${job.hostId}`);
  });

  it("shows every host's containers in the dashboard over provisioning's own SSH path, the GPU host behind the jump host included", async () => {
    const inventory = args[args.indexOf("--inventory") + 1]!;
    const hosts = await pollSources(await inventorySources(inventory, lab.knownHostsFile));
    expect(hosts.map((h) => [h.host, h.error])).toEqual([
      ["nas", null],
      ["gpu-a", null],
      ["gpu-b", null],
    ]);
    expect(hosts.find((h) => h.host === "nas")!.rows).toContainEqual(expect.objectContaining({ name: "labrig-dispatcher", role: "dispatcher", state: "running" }));
    expect(hosts.find((h) => h.host === "gpu-b")!.via).toBe(`ssh deploy@${gpuB.ip}:22 via ${jump.ip}`);
  });

  /** A command inside the dispatcher container with the repository settings the backup service passes it. */
  const inDispatcher = (command: string) => `docker exec --env-file /etc/labrig/backup.env labrig-dispatcher ${command}`;

  it("has the NAS's backup timer active, its repository made inside the container, and the password only where the container reads it", async () => {
    expect(await nas.sh("systemctl is-active labrig-backup.timer")).toBe("active");
    expect(await nas.sh(`${inDispatcher("restic cat config")} | jq -r .version`)).toMatch(/^\d+$/);
    // The repository belongs to the container's user; the password is in its config folder (its /etc/labrig), nowhere else.
    expect(await nas.sh("stat -c '%a %u:%g' /srv/labrig/backup/restic/config /srv/labrig/config/restic-password /etc/labrig/backup.env")).toBe("400 10001:10001\n400 10001:10001\n600 0:0");
    const password = readFileSync(join(lab.dir, "restic-pass"), "utf8").trim();
    expect(await nas.sh("cat /srv/labrig/config/restic-password")).toBe(password);
    expect(await nas.sh("cat /etc/labrig/backup.env /etc/systemd/system/labrig-backup.service; systemctl show labrig-backup.service")).not.toContain(password);
    expect(await nas.sh("systemctl show -p ExecStart --value labrig-backup.service")).toContain("docker exec --env-file /etc/labrig/backup.env labrig-dispatcher labrig backup --state /var/lib/labrig");
  });

  it("backs the dispatcher up from inside its container when the timer's service runs, and the latest snapshot restores to a sound database holding the job", async () => {
    const run = await nas.exec("systemctl start labrig-backup.service");
    const journal = await nas.sh("journalctl -u labrig-backup.service --no-pager -o cat");
    expect(run.exitCode, journal).toBe(0);
    expect(journal).toMatch(/backup OK: snapshot \w+ of lab e2e on nas/);
    expect(journal).toMatch(/database: 1 jobs, .*, integrity ok/);
    const snapshots = JSON.parse(await nas.sh(inDispatcher("restic snapshots --json"))) as { hostname: string; tags: string[] }[];
    expect(snapshots.map((s) => [s.hostname, [...s.tags].sort()])).toEqual([["nas", ["lab:e2e", "labrig"]]]);
    // Restored with restic itself and read with SQLite, not with labrig's own restore.
    await nas.sh(inDispatcher("restic restore latest --target /tmp/restored >/dev/null"));
    const read = `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync("/tmp/restored/.labrig-backup/labrig.db", { readOnly: true }); console.log(JSON.stringify({ integrity: db.prepare("PRAGMA integrity_check").get().integrity_check, jobs: db.prepare("SELECT id, name FROM jobs").all() }));`;
    const restored = JSON.parse(await nas.sh(`docker exec labrig-dispatcher node -e '${read}'; docker exec labrig-dispatcher rm -rf /tmp/restored`));
    expect(restored).toEqual({ integrity: "ok", jobs: [{ id: firstJobId, name: "first-job" }] });
    // The restore drill the README gives.
    const verify = await nas.exec(inDispatcher("labrig restore --verify"));
    expect(verify.exitCode, verify.stderr).toBe(0);
    expect(verify.stdout).toContain("database integrity ok, 1 jobs");
  });

  it("fails the backup service with what to run when the dispatcher container is not there", async () => {
    // The NAS's own unit with another container name, so the live dispatcher keeps running.
    await nas.sh("sed 's/labrig-dispatcher/labrig-gone/g' /etc/systemd/system/labrig-backup.service > /etc/systemd/system/labrig-backup-gone.service && systemctl daemon-reload");
    const run = await nas.exec("systemctl start labrig-backup-gone.service");
    const journal = await nas.sh("journalctl -u labrig-backup-gone.service --no-pager -o cat; rm /etc/systemd/system/labrig-backup-gone.service; systemctl daemon-reload");
    expect(run.exitCode).not.toBe(0);
    expect(journal).toContain("labrig-backup: the dispatcher container labrig-gone is not running on nas, and the backup runs inside it. Start it with: docker start labrig-gone (on nas), or bring it back from the control machine with: labrig provision --host nas");
  });

  it("changes nothing on a second run", async () => {
    const started = Date.now();
    const second = await provisionCli(args, env, { input: `${sudoPassword}\n`, timeoutMs: 600_000 });
    const secondWallS = (Date.now() - started) / 1000;
    expect(second.exitCode, JSON.stringify(second.report, null, 1)).toBe(0);
    for (const h of second.report.hosts) {
      for (const s of h.steps) expect(`${h.host} ${s.id} ${s.status}`, JSON.stringify(s)).not.toMatch(/ changed$/);
    }
    expect(await joinTokensMade(), "no join token made for registered hosts").toHaveLength(2);
    // The bring-up timeline, for the report.
    const line = (run: CliRun, host: string) => run.report.hosts.find((h) => h.host === host)!.steps.map((s) => `${s.id} ${(s.durationMs / 1000).toFixed(1)}s`).join(", ");
    console.log(`${formatSummary(first.report, [])}${first.report.next?.map((n) => `  ${n}`).join("\n")}\n`);
    console.log(
      [`bring-up: first run ${firstWallS.toFixed(0)} s, second run ${secondWallS.toFixed(0)} s`, ...["nas", "gpu-a", "gpu-b"].map((h) => `  ${h}: ${line(first, h)}`)].join("\n"),
    );
  });
});
