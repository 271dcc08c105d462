// Fact: what slurm.conf says about a host: its short hostname (slurmctld checks SlurmctldHost
// against it), CPU layout (lscpu), memory (MemTotal) and GPUs: the /dev/nvidia<N> device nodes,
// named by nvidia-smi when a driver answers. Read without sudo, on a bare host too.
//   await slurmHostFacts(remote)  // {hostname:"gpu-a", cpus:2, sockets:1, coresPerSocket:2, threadsPerCore:1, realMemoryMiB:24105, gpuFiles:["/dev/nvidia0"], gpuNames:[]}
import { LabrigError } from "../../core/errors.js";
import type { Remote } from "../remote.js";

export interface SlurmHostFacts {
  hostname: string;
  cpus: number;
  sockets: number;
  coresPerSocket: number;
  threadsPerCore: number;
  /** MemTotal in MiB, as slurmd counts it (a RealMemory above it drains the node). */
  realMemoryMiB: number;
  /** /dev/nvidia0, /dev/nvidia1, … (not nvidiactl or nvidia-uvm), sorted by number. */
  gpuFiles: string[];
  /** nvidia-smi's names, one a GPU; empty without a driver. */
  gpuNames: string[];
}

const marker = "--labrig-section--";

export async function slurmHostFacts(remote: Remote): Promise<SlurmHostFacts> {
  const res = await remote.exec(
    `hostname -s; echo ${marker}; LC_ALL=C lscpu; echo ${marker}; grep '^MemTotal:' /proc/meminfo; echo ${marker}; ls -1 /dev 2>/dev/null | grep -E '^nvidia[0-9]+$'; echo ${marker}; nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; true`,
    { timeoutMs: 60_000 },
  );
  if (res.exitCode !== 0) throw new LabrigError(`on ${remote.host}: reading CPUs, memory and GPUs for slurm.conf failed: ${res.stderr.trim()}`);
  return parseSlurmHostFacts(res.stdout, remote.host);
}

export function parseSlurmHostFacts(text: string, host: string): SlurmHostFacts {
  const [hostname = "", lscpu = "", meminfo = "", devices = "", smi = ""] = text.split(`${marker}\n`);
  const field = (name: string) => {
    const v = Number(lscpu.match(new RegExp(`^${name}:\\s*(\\d+)`, "m"))?.[1]);
    if (!Number.isInteger(v) || v <= 0) throw new LabrigError(`on ${host}: lscpu printed no '${name}:' line; slurm.conf needs the CPU layout`);
    return v;
  };
  const memKiB = Number(meminfo.match(/^MemTotal:\s*(\d+)\s*kB/m)?.[1]);
  if (!Number.isFinite(memKiB) || memKiB <= 0) throw new LabrigError(`on ${host}: /proc/meminfo has no MemTotal; slurm.conf needs the memory`);
  const gpuFiles = devices
    .split("\n")
    .map((d) => d.trim())
    .filter((d) => /^nvidia\d+$/.test(d))
    .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))
    .map((d) => `/dev/${d}`);
  return {
    hostname: hostname.trim(),
    cpus: field("CPU\\(s\\)"),
    sockets: field("Socket\\(s\\)"),
    coresPerSocket: field("Core\\(s\\) per socket"),
    threadsPerCore: field("Thread\\(s\\) per core"),
    realMemoryMiB: Math.floor(memKiB / 1024),
    gpuFiles,
    gpuNames: smi.split("\n").map((l) => l.trim()).filter(Boolean),
  };
}
