// Benchmark provision-noop-8-vs-4-hosts: a converged re-run of labrig's provisioning on 8 test
// hosts divided by the same on 4 of them, both measured in one run: what a bigger lab costs when
// nothing needs doing. Hosts are handled in parallel, so the goal is <= 1.5x; a loop that waits for
// one host before the next, a lock every host queues on, or a handshake per step would show as 2x.
//
// The hosts are light: no role (so no Docker, no nested dockerd, no agent), the firewall off, and
// the packages the base step checks for marked installed by a placeholder package built here, so
// no host reaches a Debian mirror. What is timed per host: the SSH connection (key auth, host key
// checked against known_hosts), the OS check, the package query, the clock-sync query, and each
// other step's role check. Timed in this process around provision() (what `labrig provision` runs
// after parsing its flags), so Node's start-up, the same for 4 and 8 hosts, does not dilute the
// ratio; the whole command's time for 8 hosts is in the note.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { loadInventory, selectHosts } from "../provision/inventory.js";
import { provision, type ProvisionReport } from "../provision/runner.js";
import { SshRemote, sshTarget } from "../provision/ssh-remote.js";
import { allSteps } from "../provision/steps/index.js";
import { basePackages } from "../provision/steps/base.js";
import { nodeWithTsx, repoRoot } from "../tests/helpers/dispatcher-process.js";
import { createSshKey, createTestNetwork, docker, requireDocker, startTestHost, type TestHost } from "../tests/infra/index.js";
import { median, round, type Benchmark } from "./types.js";

const small = 4;
const large = 8;

const placeholders = new Set<string>();

/** An empty Debian package that says it is `name`, so dpkg-query reports it installed; built once. */
function placeholderDeb(dir: string, name: string): string {
  const deb = join(dir, `${name}.deb`);
  if (placeholders.has(deb)) return deb;
  const root = join(dir, `deb-${name}`);
  mkdirSync(join(root, "DEBIAN"), { recursive: true });
  writeFileSync(join(root, "DEBIAN", "control"), `Package: ${name}\nVersion: 99:0+bench\nArchitecture: all\nMaintainer: labrig bench <bench@localhost>\nDescription: placeholder for the provision-noop-8-vs-4-hosts benchmark\n`);
  execFileSync("dpkg-deb", ["--build", "--root-owner-group", root, deb], { stdio: ["ignore", "ignore", "pipe"] });
  placeholders.add(deb);
  return deb;
}

/** Marks the base step's packages installed where the image lacks them. */
async function seedBasePackages(host: TestHost, dir: string): Promise<void> {
  const missing = (await host.sh(`for p in ${basePackages.join(" ")}; do dpkg-query -W -f='\${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"; done; true`)).split("\n").filter(Boolean);
  for (const name of missing) {
    await docker(["cp", placeholderDeb(dir, name), `${host.container}:/tmp/${name}.deb`]);
    await host.sh(`dpkg -i /tmp/${name}.deb >/dev/null && rm /tmp/${name}.deb`);
  }
}

function writeInventory(file: string, hosts: TestHost[], identityFile: string): void {
  writeFileSync(
    file,
    `defaults:\n  identityFile: ${identityFile}\n  firewall: {enabled: false}\n` + `hosts:\n${hosts.map((h) => `  ${h.name}: {address: ${h.ip}, roles: []}`).join("\n")}\n`,
  );
}

/**
 * provision() over every host of the inventory, as `labrig provision --host all` runs it; fails on
 * any change or failure. Also this process's CPU time: when it stays small while the wall time
 * grows with the hosts, the time goes to the hosts (sshd's logins, the commands), not to labrig.
 */
