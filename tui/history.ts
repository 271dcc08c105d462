// GPU history for the wall's charts, kept in memory only: every sample records each host's mean
// GPU utilisation and hottest GPU, in a ring of the last `capacity` samples per host.
import type { Device } from "../core/api.js";

export interface HostSeries {
  hostId: string;
  /** Sample times (epoch ms), oldest first. */
  at: number[];
  utilPct: (number | null)[];
  tempC: (number | null)[];
}

export class GpuHistory {
  private readonly hosts = new Map<string, HostSeries>();

  constructor(readonly capacity = 120) {}

  /** Records one sample for every host with GPUs; hosts gone from `devices` keep their past. */
  record(devices: Iterable<Device>, at: number): void {
    for (const d of devices) {
      if (d.gpus.length === 0) continue;
      let s = this.hosts.get(d.hostId);
      if (!s) {
        s = { hostId: d.hostId, at: [], utilPct: [], tempC: [] };
        this.hosts.set(d.hostId, s);
      }
      const live = d.status === "healthy" || d.status === "draining";
      s.at.push(at);
      s.utilPct.push(live ? meanOf(d.gpus.map((g) => g.utilizationPct)) : null);
      s.tempC.push(live ? maxOf(d.gpus.map((g) => g.temperatureC)) : null);
      if (s.at.length > this.capacity) {
        s.at.shift();
        s.utilPct.shift();
        s.tempC.shift();
      }
    }
  }

  series(hostId: string): HostSeries | undefined {
    return this.hosts.get(hostId);
  }

  /** The `n` hosts worth charting: the busiest and hottest recently, then by name. */
  top(n: number): HostSeries[] {
    const score = (s: HostSeries) => (last(s.utilPct) ?? 0) + (last(s.tempC) ?? 0);
    return [...this.hosts.values()].sort((a, b) => score(b) - score(a) || a.hostId.localeCompare(b.hostId)).slice(0, n);
  }
}

function last<T>(xs: T[]): T | undefined {
  return xs[xs.length - 1];
}

export function meanOf(xs: (number | null | undefined)[]): number | null {
  let sum = 0;
  let n = 0;
  for (const x of xs) {
    if (x == null) continue;
    sum += x;
    n++;
  }
  return n ? sum / n : null;
}

export function maxOf(xs: (number | null | undefined)[]): number | null {
  let m: number | null = null;
  for (const x of xs) if (x != null) m = m === null ? x : Math.max(m, x);
  return m;
}
