// `pnpm bench [--quick] [--json] [--only a,b]`: runs the benchmarks; progress goes to stderr, and
// with --json stdout holds exactly one document {results:[...]}.
import { Command } from "commander";
import { dispatchLatency, heartbeatsPerSecond, syncThroughput } from "./http.js";
import { labBringUp } from "./lab-bring-up.js";
import { leaseDecision } from "./lease-decision.js";
import { tuiCpu } from "./tui-cpu.js";
import { provisionNoopVsAnsible } from "./provision-noop.js";
import type { Benchmark, BenchResult } from "./types.js";

export const benchmarks: Benchmark[] = [leaseDecision, dispatchLatency, heartbeatsPerSecond, syncThroughput, provisionNoopVsAnsible, tuiCpu, labBringUp];

const program = new Command("bench")
  .description("labrig's benchmarks; each prints a figure beside a reference measured in the same run")
  .option("--quick", "shorter runs (CI smoke)")
  .option("--json", "print one JSON document {results:[...]} on stdout")
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
for (const b of benchmarks.filter((x) => !only || only.includes(x.name))) {
  log(`${b.name}: ${b.description}`);
  results.push(...(await b.run({ quick: !!opts.quick, log })));
}
if (opts.json) {
  process.stdout.write(JSON.stringify({ results }, null, 2) + "\n");
} else {
  for (const r of results) {
    const ref = r.reference ? `  (reference ${r.reference.name}: ${r.reference.value} ${r.reference.unit})` : "";
    const goal = r.goal ? `  goal ${r.goal}: ${r.met ? "met" : "NOT met"}` : "";
    console.log(`${r.name}: ${r.value} ${r.unit}${ref}${goal}${r.note ? `\n    ${r.note}` : ""}`);
  }
}
process.exit(0);
