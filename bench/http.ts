// The benchmarks that drive a real dispatcher process over loopback HTTP with simulated agents,
// one module each; the registry in run.ts lists them.
export { dispatchLatency } from "./dispatch-latency.js";
export { heartbeatsPerSecond } from "./heartbeats.js";
export { syncThroughput } from "./sync-throughput.js";
