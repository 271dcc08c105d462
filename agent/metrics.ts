// The agent's Prometheus series (GET /metrics on its local server): one series per GPU and figure,
// the host's CPU, memory and disk, running jobs, and Node's own figures prefixed labrig_agent_.
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { GpuProbe } from "./gpu-probe.js";
import type { HostStats } from "./host-stats.js";

export interface MetricsSource {
  hostId: string;
  agentVersion: string;
  probe(): GpuProbe;
  host(): HostStats | undefined;
  runningJobs(): number;
  syncedBytes(): number;
}

export function createAgentMetrics(src: MetricsSource): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ host: src.hostId });
  collectDefaultMetrics({ register: registry, prefix: "labrig_agent_" });

  const perGpu = (name: string, help: string, value: (g: GpuProbe["gpus"][number]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ["gpu", "uuid", "name"],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of src.probe().gpus) {
          const v = value(g);
          if (v !== null) this.set({ gpu: String(g.index), uuid: g.uuid, name: g.name }, v);
        }
      },
    });
  perGpu("labrig_agent_gpu_utilization_percent", "GPU utilisation (nvidia-smi utilization.gpu)", (g) => g.utilizationPct);
  perGpu("labrig_agent_gpu_memory_used_mib", "GPU memory in use, MiB", (g) => g.memoryUsedMiB);
  perGpu("labrig_agent_gpu_memory_total_mib", "GPU memory, MiB", (g) => g.memoryTotalMiB);
  perGpu("labrig_agent_gpu_temperature_celsius", "GPU temperature, °C", (g) => g.temperatureC);
  perGpu("labrig_agent_gpu_power_watts", "GPU power draw, W", (g) => g.powerW);

  const single = (name: string, help: string, value: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = value();
        if (v === undefined) this.reset();
        else this.set(v);
      },
    });
  single("labrig_agent_gpus", "GPUs that answered the last probe", () => src.probe().gpus.length);
  single("labrig_agent_gpu_problem", "1 when the last probe reported a GPU problem (see the agent's /status)", () => (src.probe().problem ? 1 : 0));
  single("labrig_agent_cpu_percent", "CPU busy % between the last two heartbeats", () => src.host()?.cpuPct);
  single("labrig_agent_cpu_count", "CPU cores jobs may use (the cgroup's quota, else the online CPUs)", () => src.host()?.cpuCount);
  single("labrig_agent_memory_used_mib", "host memory in use, MiB (the cgroup's, when its limit is the total)", () => src.host()?.memoryUsedMiB);
  single("labrig_agent_memory_total_mib", "host memory, MiB (the cgroup's limit when lower)", () => src.host()?.memoryTotalMiB);
  single("labrig_agent_disk_free_gib", "free disk where job outputs go, GiB", () => src.host()?.diskFreeGiB);
  single("labrig_agent_jobs_running", "jobs this agent runs now", () => src.runningJobs());
  single("labrig_agent_synced_bytes", "bytes of job outputs sent to the dispatcher since the agent started", () => src.syncedBytes());
  new Gauge({ name: "labrig_agent_info", help: "the agent's version", labelNames: ["version"], registers: [registry] }).set({ version: src.agentVersion }, 1);
  return registry;
}
