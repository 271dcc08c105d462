// The path a lab's admin takes, end to end on bare test hosts: a NAS-role host (nested Docker), two
// GPU-role hosts, one of them reached only through a jump host (its SSH port closed to all else),
// the other with a sudo that asks for a password. One `labrig provision --host all --ask-sudo-pass`
// brings the lab up in order: the dispatcher container healthy on the NAS and its tokens read back
// here, then both agents joined through it with nothing copied by hand. A job submitted with the
// CLI runs on a GPU host and its log arrives; the NAS's backup timer is active; a second run changes
// nothing. The bring-up timeline is printed for the report.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Device, Job } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";
import { formatSummary } from "../../provision/command.js";
import { savedDispatcherDir } from "../../provision/saved-dispatcher.js";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
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

beforeAll(async () => {
  lab = await startTestLab();
  ({ nas, gpuA, gpuB, jump, home, sudoPassword, args, env } = lab);
}, 900_000);

afterAll(async () => {
  await lab?.stop();
});

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
    const joinToken = readFileSync(join(saved, "join-token"), "utf8").trim();
    for (const gpu of [gpuA, gpuB]) {
      expect(await gpu.sh("grep -E '^LABRIG_(URL|JOIN_TOKEN)=' /etc/labrig/agent.env")).toBe(`LABRIG_URL=${info.url}\nLABRIG_JOIN_TOKEN=${joinToken}`);
    }
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
  });

  it("runs a job submitted with the CLI on a GPU host, and its log arrives", async () => {
    const saved = savedDispatcherDir("e2e", { LABRIG_HOME: home });
    const target = { LABRIG_URL: `http://${nas.ip}:8000`, LABRIG_TOKEN: readFileSync(join(saved, "admin-token"), "utf8").trim() };
    const submitted = await labrigCli(["submit", "--gpus", "0", "--name", "first-job", "--json", "--", "sh", "-c", "echo hello from $(hostname)"], target);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const id = (JSON.parse(submitted.stdout) as Job).id;
    const admin = new DispatcherClient({ url: target.LABRIG_URL, token: target.LABRIG_TOKEN });
    const job = await waitFor("the first job to succeed", () => admin.job(id), (j) => j.state === "succeeded" || j.state === "failed", 120_000, 500);
    expect(job.state).toBe("succeeded");
    expect(["gpu-a", "gpu-b"]).toContain(job.hostId);
    const logs = await waitFor("its log", () => labrigCli(["logs", id], target), (r) => String(r.stdout).includes("hello from"), 30_000, 500);
    expect(String(logs.stdout).trim()).toBe(`hello from ${job.hostId}`);
  });

  it("has the NAS's backup timer active with an initialised repository", async () => {
    expect(await nas.sh("systemctl is-active labrig-backup.timer")).toBe("active");
    expect(await nas.sh("set -a; . /etc/labrig/backup.env; restic cat config | jq -r .version")).toMatch(/^\d+$/);
  });

  it("backs the NAS's dispatcher up from inside its container, and a restore of that passes integrity_check", async () => {
    await nas.sh("install -m 0440 -o 10001 -g 10001 /dev/stdin /srv/labrig/config/restic-password <<'PW'\nin-container restic password\nPW");
    const repo = ["--repo", "/var/lib/labrig-backup/restic", "--password-file", "/etc/labrig/restic-password"];
    const backup = await nas.exec(`docker exec labrig-dispatcher labrig backup --state /var/lib/labrig ${repo.join(" ")}`);
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/database: 1 jobs, .*, integrity ok/);
    const restore = await nas.exec(`docker exec labrig-dispatcher labrig restore --verify ${repo.join(" ")}`);
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect(restore.stdout).toContain("database integrity ok, 1 jobs");
  });

  it("changes nothing on a second run", async () => {
    const started = Date.now();
    const second = await provisionCli(args, env, { input: `${sudoPassword}\n`, timeoutMs: 600_000 });
    const secondWallS = (Date.now() - started) / 1000;
    expect(second.exitCode, JSON.stringify(second.report, null, 1)).toBe(0);
    for (const h of second.report.hosts) {
      for (const s of h.steps) expect(`${h.host} ${s.id} ${s.status}`, JSON.stringify(s)).not.toMatch(/ changed$/);
    }
    // The bring-up timeline, for the report.
    const line = (run: CliRun, host: string) => run.report.hosts.find((h) => h.host === host)!.steps.map((s) => `${s.id} ${(s.durationMs / 1000).toFixed(1)}s`).join(", ");
    console.log(`${formatSummary(first.report, [])}${first.report.next?.map((n) => `  ${n}`).join("\n")}\n`);
    console.log(
      [`bring-up: first run ${firstWallS.toFixed(0)} s, second run ${secondWallS.toFixed(0)} s`, ...["nas", "gpu-a", "gpu-b"].map((h) => `  ${h}: ${line(first, h)}`)].join("\n"),
    );
  });
});
