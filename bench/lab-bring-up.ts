// Benchmark lab-bring-up-s: bare test hosts to a lab's first job succeeded, the way an admin does
// it — `labrig provision --host all` on a NAS-role host and two GPU-role hosts (one behind a jump
// host, one with sudo asking for a password; tests/provision/lab-fixture.ts), then a job submitted
// with the CLI. Split into phases from the run's own report: image transfer (docker save | load
// over SSH), the dispatcher host (including the transfer), the GPU hosts in parallel, the first
// job. The reference, from the same run, is the serial sum of every host's steps: what bringing
// the hosts up one by one would have taken.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { DispatcherClient } from "../core/client.js";
import type { Job } from "../core/api.js";
import type { HostReport } from "../provision/runner.js";
import { savedDispatcherDir } from "../provision/saved-dispatcher.js";
import { nodeWithTsx, repoRoot } from "../tests/helpers/dispatcher-process.js";
import { waitFor } from "../tests/helpers/wait.js";
import { provisionCli } from "../tests/provision/helpers.js";
import { startTestLab } from "../tests/provision/lab-fixture.js";
import { round, type Benchmark } from "./types.js";

const hostSeconds = (h: HostReport) => h.steps.reduce((sum, s) => sum + s.durationMs, 0) / 1000;

export const labBringUp: Benchmark = {
  name: "lab-bring-up-s",
  description: "bare NAS + 2 GPU test hosts to the first job succeeded (provision --host all, then labrig submit), with the per-phase split",
  async run({ log }) {
    log("  starting 4 bare test hosts and building the dispatcher image (not timed)");
    const lab = await startTestLab("bench-lab");
    try {
      const started = Date.now();
      const run = await provisionCli(lab.args, lab.env, { input: `${lab.sudoPassword}\n`, timeoutMs: 1_800_000 });
      const provisionedS = (Date.now() - started) / 1000;
      if (run.exitCode !== 0) throw new Error(`provision --host all failed: ${JSON.stringify(run.report, null, 1)}`);
      const saved = savedDispatcherDir(lab.labName, { LABRIG_HOME: lab.home });
      const target = { LABRIG_URL: `http://${lab.nas.ip}:8000`, LABRIG_TOKEN: readFileSync(join(saved, "admin-token"), "utf8").trim() };
      const jobStarted = Date.now();
      const submitted = await execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", "submit", "--gpus", "0", "--json", "--", "true"], { cwd: repoRoot, env: { ...lab.env, ...target } });
      const admin = new DispatcherClient({ url: target.LABRIG_URL, token: target.LABRIG_TOKEN });
      const job = await waitFor("the first job", () => admin.job((JSON.parse(submitted.stdout) as Job).id), (j) => ["succeeded", "failed"].includes(j.state), 300_000, 250);
      if (job.state !== "succeeded") throw new Error(`the first job ${job.state}`);
      const firstJobS = (Date.now() - jobStarted) / 1000;
      const totalS = (Date.now() - started) / 1000;

      const nas = run.report.hosts.find((h) => h.host === "nas")!;
      const gpus = run.report.hosts.filter((h) => h.host !== "nas");
      const container = nas.steps.find((s) => s.id === "dispatcher-container")!;
      const send = container.changes.findIndex((c) => c.kind === "run" && c.what.startsWith("send image"));
      const transferS = send < 0 ? 0 : ((container.changes[send]!.doneAtMs ?? 0) - (send > 0 ? (container.changes[send - 1]!.doneAtMs ?? 0) : 0)) / 1000;
      const serialS = run.report.hosts.reduce((sum, h) => sum + hostSeconds(h), 0) + firstJobS;
      const phases = `image transfer ${round(transferS, 1)} s, dispatcher host ${round(hostSeconds(nas), 1)} s, GPU hosts in parallel ${round(Math.max(...gpus.map(hostSeconds)), 1)} s (${gpus.map((g) => `${g.host} ${round(hostSeconds(g), 1)} s`).join(", ")}), first job ${round(firstJobS, 1)} s; provision command ${round(provisionedS, 1)} s`;
      log(`  ${phases}`);
      return [
        {
          name: "lab-bring-up-s",
          value: round(totalS, 1),
          unit: "s",
          reference: { name: "the same hosts brought up one by one (serial sum of every host's steps + first job)", value: round(serialS, 1), unit: "s" },
          note: `${phases}; ratio to the serial reference ${round(totalS / serialS, 2)}`,
        },
      ];
    } finally {
      await lab.stop();
    }
  },
};
