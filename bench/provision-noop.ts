// Benchmark provision-noop-vs-ansible-ratio: how long `labrig provision --host all` takes on 4
// converged test hosts, divided by Debian's ansible running the equivalent check-everything
// playbook (bench/ansible/playbook.yml: same packages, files, users, units, firewall rules) on the
// same hosts in the same run. Both are timed as a user runs them: the whole command, start to exit.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { nodeWithTsx, repoRoot, startDispatcher } from "../tests/helpers/dispatcher-process.js";
import { createSshKey, createTestNetwork, requireDocker, startTestHost, type TestHost } from "../tests/infra/index.js";
import { agentBundle } from "../tests/provision/helpers.js";
import type { ProvisionReport } from "../provision/runner.js";
import { BenchUnavailableError, median, round, type Benchmark } from "./types.js";

const hostCount = 4;
/** What labrig writes and the playbook copies back, read from a provisioned host. */
const managedFiles: Record<string, string> = {
  "daemon.json": "/etc/docker/daemon.json",
  "labrig-agent.mjs": "/opt/labrig/agent/labrig-agent.mjs",
  "agent.env": "/etc/labrig/agent.env",
  "labrig-agent.service": "/etc/systemd/system/labrig-agent.service",
  "restic-password": "/etc/labrig/restic-password",
  "backup.env": "/etc/labrig/backup.env",
  "labrig-backup.service": "/etc/systemd/system/labrig-backup.service",
  "labrig-backup.timer": "/etc/systemd/system/labrig-backup.timer",
};