async function provisionAll(inventoryFile: string, knownHostsFile: string): Promise<{ ms: number; cpuMs: number }> {
  const inventory = loadInventory(inventoryFile);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const report = await provision({
    inventory,
    hosts: selectHosts(inventory, "all"),
    steps: allSteps,
    connect: (host) => new SshRemote(sshTarget(host), { knownHostsFile }),
  });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  assertConverged(report);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function assertConverged(report: ProvisionReport): void {
  const steps = report.hosts.flatMap((h) => h.steps.map((s) => ({ host: h.host, ...s })));
  const wrong = steps.filter((s) => s.status === "failed" || s.status === "changed");
  if (wrong.length) throw new Error(`the hosts are not converged: ${wrong.map((s) => `${s.host} ${s.id} ${s.status}: ${s.reason ?? s.changes.map((c) => c.line).join("; ")}`).join(" | ")}`);
  if (!steps.some((s) => s.id === "base" && s.status === "ok")) throw new Error("the base step did not run: nothing was measured");
}


export const provisionScale: Benchmark = {
  name: "provision-noop-8-vs-4-hosts",
  description: `converged provisioning of ${large} test hosts / of ${small} of them, same run`,
  async run({ quick, log }) {
    await requireDocker();
    const dir = mkdtempSync(join(tmpdir(), "labrig-bench-scale-"));
    const net = await createTestNetwork("scale");
    const hosts: TestHost[] = [];
    try {
      const key = createSshKey(dir);
      log(`  starting ${large} light test hosts (systemd + sshd, no role, no Docker)`);
      const started = await Promise.allSettled(Array.from({ length: large }, (_, i) => startTestHost({ name: `scale-${i + 1}`, network: net, publicKey: key.publicKey })));
      for (const s of started) if (s.status === "fulfilled") hosts.push(s.value);
      const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) throw failed.reason;
      await Promise.all(hosts.map((h) => seedBasePackages(h, dir)));
      const knownHosts = join(dir, "known_hosts");
      const inventories: Record<number, string> = { [small]: join(dir, `inventory-${small}.yaml`), [large]: join(dir, `inventory-${large}.yaml`) };
      writeInventory(inventories[small]!, hosts.slice(0, small), key.privateKeyFile);
      writeInventory(inventories[large]!, hosts, key.privateKeyFile);

      // Warm-up, not timed: pins every host key and warms sshd and the page cache on the hosts.
      await provisionAll(inventories[large]!, knownHosts);
      const rounds = quick ? 3 : 7;
      const times: Record<number, number[]> = { [small]: [], [large]: [] };
      const cpu: Record<number, number[]> = { [small]: [], [large]: [] };
      for (let i = 0; i < rounds; i++) {
        // Alternated, so a neighbour's load falls on both sizes alike.
        for (const n of i % 2 ? [large, small] : [small, large]) {
          const r = await provisionAll(inventories[n]!, knownHosts);
          times[n]!.push(r.ms);
          cpu[n]!.push(r.cpuMs);
        }
        log(`  round ${i + 1}: ${small} hosts ${Math.round(times[small]!.at(-1)!)} ms, ${large} hosts ${Math.round(times[large]!.at(-1)!)} ms`);
      }
      const m4 = median(times[small]!);
      const m8 = median(times[large]!);

      // The whole command once for 8 hosts, as a user runs it (start-up included).
      const t0 = performance.now();
      const cli = await execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", "provision", "--host", "all", "--inventory", inventories[large]!, "--known-hosts", knownHosts, "--json"], { cwd: repoRoot, reject: false });
      const cliMs = performance.now() - t0;
      if (cli.exitCode !== 0) throw new Error(`labrig provision exited ${cli.exitCode}: ${cli.stderr.slice(-2000)}`);
      assertConverged(JSON.parse(cli.stdout) as ProvisionReport);

      const ratio = m8 / m4;
      return [
        {
          name: "provision-noop-8-vs-4-hosts",
          value: round(ratio, 3),
          unit: "x",
          reference: { name: `converged provisioning of ${small} hosts`, value: round(m4 / 1000, 3), unit: "s" },
          goal: "<= 1.5",
          met: ratio <= 1.5,
          note:
            `${large} hosts: ${round(m8 / 1000, 3)} s, ${small} hosts: ${round(m4 / 1000, 3)} s, medians of ${rounds}, provision() in this process ` +
            `(its CPU: ${Math.round(median(cpu[large]!))} ms for ${large} hosts, ${Math.round(median(cpu[small]!))} ms for ${small}); ` +
            `the whole labrig provision --host all command for ${large} hosts: ${round(cliMs / 1000)} s; hosts without a role, firewall off (steps: base checked, the others skipped by role)`,
        },
      ];
    } finally {
      await Promise.all(hosts.map((h) => h.stop()));
      await net.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
