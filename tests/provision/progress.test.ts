// What `labrig provision` shows while it runs and in its summary. Against an unreachable host (a
// closed loopback port) as a real process, both as plain lines (a log, CI) and in a pseudo-terminal
// where listr2 draws; and the plain-line display fed the runner's events for a host that answers.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatSummary } from "../../provision/command.js";
import { provisionProgress } from "../../provision/progress.js";
import type { ProvisionEvent, StepReport } from "../../provision/runner.js";
import { cliEnv, runCli } from "../cli/cli-process.js";
import { repoRoot } from "../helpers/dispatcher-process.js";
import { createSshKey } from "../infra/ssh-key.js";

let dir: string;
let inventory: string;
let closedPort: number;

/** A loopback port nothing listens on: bound once to learn a free one, then closed. */
async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "labrig-progress-"));
  const key = createSshKey(dir);
  closedPort = await closedLoopbackPort();
  inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    [
      "lab:",
      "  name: unreachable",
      "  dispatcher: {host: nas, url: http://127.0.0.1:8000}",
      "defaults:",
      "  user: deploy",
      `  identityFile: ${key.privateKeyFile}`,
      "hosts:",
      `  gpu-x: {address: 127.0.0.1, port: ${closedPort}, roles: [gpu]}`,
      `  nas: {address: 127.0.0.1, port: ${closedPort}, roles: [dispatcher]}`,
      "",
    ].join("\n"),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const provisionArgs = () => ["provision", "--inventory", inventory, "--host", "gpu-x", "--dry-run", "--known-hosts", join(dir, "known_hosts")];
const stepIds = ["docker", "nvidia-toolkit", "agent", "firewall", "gpu-firewall", "dispatcher-container", "dispatcher-firewall", "backup-timer"];

describe("labrig provision --dry-run against an unreachable host", () => {
  it("exits 1 with one ✖ line naming the connection error, no ✔, and no list of steps that never ran", async () => {
    const r = await runCli(provisionArgs(), cliEnv({}));
    expect(r.exitCode).toBe(1);
    const refused = `cannot connect to gpu-x (deploy@127.0.0.1:${closedPort}): connect ECONNREFUSED 127.0.0.1:${closedPort}.`;
    expect(r.stderr).toBe(`✖ gpu-x: base: ${refused} (no step ran)\n`);
    // The report ends with what to run next: the failed host again, once fixed.
    expect(r.stdout).toBe(`gpu-x: failed: base: ${refused} No step ran.\n\nNext:\n  fix what failed above, then run again (what converged stays as it is): labrig provision --host gpu-x --inventory ${inventory}\n`);
    for (const id of stepIds) expect(r.stdout + r.stderr).not.toContain(id);
    expect(r.stdout + r.stderr).not.toContain("✔");
  });

  it("in a terminal, listr2 draws the host failed (✖, not ✔ or ⚠) with the reason, and no steps", async () => {
    // util-linux `script` gives the command a pseudo-terminal; stty gives it a size to draw in.
    const cli = [process.execPath, "--import", import.meta.resolve("tsx"), join(repoRoot, "cli/main.ts"), ...provisionArgs()].map((a) => `'${a}'`).join(" ");
    const r = await execa("script", ["-qec", `stty cols 160 rows 40; exec ${cli}`, "/dev/null"], { cwd: repoRoot, env: cliEnv({ TERM: "xterm-256color" }), extendEnv: false, reject: false, timeout: 60_000 });
    expect(r.exitCode).toBe(1);
    // The last frame listr2 drew: what stays on the screen.
    const finalFrame = r.stdout.split("\x1b[G").at(-1)!.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
    expect(finalFrame).toMatch(/^✖ gpu-x\n {2}› gpu-x: base: cannot connect to gpu-x /);
    expect(finalFrame).not.toMatch(/[✔⚠]/);
    for (const id of stepIds) expect(finalFrame).not.toContain(id);
  });
});

describe("the plain-line display of a host that answers", () => {
  const report = (id: string, status: StepReport["status"], changes = 0, reason?: string): StepReport => ({
    id,
    status,
    changes: Array.from({ length: changes }, (_, i) => ({ kind: "install-packages", packages: [`p${i}`], line: `install p${i}` }) as unknown as StepReport["changes"][number]),
    ...(reason ? { reason } : {}),
    durationMs: 1,
  });
  const run = (events: ProvisionEvent[], dryRun: boolean, steps: string[]) => {
    const lines: string[] = [];
    const p = provisionProgress([{ host: "gpu-a", steps }], { dryRun, tty: false, write: (l) => lines.push(l) });
    for (const e of events) p.onEvent(e);
    return lines;
  };
  const steps = ["base", "docker", "nvidia-toolkit", "agent", "firewall"];
  const ends = (...rs: StepReport[]): ProvisionEvent[] => [
    { type: "host-start", host: "gpu-a", steps: [...steps, "dispatcher-container"] },
    ...rs.flatMap((r): ProvisionEvent[] => [{ type: "step-start", host: "gpu-a", step: r.id }, { type: "step-end", host: "gpu-a", report: r }]),
    { type: "host-end", host: "gpu-a", report: { host: "gpu-a", steps: rs } },
  ];

  it("prints each step once, says 'would change' in a dry run, shows a step's own skip without ⚠, and leaves out other roles' steps", () => {
    const rs = [
      report("base", "ok"),
      report("docker", "changed", 2, "dry run: nothing was changed"),
      report("nvidia-toolkit", "skipped", 0, "no NVIDIA driver (gpu: auto)"),
      report("agent", "changed", 1),
      report("firewall", "ok"),
      report("dispatcher-container", "skipped", 0, "not for roles gpu"),
    ];
    expect(run(ends(...rs), true, steps)).toEqual([
      "  ✔ gpu-a: base: ok",
      "  ✔ gpu-a: docker: would change (2 changes)",
      "  ↓ gpu-a: nvidia-toolkit: skipped — no NVIDIA driver (gpu: auto)",
      "  ✔ gpu-a: agent: would change (1 change)",
      "  ✔ gpu-a: firewall: ok",
      "✔ gpu-a: 2 would change, 2 ok, 1 skipped",
    ]);
    expect(run(ends(...rs), false, steps)[1]).toBe("  ✔ gpu-a: docker: changed (2 changes)");
  });

  it("after a failed step, names what did not run on the host's line instead of a skip line each", () => {
    const rs = [
      report("base", "ok"),
      report("docker", "failed", 0, "apt-get install failed."),
      ...["nvidia-toolkit", "agent", "firewall", "dispatcher-container"].map((id) => report(id, "skipped", 0, "not run: step docker failed")),
    ];
    expect(run(ends(...rs), false, steps)).toEqual(["  ✔ gpu-a: base: ok", "  ✖ gpu-a: docker: apt-get install failed.", "✖ gpu-a: stopped at docker; not run: nvidia-toolkit, agent, firewall"]);
    expect(formatSummary({ dryRun: false, hosts: [{ host: "gpu-a", steps: rs }] }, [{ host: "gpu-a", steps }])).toBe(
      [
        "gpu-a:",
        "  base            ok",
        "  docker          failed: apt-get install failed.",
        "  not run after docker failed: nvidia-toolkit, agent, firewall",
        "  not for this host's roles: dispatcher-container",
        "",
      ].join("\n"),
    );
  });
});