export const provisionNoopVsAnsible: Benchmark = {
  name: "provision-noop-vs-ansible-ratio",
  description: `converged re-run of labrig provision on ${hostCount} test hosts / ansible-playbook of the same checks`,
  async run({ quick, log }) {
    await requireDocker();
    const ansibleVersion = await execa("ansible-playbook", ["--version"], { reject: false });
    if (ansibleVersion.exitCode !== 0) throw new BenchUnavailableError("ansible-playbook is not installed (Debian's ansible package; the reference this benchmark compares against)");
    const dir = mkdtempSync(join(tmpdir(), "labrig-bench-prov-"));
    const net = await createTestNetwork("bench");
    const dispatcher = await startDispatcher({ args: ["--bind", "0.0.0.0"] });
    const hosts: TestHost[] = [];
    try {
      const key = createSshKey(dir);
      const bundle = await agentBundle();
      hosts.push(...(await Promise.all(Array.from({ length: hostCount }, (_, i) => startTestHost({ name: `bench-${i + 1}`, network: net, publicKey: key.publicKey })))));
      writeFileSync(join(dir, "restic-pass"), "bench\n");
      const inventory = join(dir, "inventory.yaml");
      writeFileSync(
        inventory,
        `lab:\n  dispatcher: {url: "http://${net.gateway}:${dispatcher.port}", joinTokenFile: ${join(dispatcher.stateDir, "join-token")}}\n` +
          `defaults:\n  identityFile: ${key.privateKeyFile}\n  firewall: {allowFrom: [${net.subnet}]}\n` +
          `  backup: {repository: /var/backups/labrig-restic, passwordFile: ${join(dir, "restic-pass")}}\n` +
          `hosts:\n${hosts.map((h) => `  ${h.name}: {address: ${h.ip}, roles: [gpu]}`).join("\n")}\n`,
      );
      const labrig = async () => {
        const t0 = performance.now();
        const res = await execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", "provision", "--host", "all", "--inventory", inventory, "--known-hosts", join(dir, "known_hosts"), "--agent-bundle", bundle, "--json"], { cwd: repoRoot, reject: false });
        const ms = performance.now() - t0;
        const report = JSON.parse(res.stdout) as ProvisionReport;
        const steps = report.hosts.flatMap((h) => h.steps.map((s) => ({ host: h.host, ...s })));
        const failed = steps.filter((s) => s.status === "failed");
        if (failed.length) throw new Error(`labrig provision failed: ${failed.map((s) => `${s.host} ${s.id}: ${s.reason}`).join("; ")}`);
        const changedSteps = steps.filter((s) => s.status === "changed");
        return { ms, changed: changedSteps.length, what: [...new Set(changedSteps.flatMap((s) => s.changes.map((c) => `${s.id}: ${c.line}`)))] };
      };

      log(`  provisioning ${hostCount} bare hosts (not timed)`);
      await labrig();

      const filesDir = join(dir, "files");
      for (const h of hosts) {
        mkdirSync(join(filesDir, h.name), { recursive: true });
        for (const [name, path] of Object.entries(managedFiles)) {
          const res = await execa("docker", ["exec", h.container, "cat", path], { encoding: "buffer", stripFinalNewline: false });
          writeFileSync(join(filesDir, h.name, name), res.stdout);
        }
      }
      const ansibleInventory = join(dir, "ansible-hosts.ini");
      writeFileSync(
        ansibleInventory,
        `[lab]\n${hosts.map((h) => `${h.name} ansible_host=${h.ip}`).join("\n")}\n\n[lab:vars]\nansible_user=deploy\nansible_ssh_private_key_file=${key.privateKeyFile}\nansible_python_interpreter=/usr/bin/python3\n`,
      );
      const ansible = async () => {
        const t0 = performance.now();
        const res = await execa(
          "ansible-playbook",
          ["-i", ansibleInventory, "-e", `files_dir=${filesDir}`, "-e", `allow_from=${net.subnet}`, join(repoRoot, "bench/ansible/playbook.yml")],
          {
            reject: false,
            env: {
              ANSIBLE_HOST_KEY_CHECKING: "False",
              ANSIBLE_PIPELINING: "True",
              ANSIBLE_FORKS: String(hostCount),
              ANSIBLE_LOCAL_TEMP: join(dir, "ansible-tmp"),
              ANSIBLE_SSH_CONTROL_PATH_DIR: join(dir, "ansible-cp"),
              ANSIBLE_NOCOLOR: "1",
            },
          },
        );
        const ms = performance.now() - t0;
        if (res.exitCode !== 0) throw new Error(`ansible-playbook failed (exit ${res.exitCode}):\n${res.stdout.slice(-3000)}\n${res.stderr.slice(-2000)}`);
        const changed = [...res.stdout.matchAll(/changed=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
        // Which tasks reported a change: "TASK [name] ***" followed by "changed: [host]" lines.
        const what = new Set<string>();
        let task = "";
        for (const line of res.stdout.split("\n")) {
          task = line.match(/^TASK \[(.*)\]/)?.[1] ?? task;
          if (line.startsWith("changed:")) what.add(task);
        }
        return { ms, changed, what: [...what] };
      };
      log("  ansible-playbook against the provisioned hosts (warm-up, not timed)");
      const warm = await ansible();
      if (warm.changed) log(`  ansible's warm-up changed ${warm.changed} things: ${warm.what.join(", ")}`);

      const rounds = quick ? 1 : 3;
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const a = await labrig();
        if (a.changed) throw new Error(`labrig's re-run changed ${a.changed} steps: ${a.what.join("; ")}`);
        const b = await ansible();
        if (b.changed) throw new Error(`ansible's re-run changed ${b.changed} things (${b.what.join(", ")}): the playbook and labrig disagree`);
        ours.push(a.ms);
        theirs.push(b.ms);
        log(`  round ${i + 1}: labrig ${round(a.ms / 1000)} s, ansible ${round(b.ms / 1000)} s`);
      }
      const ratio = median(ours) / median(theirs);
      return [
        {
          name: "provision-noop-vs-ansible-ratio",
          value: round(ratio, 3),
          unit: "x",
          reference: { name: `ansible-playbook (${hostCount} hosts, converged)`, value: round(median(theirs) / 1000), unit: "s" },
          goal: "<= 0.5",
          met: ratio <= 0.5,
          note: `labrig provision --host all (${hostCount} hosts, converged): ${round(median(ours) / 1000)} s, median of ${rounds}; both as whole commands`,
        },
      ];
    } finally {
      await Promise.all(hosts.map((h) => h.stop()));
      await dispatcher.stop();
      dispatcher.cleanup();
      await net.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
