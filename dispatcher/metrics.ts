// Prometheus metrics for the dispatcher: queue depth by state, devices by status, GPU utilisation
// and temperature per host and index (read at scrape time), dispatch latency and HTTP durations.
import { Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { deviceStatuses, jobStates } from "../core/api.js";
import type { DispatcherService } from "./service.js";

export interface DispatcherMetrics {
  registry: Registry;
  dispatchLatency: Histogram<string>;
  httpDuration: Histogram<"method" | "route" | "status">;
}

export function createMetrics(service: DispatcherService): DispatcherMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "labrig_dispatcher_" });

  new Gauge({
    name: "labrig_jobs",
    help: "Jobs by state",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const counts = service.store.countByState();
      for (const s of jobStates) this.set({ state: s }, counts[s]);
    },
  });

  const devices = service.listDevices.bind(service);
  new Gauge({
    name: "labrig_devices",
    help: "Devices by status",
    labelNames: ["status"],
    registers: [registry],
    collect() {
      const counts = Object.fromEntries(deviceStatuses.map((s) => [s, 0])) as Record<string, number>;
      for (const d of devices()) counts[d.status]++;
      for (const s of deviceStatuses) this.set({ status: s }, counts[s]);
    },
  });

  const gpuGauge = (name: string, help: string, pick: (g: ReturnType<typeof devices>[number]["gpus"][number]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ["host", "gpu", "name"],
      registers: [registry],
      collect() {
        this.reset();
        for (const d of devices()) {
          for (const g of d.gpus) {
            const v = pick(g);
            if (v !== null) this.set({ host: d.hostId, gpu: String(g.index), name: g.name }, v);
          }
        }
      },
    });
  gpuGauge("labrig_gpu_utilization_percent", "GPU utilisation reported by the host's agent", (g) => g.utilizationPct);
  gpuGauge("labrig_gpu_temperature_celsius", "GPU temperature reported by the host's agent", (g) => g.temperatureC);
  gpuGauge("labrig_gpu_memory_used_mib", "GPU memory in use", (g) => g.memoryUsedMiB);

  const dispatchLatency = new Histogram({
    name: "labrig_dispatch_latency_seconds",
    help: "From a job being queued to an agent holding its lease",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: "labrig_http_request_duration_seconds",
    help: "HTTP request durations by route",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  return { registry, dispatchLatency, httpDuration };
}
