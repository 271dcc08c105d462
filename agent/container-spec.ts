// What the agent asks Docker for when a job names an image: one container with exactly the job's
// GPUs, its CPU and memory reservation as Docker limits, its output dir mounted, and labels the
// dashboard finds it by. Pure, so the spec is tested without an engine.
import { posix } from "node:path";
import type { ContainerCreateOptions } from "dockerode";
import { CONTAINER_LABELS } from "../core/labels.js";

/** Where the output dir appears inside a job's container. */
export const CONTAINER_OUTPUT_DIR = "/output";
/** Where a job's code snapshot appears inside its container. */
export const CONTAINER_CODE_DIR = "/code";

export interface ContainerJob {
  jobId: string;
  attempt: number;
  hostId: string;
  image: string;
  command: string | string[];
  /** The job's env plus labrig's variables (LABRIG_OUTPUT_DIR is set to CONTAINER_OUTPUT_DIR here). */
  env: Record<string, string>;
  gpuIndices: number[];
  outputDir: string;
  workdir?: string | null;
  /** The job's code snapshot on the host; the container starts in it (in `workdir` inside it). */
  codeDir?: string;
  /** CPU cores and memory the dispatcher reserved for the job; absent: no limit. */
  cpus?: number;
  memoryMiB?: number;
}

/** Docker's limits for the job's reservation: NanoCpus, and Memory with MemorySwap equal so swap does not add to it. */
export function containerLimits(job: Pick<ContainerJob, "cpus" | "memoryMiB">): { NanoCpus?: number; Memory?: number; MemorySwap?: number } {
  const memory = job.memoryMiB !== undefined ? Math.round(job.memoryMiB * 1024 * 1024) : undefined;
  return {
    ...(job.cpus !== undefined ? { NanoCpus: Math.round(job.cpus * 1e9) } : {}),
    ...(memory !== undefined ? { Memory: memory, MemorySwap: memory } : {}),
  };
}

export function containerName(jobId: string, attempt: number): string {
  return `labrig-${jobId}-a${attempt}`;
}

export function buildContainerSpec(job: ContainerJob): ContainerCreateOptions {
  const argv = typeof job.command === "string" ? ["sh", "-c", job.command] : job.command;
  // The engine keeps stdout and stderr in two pipes and loses their order; one sh (exec'ed away
  // at once) puts stderr on stdout inside, as the process path does with its one descriptor.
  // So an image needs /bin/sh.
  const cmd = ["sh", "-c", 'exec "$@" 2>&1', "labrig-job", ...argv];
  // Inside the container the GPUs Docker hands over are numbered from 0; NVIDIA's images set
  // NVIDIA_VISIBLE_DEVICES=all, which would expose every GPU to a 0-GPU job, hence "void".
  const gpuEnv =
    job.gpuIndices.length > 0
      ? { NVIDIA_VISIBLE_DEVICES: job.gpuIndices.join(","), CUDA_VISIBLE_DEVICES: job.gpuIndices.map((_, i) => i).join(",") }
      : { NVIDIA_VISIBLE_DEVICES: "void", CUDA_VISIBLE_DEVICES: "" };
  const env = { ...job.env, ...gpuEnv, LABRIG_OUTPUT_DIR: CONTAINER_OUTPUT_DIR };
  return {
    name: containerName(job.jobId, job.attempt),
    Image: job.image,
    Cmd: cmd,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: job.codeDir ? posix.join(CONTAINER_CODE_DIR, job.workdir ?? "") : (job.workdir ?? CONTAINER_OUTPUT_DIR),
    Labels: { [CONTAINER_LABELS.job]: job.jobId, [CONTAINER_LABELS.attempt]: String(job.attempt), [CONTAINER_LABELS.host]: job.hostId },
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      Binds: [`${job.outputDir}:${CONTAINER_OUTPUT_DIR}`, ...(job.codeDir ? [`${job.codeDir}:${CONTAINER_CODE_DIR}`] : [])],
      Init: true,
      AutoRemove: false,
      DeviceRequests:
        job.gpuIndices.length > 0 ? [{ Driver: "nvidia", DeviceIDs: job.gpuIndices.map(String), Capabilities: [["gpu"]] }] : [],
      ...containerLimits(job),
    },
  };
}
