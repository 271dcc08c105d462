// What a benchmark is and what it reports. Each compares against a reference measured in the
// same run, so figures stay meaningful on a noisy machine.
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  reference?: { name: string; value: number; unit: string };
  goal?: string;
  met?: boolean;
  note?: string;
}

export interface BenchOptions {
  quick: boolean;
  log: (line: string) => void;
}

export interface Benchmark {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<BenchResult[]>;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** The middle of a set of runs (of an even count, the upper of the two middle ones). */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Thrown by a benchmark that cannot run on this machine (a tool it compares against is missing); the runner lists it as skipped. */
export class BenchUnavailableError extends Error {
  constructor(what: string) {
    super(what);
    this.name = "BenchUnavailableError";
  }
}
