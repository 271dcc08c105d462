// The GPU probe: runs nvidia-smi's CSV query and turns its output into the GPUs the agent registers
// and the per-GPU figures it heartbeats. A host without a driver, or with a GPU that fell off the
// bus, still reports: the healthy GPUs are kept and the rest becomes a `gpuProblem` line.
import { execFile } from "node:child_process";

export const NVIDIA_SMI_QUERY = "index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw";
export const NVIDIA_SMI_ARGS = [`--query-gpu=${NVIDIA_SMI_QUERY}`, "--format=csv,noheader,nounits"];

export interface GpuReading {
  index: number;
  uuid: string;
  name: string;
  memoryTotalMiB: number;
  memoryUsedMiB: number | null;
  utilizationPct: number | null;
  temperatureC: number | null;
  powerW: number | null;
}

export interface GpuProbe {
  gpus: GpuReading[];
  /** Why some or all GPUs are missing; undefined when every GPU answered. */
  problem?: string;
}

/** nvidia-smi's bracketed answers for a figure it cannot give ("[N/A]", "[Not Supported]", "[Unknown Error]", ...). */
const bracketed = /^\[.*\]$/;

function figure(field: string | undefined): number | null {
  if (field === undefined) return null;
  const f = field.trim();
  if (f === "" || bracketed.test(f)) return null;
  const n = Number(f);
  return Number.isFinite(n) ? n : null;
}

/** Parses `--format=csv,noheader,nounits` output of NVIDIA_SMI_QUERY. Pure. */
export function parseNvidiaSmiCsv(text: string): GpuProbe {
  const gpus: GpuReading[] = [];
  const problems: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") continue;
    if (/NVIDIA-SMI has failed|couldn't communicate with the NVIDIA driver/i.test(line)) {
      return { gpus: [], problem: `no NVIDIA driver: ${line}` };
    }
    const fields = line.split(/,\s*/);
    const index = fields.length >= 3 ? Number(fields[0]) : NaN;
    if (!Number.isInteger(index) || index < 0) {
      // "Unable to determine the device handle for GPU0000:41:00.0: Unknown Error" and the like:
      // a GPU that fell off the bus takes its row's place.
      problems.push(line);
      continue;
    }
    const uuid = fields[1]!.trim();
    const name = fields[2]!.trim();
    const memoryTotalMiB = figure(fields[3]);
    if (bracketed.test(uuid) || bracketed.test(name) || memoryTotalMiB === null) {
      problems.push(`GPU ${index}: ${[uuid, name].find((f) => bracketed.test(f)) ?? fields[3]?.trim() ?? "no memory total"}`);
      continue;
    }
    gpus.push({
      index,
      uuid,
      name,
      memoryTotalMiB,
      memoryUsedMiB: figure(fields[4]),
      utilizationPct: figure(fields[5]),
      temperatureC: figure(fields[6]),
      powerW: figure(fields[7]),
    });
  }
  return problems.length ? { gpus, problem: problems.join("; ") } : { gpus };
}

/** Runs nvidia-smi (or the script `--nvidia-smi` names) and parses what it printed, even on a non-zero exit. */
export function probeGpus(nvidiaSmi = "nvidia-smi", timeoutMs = 10_000): Promise<GpuProbe> {
  return new Promise((resolve) => {
    execFile(nvidiaSmi, NVIDIA_SMI_ARGS, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean }) | null;
      if (e?.code === "ENOENT") return resolve({ gpus: [], problem: `${nvidiaSmi} not found: no NVIDIA driver on this host` });
      if (e?.killed) return resolve({ gpus: [], problem: `${nvidiaSmi} did not answer in ${timeoutMs} ms` });
      const parsed = parseNvidiaSmiCsv(`${stdout}\n${stderr}`);
      if (e && parsed.gpus.length === 0 && !parsed.problem) {
        return resolve({ gpus: [], problem: `${nvidiaSmi} failed: ${e.message.split("\n")[0]}` });
      }
      resolve(parsed);
    });
  });
}
