// `pnpm bench [--quick] [--json] [--only a,b]`: runs every benchmark it can; progress goes to
// stderr, and with --json stdout holds exactly one document {results, skipped, failed}. A benchmark
// that cannot run here (no Docker engine, no ansible) is named with the reason and the others go
// on; one that ran and failed makes the exit status 1 after all of them have had their turn.
import { Command } from "commander";
import { errorMessage } from "../core/errors.js";
import { DockerUnavailableError } from "../tests/infra/docker.js";
import { dispatchLatency, heartbeatsPerSecond, syncThroughput } from "./http.js";
import { codeResubmitUpload, codeStartOverhead } from "./code.js";
import { labBringUp } from "./lab-bring-up.js";
import { leaseDecision } from "./lease-decision.js";
import { tuiCpu } from "./tui-cpu.js";
import { provisionNoopVsAnsible } from "./provision-noop.js";
import { provisionScale } from "./provision-scale.js";
import { submitToLogSynced, submitToRunning } from "./submit-latency.js";
import { BenchUnavailableError, type Benchmark, type BenchResult } from "./types.js";

export const benchmarks: Benchmark[] = [leaseDecision, dispatchLatency, heartbeatsPerSecond, syncThroughput, submitToRunning, submitToLogSynced, codeResubmitUpload, codeStartOverhead, provisionNoopVsAnsible, provisionScale, tuiCpu, labBringUp];

const program = new Command("bench")
  .description(
    "labrig's benchmarks; each prints a figure beside a reference measured in the same run. " +
      "Benchmarks that cannot run here are listed as skipped with the reason; the exit status is 1 when one that ran failed.",
  )
  .option("--quick", "shorter runs (CI smoke)")
  .option("--json", "print one JSON document {results, skipped, failed} on stdout")
  .option("--only <names>", `comma-separated subset of: ${benchmarks.map((b) => b.name).join(", ")}`)
  .parse();
const opts = program.opts<{ quick?: boolean; json?: boolean; only?: string }>();

const only = opts.only?.split(",").map((s) => s.trim());
for (const name of only ?? []) {
  if (!benchmarks.some((b) => b.name === name)) {
    console.error(`bench: unknown benchmark '${name}'; known: ${benchmarks.map((b) => b.name).join(", ")}`);
    process.exit(2);
  }
}
const log = (line: string) => process.stderr.write(line + "\n");
const results: BenchResult[] = [];
const skipped: { name: string; reason: string }[] = [];
const failed: { name: string; error: string }[] = [];
for (const b of benchmarks.filter((x) => !only || only.includes(x.name))) {
  log(`${b.name}: ${b.description}`);
  try {
    results.push(...(await b.run({ quick: !!opts.quick, log })));
  } catch (err) {
    if (err instanceof DockerUnavailableError || err instanceof BenchUnavailableError) {
      skipped.push({ name: b.name, reason: err.message });
      log(`${b.name}: skipped: ${err.message}`);
    } else {
      failed.push({ name: b.name, error: errorMessage(err) });
      log(`${b.name}: FAILED: ${err instanceof Error && err.stack ? err.stack : errorMessage(err)}`);
    }
  }
}
if (opts.json) {
  process.stdout.write(JSON.stringify({ results, skipped, failed }, null, 2) + "\n");
} else {
  for (const r of results) {
    const ref = r.reference ? `  (reference ${r.reference.name}: ${r.reference.value} ${r.reference.unit})` : "";
    const goal = r.goal ? `  goal ${r.goal}: ${r.met ? "met" : "NOT met"}` : "";
    console.log(`${r.name}: ${r.value} ${r.unit}${ref}${goal}${r.note ? `\n    ${r.note}` : ""}`);
  }
  for (const s of skipped) console.log(`${s.name}: SKIPPED: ${s.reason}`);
  for (const f of failed) console.log(`${f.name}: FAILED: ${f.error}`);
}
process.exit(failed.length > 0 ? 1 : 0);
