// A process's peak resident memory so far (VmHWM in /proc/PID/status), in KiB. Linux only.
import { readFileSync } from "node:fs";

export function peakRssKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(m[1]);
}
