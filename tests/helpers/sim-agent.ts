// A simulated agent for tests and benchmarks: registers with fake GPUs, heartbeats and takes
// leases through the real HTTP API, but runs nothing.
import type { HeartbeatRequest, Lease, RegisteredGpu } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";

export function fakeGpus(n: number, name = "NVIDIA A100-SXM4-80GB", memoryTotalMiB = 81920): RegisteredGpu[] {
  return Array.from({ length: n }, (_, index) => ({ index, uuid: `GPU-${name.length}-${index}-sim`, name, memoryTotalMiB }));
}

export class SimAgent {
  client: DispatcherClient;
  private timer?: NodeJS.Timeout;
  running = new Set<string>();

  constructor(
    readonly url: string,
    readonly hostId: string,
    readonly gpus: RegisteredGpu[] = fakeGpus(1),
    readonly labels: Record<string, string> = {},
    /** Cores and memory it reports (absent: unknown, so the scheduler does not limit them). */
    readonly host: { cpuCount?: number; memoryTotalMiB?: number } = {},
  ) {
    this.client = new DispatcherClient({ url });
  }

  async register(joinToken: string): Promise<this> {
    const r = await this.client.register(joinToken, { hostId: this.hostId, gpus: this.gpus, labels: this.labels, agentVersion: "sim" });
    this.client.token = r.agentToken;
    return this;
  }

  heartbeatBody(): HeartbeatRequest {
    return {
      gpus: this.gpus.map((g) => ({ index: g.index, utilizationPct: 50, memoryUsedMiB: 1000, memoryTotalMiB: g.memoryTotalMiB, temperatureC: 60, powerW: 200 })),
      runningJobs: [...this.running],
      ...(this.host.cpuCount !== undefined ? { cpuCount: this.host.cpuCount } : {}),
      ...(this.host.memoryTotalMiB !== undefined ? { memoryTotalMiB: this.host.memoryTotalMiB, memoryUsedMiB: 0 } : {}),
    };
  }

  heartbeat() {
    return this.client.heartbeat(this.hostId, this.heartbeatBody());
  }

  /** Heartbeats every `ms` until stop(). */
  startHeartbeats(ms: number): this {
    this.timer = setInterval(() => void this.heartbeat().catch(() => {}), ms);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  lease(waitS: number, signal?: AbortSignal): Promise<Lease | null> {
    return this.client.lease(this.hostId, waitS, signal);
  }

  report(lease: Lease, state: "running" | "succeeded" | "failed" | "timed_out" | "cancelled", exitCode?: number) {
    if (state === "running") this.running.add(lease.job.id);
    else this.running.delete(lease.job.id);
    return this.client.jobEvent(lease.job.id, { attempt: lease.attempt, state, exitCode });
  }
}
