// The host's figures the agent heartbeats besides its GPUs: CPU busy % since the last reading,
// memory, and free disk where job outputs go.
import * as fs from "node:fs";
import { cpus, freemem, totalmem } from "node:os";

export interface HostStats {
  cpuPct?: number;
  memoryUsedMiB: number;
  memoryTotalMiB: number;
  diskFreeGiB?: number;
}

interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/** Busy share of all CPUs between two readings, 0..100; undefined when no time passed. */
export function cpuBusyPct(before: CpuTimes, after: CpuTimes): number | undefined {
  const total = after.total - before.total;
  if (total <= 0) return undefined;
  return Math.round(((total - (after.idle - before.idle)) / total) * 1000) / 10;
}

export class HostStatsReader {
  private last = cpuTimes();

  constructor(private readonly diskPath: string) {}

  read(): HostStats {
    const now = cpuTimes();
    const cpuPct = cpuBusyPct(this.last, now);
    this.last = now;
    const MiB = 1024 * 1024;
    let diskFreeGiB: number | undefined;
    try {
      // statfs came in Node 18.15; older Nodes leave the figure out.
      const s = fs.statfsSync?.(this.diskPath);
      if (s) diskFreeGiB = Math.round(((s.bavail * s.bsize) / 1024 ** 3) * 100) / 100;
    } catch {
      /* not here: leave it out */
    }
    return {
      cpuPct,
      memoryUsedMiB: Math.round((totalmem() - freemem()) / MiB),
      memoryTotalMiB: Math.round(totalmem() / MiB),
      diskFreeGiB,
    };
  }
}
