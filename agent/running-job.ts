// One job attempt on this host, from its lease to its reported end: output dir and run.json, the
// process or container, `running` report, sync every second, timeout, cancel, the final full sync
// and then the end state. A record in the agent's state dir follows each step, so an agent that
// restarts finishes what it had started (or re-adopts a job it left running with --keep-jobs).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Lease } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { ApiError, errorMessage, LabrigError } from "../core/errors.js";
import { setTimerAt } from "../core/long-timer.js";
import type { CodeCache, MaterializedCode } from "./code-cache.js";
import { buildContainerSpec, CONTAINER_CODE_DIR, CONTAINER_OUTPUT_DIR } from "./container-spec.js";
import type { GpuReading } from "./gpu-probe.js";
import type { JobExit, JobHandle } from "./job-handle.js";
import { JobSync, StaleAttemptError } from "./job-sync.js";
import { readJsonFile, writeJsonFile } from "./json-file.js";
import type { AgentPaths } from "./paths.js";
import { withConfigPath, withLogDirIn, writeJobConfig, JOB_CONFIG_FILE } from "./job-config.js";
import { type AppliedLimits, appliedLimits, containerLimitPlan, type JobLimits, processLimitPlan, type ScopeSupport } from "./job-limits.js";
import { adoptProcessJob, startProcessJob } from "./process-job.js";
import { liveGroupMembers } from "./process-group.js";
import { redactEnv } from "./redact.js";
import { Backoff } from "../core/backoff.js";

export interface JobContext {
  hostId: string;
  hostname: string;
  agentVersion: string;
  paths: AgentPaths;
  client(): DispatcherClient;
  /** Registers again (single flight); called when the dispatcher no longer knows our token. */
  reregister(): Promise<void>;
  gpus(): GpuReading[];
  killGraceMs: number;
  syncIntervalMs: number;
  /** The host's cache of code snapshots (made on first use). */
  codeCache(): CodeCache;
  /** How process jobs can be held to their CPU and memory (found out once per agent start). */
  scopeSupport(): Promise<ScopeSupport>;
  log(message: string): void;
  /** While the agent shuts down: the time by which reports must give up (they are retried at the next start). */
  shutdownDeadline(): number | undefined;
}

export type StopReason = "cancel" | "timeout" | "agent-stop" | "stale";
type EndState = "succeeded" | "failed" | "timed_out" | "cancelled";

export interface JobResult {
  state: EndState;
  exitCode: number | null;
  message?: string;
  endedAt: string;
}

/** What the state dir holds about a job attempt this agent has taken and not yet finished reporting. */
export interface JobRecord {
  jobId: string;
  attempt: number;
  lease: Lease;
  outputDir: string;
  startedAt: string;
  pgid?: number;
  containerId?: string;
  /** How the job's code snapshot was placed, once it was. */
  code?: { dir: string; method: MaterializedCode["method"]; fetchedBytes: number };
  /** The job's CPU and memory limits and how they were applied, set when it started. */
  limits?: AppliedLimits;
  reportedRunning?: boolean;
  result?: JobResult;
}

/** The shutdown deadline passed while the dispatcher could not be reached; the record stays for the next start. */
class GaveUpError extends LabrigError {}

/** The env a process job sees: the agent's own env without labrig's settings (the join token!), the job's, then labrig's variables. */
export function processJobEnv(base: NodeJS.ProcessEnv, jobEnv: Record<string, string>, labrigVars: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith("LABRIG_")) env[k] = v;
  return { ...env, ...jobEnv, ...labrigVars };
}

/** The end state a job reaches from how it exited and why the agent stopped it (if it did). */
export function endStateOf(exit: JobExit, reason: StopReason | undefined, timeoutS: number | null): Omit<JobResult, "endedAt"> {
  if (reason === "cancel") return { state: "cancelled", exitCode: exit.exitCode, message: "stopped at the dispatcher's request" };
  if (reason === "timeout") return { state: "timed_out", exitCode: exit.exitCode, message: `timed out after ${timeoutS} s` };
  if (reason === "agent-stop") return { state: "failed", exitCode: exit.exitCode, message: "agent stopped" };
  if (exit.exitCode === 0) return { state: "succeeded", exitCode: 0 };
  if (exit.exitCode !== null) return { state: "failed", exitCode: exit.exitCode };
  return { state: "failed", exitCode: null, message: exit.message ?? (exit.signal ? `killed by ${exit.signal}` : "exit status unknown") };
}

export class RunningJob {
  readonly jobId: string;
  readonly attempt: number;
  readonly outputDir: string;
  readonly lease: Lease;
  phase: "starting" | "running" | "finishing" = "starting";
  handle?: JobHandle;
  readonly done: Promise<void>;
  private stopReason?: StopReason;
  private readonly sync: JobSync;
  private record: JobRecord;
  private keepRunning = false;

  private constructor(
    private readonly ctx: JobContext,
    record: JobRecord,
  ) {
    this.record = record;
    this.jobId = record.jobId;
    this.attempt = record.attempt;
    this.outputDir = record.outputDir;
    this.lease = record.lease;
    this.sync = new JobSync({
      client: ctx.client(),
      jobId: this.jobId,
      attempt: this.attempt,
      outputDir: this.outputDir,
      stateFile: ctx.paths.syncStateFile(this.jobId, this.attempt),
      log: ctx.log,
    });
    this.done = this.life().catch((err) => ctx.log(`job ${this.jobId} attempt ${this.attempt}: ${errorMessage(err)}`));
  }

  /** Takes a fresh lease. */
  static start(ctx: JobContext, lease: Lease): RunningJob {
    const outputDir = ctx.paths.outputDir(lease.job.id, lease.attempt);
    return new RunningJob(ctx, { jobId: lease.job.id, attempt: lease.attempt, lease, outputDir, startedAt: new Date().toISOString() });
  }

  /** Picks up a record left by an earlier run of the agent. */
  static resume(ctx: JobContext, record: JobRecord): RunningJob {
    return new RunningJob(ctx, record);
  }

  get pgid(): number | undefined {
    return this.handle?.pgid ?? this.record.pgid;
  }
  get containerId(): string | undefined {
    return this.handle?.containerId ?? this.record.containerId;
  }
  get startedAt(): string {
    return this.record.startedAt;
  }
  get bytesSynced(): number {
    return this.sync.bytesSent;
  }

  /** Stops the job (SIGTERM, SIGKILL after the grace period); its end is reported per the reason. */
  stop(reason: StopReason): void {
    if (this.stopReason || this.phase === "finishing") return;
    this.stopReason = reason;
    this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: stopping (${reason})`);
    void this.handle?.stop(this.ctx.killGraceMs);
  }

  /** Leaves the job running and forgets it (agent exit with --keep-jobs); its record stays for re-adoption. */
  leaveRunning(): void {
    this.keepRunning = true;
    this.handle?.detach();
  }

  private saveRecord(): void {
    writeJsonFile(this.ctx.paths.recordFile(this.jobId), this.record);
  }

  private async life(): Promise<void> {
    const r = this.record;
    if (!r.result) {
      const { exit, syncStopped } = await this.runToExit();
      // The end is written down when the job ends, not when an upload that was in flight returns:
      // cut off from the dispatcher, that upload waits out its idle timeout (minutes).
      if (this.keepRunning) return syncStopped;
      r.result = { ...endStateOf(exit, this.stopReason, this.lease.job.timeoutS), endedAt: new Date().toISOString() };
      this.saveRecord();
      this.writeRunJson();
      this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: ${r.result.state}${r.result.exitCode !== null ? ` (exit ${r.result.exitCode})` : ""}`);
      await syncStopped;
    }
    this.phase = "finishing";
    if (this.stopReason === "stale") return this.forget();
    try {
      await this.persist("final sync", () => this.sync.sync(true));
      const { state, exitCode, message } = r.result;
      await this.persist(`report ${state}`, (c) => c.jobEvent(this.jobId, { attempt: this.attempt, state, exitCode, message }));
    } catch (err) {
      if (err instanceof GaveUpError) return this.ctx.log(`job ${this.jobId}: ${err.message}; it is reported when the agent starts again`);
      if (!(err instanceof StaleAttemptError)) throw err;
      this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: ${err.message}`);
    }
    this.forget();
  }

  /**
   * Starts (or re-adopts) the job, reports it running, syncs while it runs; resolves with its exit
   * as soon as it exits, and with the sync loop that is winding down (`syncStopped`).
   */
  private async runToExit(): Promise<{ exit: JobExit; syncStopped: Promise<void> }> {
    const r = this.record;
    mkdirSync(this.outputDir, { recursive: true });
    const exitFile = this.ctx.paths.exitFile(this.jobId, this.attempt);
    mkdirSync(dirname(exitFile), { recursive: true });
    try {
      this.handle = await this.startOrAdopt(exitFile);
    } catch (err) {
      return { exit: { exitCode: null, message: errorMessage(err) }, syncStopped: Promise.resolve() };
    }
    if (this.handle === undefined) {
      // Left running by an earlier agent and gone since: its exit file says how it ended.
      const code = existsSync(exitFile) ? Number(readFileSync(exitFile, "utf8").trim()) : NaN;
      const exit: JobExit = Number.isInteger(code) ? { exitCode: code } : { exitCode: null, message: "the job ended while the agent was not running; exit status unknown" };
      return { exit, syncStopped: Promise.resolve() };
    }
    r.pgid = this.handle.pgid;
    r.containerId = this.handle.containerId;
    this.saveRecord();
    this.phase = "running";
    if (this.stopReason) void this.handle.stop(this.ctx.killGraceMs);

    const timeoutS = this.lease.job.timeoutS;
    const timer = timeoutS !== null && timeoutS !== undefined ? setTimerAt(Date.parse(r.startedAt) + timeoutS * 1000, () => this.stop("timeout")) : undefined;
    let syncing = true;
    const syncLoop = (async () => {
      if (!r.reportedRunning) {
        try {
          await this.persist("report running", (c) => c.jobEvent(this.jobId, { attempt: this.attempt, state: "running" }), () => !syncing);
          r.reportedRunning = true;
          this.saveRecord();
        } catch (err) {
          if (err instanceof StaleAttemptError) return this.stop("stale");
          if (!(err instanceof GaveUpError)) this.ctx.log(`job ${this.jobId}: ${errorMessage(err)}`);
        }
      }
      let lastError = "";
      while (syncing) {
        await sleep(this.ctx.syncIntervalMs);
        if (!syncing) break;
        try {
          await this.sync.sync(false);
          lastError = "";
        } catch (err) {
          if (err instanceof StaleAttemptError) return this.stop("stale");
          if (err instanceof ApiError && err.status === 401) await this.ctx.reregister().catch(() => undefined);
          const m = errorMessage(err);
          if (m !== lastError) this.ctx.log(`job ${this.jobId}: sync: ${m} (retrying)`);
          lastError = m;
        }
      }
    })();
    const exit = await this.handle.exited;
    syncing = false;
    timer?.cancel();
    return { exit, syncStopped: syncLoop };
  }

  private async startOrAdopt(exitFile: string): Promise<JobHandle | undefined> {
    const r = this.record;
    const job = this.lease.job;
    if (r.pgid !== undefined) {
      if (liveGroupMembers(r.pgid).length === 0) return undefined;
      this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: re-adopted (process group ${r.pgid})`);
      return adoptProcessJob(r.pgid, exitFile);
    }
    if (r.containerId !== undefined) {
      const { adoptContainerJob } = await import("./container-job.js");
      this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: re-adopting container ${r.containerId.slice(0, 12)}`);
      return adoptContainerJob(r.containerId, `${this.outputDir}/job.log`);
    }
    rmSync(exitFile, { force: true });
    if (job.code) await this.placeCode(job.code.snapshot);
    const plan: { launcher?: string[]; limits: AppliedLimits } = job.image ? { limits: containerLimitPlan(this.jobLimits()) } : processLimitPlan(this.jobLimits(), await this.ctx.scopeSupport(), job.id, this.attempt);
    this.record.limits = plan.limits;
    this.writeRunJson();
    this.saveRecord();
    const labrigVars = {
      LABRIG_JOB_ID: job.id,
      LABRIG_ATTEMPT: String(this.attempt),
      CUDA_VISIBLE_DEVICES: this.lease.gpuIndices.join(","),
    };
    this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: starting ${job.image ? `container ${job.image}` : "process"} on GPUs [${this.lease.gpuIndices.join(",")}], limits: ${plan.limits.applied}`);
    let command = job.command;
    if (this.lease.config !== undefined) {
      const local = writeJobConfig(this.outputDir, withLogDirIn(this.lease.config, job.image ? CONTAINER_OUTPUT_DIR : this.outputDir));
      command = withConfigPath(job.command, job.image ? `${CONTAINER_OUTPUT_DIR}/${JOB_CONFIG_FILE}` : local);
    }
    if (job.image) {
      const { startContainerJob } = await import("./container-job.js");
      return startContainerJob(
        { jobId: job.id, attempt: this.attempt, hostId: this.ctx.hostId, image: job.image, command, env: { ...job.env, ...labrigVars }, gpuIndices: this.lease.gpuIndices, outputDir: this.outputDir, workdir: job.workdir, codeDir: this.record.code?.dir, ...this.jobLimits() },
        `${this.outputDir}/job.log`,
      );
    }
    return startProcessJob({
      launcher: plan.launcher,
      command,
      env: processJobEnv(process.env, job.env, { ...labrigVars, LABRIG_OUTPUT_DIR: this.outputDir }),
      cwd: this.processCwd(),
      logFile: `${this.outputDir}/job.log`,
      exitFile,
    });
  }

  /**
   * Fetches the job's snapshot (once per host: the cache keeps it) and writes its tree beside the
   * output folder. A placement an earlier run of the agent left half-done is started again.
   */
  private async placeCode(snapshot: string): Promise<void> {
    const dir = this.ctx.paths.codeDir(this.jobId, this.attempt);
    rmSync(dir, { recursive: true, force: true });
    const client = this.ctx.client();
    const started = Date.now();
    const r = await this.ctx.codeCache().materialize(snapshot, dir, { snapshot: (id) => client.codeSnapshot(id), blob: (id, sha) => client.codeBlob(id, sha) });
    this.record.code = { dir, method: r.method, fetchedBytes: r.fetchedBytes };
    this.ctx.log(`job ${this.jobId} attempt ${this.attempt}: code snapshot ${snapshot.slice(0, 12)} placed (${r.files} files, ${r.fetchedBytes} bytes fetched, ${r.method}) in ${Date.now() - started} ms`);
  }

  /** The job's reservation as the lease carries it (a dispatcher before reservations sends none). */
  private jobLimits(): JobLimits {
    const { cpus, memoryMiB } = this.lease.job;
    return { ...(cpus !== undefined ? { cpus } : {}), ...(memoryMiB !== undefined ? { memoryMiB } : {}) };
  }

  /** Where a process job starts: in its snapshot (and workdir inside it), else its workdir, else its output folder. */
  private processCwd(): string {
    const job = this.lease.job;
    if (this.record.code) return join(this.record.code.dir, job.workdir ?? "");
    return job.workdir ?? this.outputDir;
  }

  /** The run archive: who ran what where, and how it ended; secrets in the env redacted. */
  private writeRunJson(): void {
    const job = this.lease.job;
    const gpus = this.ctx.gpus().filter((g) => this.lease.gpuIndices.includes(g.index));
    const env = job.image
      ? Object.fromEntries((buildContainerSpec({ jobId: job.id, attempt: this.attempt, hostId: this.ctx.hostId, image: job.image, command: job.command, env: job.env, gpuIndices: this.lease.gpuIndices, outputDir: this.outputDir }).Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]))
      : { ...job.env, LABRIG_JOB_ID: job.id, LABRIG_ATTEMPT: String(this.attempt), CUDA_VISIBLE_DEVICES: this.lease.gpuIndices.join(","), LABRIG_OUTPUT_DIR: this.outputDir };
    const result = this.record.result;
    writeJsonFile(`${this.outputDir}/run.json`, {
      jobId: job.id,
      attempt: this.attempt,
      name: job.name,
      project: job.project,
      host: { hostId: this.ctx.hostId, hostname: this.ctx.hostname, agentVersion: this.ctx.agentVersion },
      gpuIndices: this.lease.gpuIndices,
      gpus: gpus.map((g) => ({ index: g.index, uuid: g.uuid, name: g.name, memoryTotalMiB: g.memoryTotalMiB })),
      command: job.command,
      image: job.image,
      workdir: job.image ? (this.record.code ? posix.join(CONTAINER_CODE_DIR, job.workdir ?? "") : (job.workdir ?? CONTAINER_OUTPUT_DIR)) : this.processCwd(),
      code: job.code ? { ...job.code, placed: this.record.code ? { method: this.record.code.method, fetchedBytes: this.record.code.fetchedBytes } : null } : null,
      timeoutS: job.timeoutS,
      // Unset only where the job never got to start (its code could not be placed) or an agent before limits started it.
      limits: this.record.limits ?? appliedLimits(this.jobLimits(), "none: not recorded when the job started"),
      env: redactEnv(env),
      startedAt: this.record.startedAt,
      endedAt: result?.endedAt ?? null,
      state: result?.state ?? "running",
      exitCode: result?.exitCode ?? null,
      message: result?.message ?? null,
    });
  }

  private forget(): void {
    // The tree is the snapshot's and the cache keeps it; the outputs stay where they were synced from.
    rmSync(this.ctx.paths.codeDir(this.jobId, this.attempt), { recursive: true, force: true });
    rmSync(this.ctx.paths.recordFile(this.jobId), { force: true });
    rmSync(this.ctx.paths.syncStateFile(this.jobId, this.attempt), { force: true });
    rmSync(this.ctx.paths.exitFile(this.jobId, this.attempt), { force: true });
  }

  /**
   * Calls the dispatcher until it answers: network errors and 5xx back off (0.5 s doubling to 10 s),
   * an unknown token registers again, a stale attempt throws StaleAttemptError, and while the agent
   * shuts down it gives up at the deadline (or when `cancelled` says so).
   */
  private async persist<T>(what: string, call: (c: DispatcherClient) => Promise<T>, cancelled?: () => boolean): Promise<T> {
    const backoff = new Backoff(500, 10_000);
    let logged = false;
    for (;;) {
      try {
        return await call(this.ctx.client());
      } catch (err) {
        if (err instanceof StaleAttemptError) throw err;
        if (err instanceof ApiError) {
          if (err.status === 401) {
            await this.ctx.reregister().catch(() => undefined);
            continue;
          }
          if (err.status === 409 || err.status === 403 || err.status === 404) {
            throw new StaleAttemptError(`attempt ${this.attempt} is no longer this agent's (${what}): ${err.message}`, { cause: err });
          }
          if (err.status < 500) throw err;
        }
        if (!logged) this.ctx.log(`job ${this.jobId}: ${what}: ${errorMessage(err)} (retrying)`);
        logged = true;
      }
      const deadline = this.ctx.shutdownDeadline();
      if ((deadline !== undefined && Date.now() + backoff.peek() > deadline) || cancelled?.()) throw new GaveUpError(`${what} did not reach the dispatcher`);
      await backoff.wait();
    }
  }
}

/** The records an earlier run of the agent left (jobs it had not finished reporting). */
export function loadJobRecords(paths: AgentPaths): JobRecord[] {
  let files: string[];
  try {
    files = readdirSync(paths.recordsDir).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  return files.map((f) => readJsonFile<JobRecord>(join(paths.recordsDir, f))).filter((r): r is JobRecord => r !== undefined && typeof r.jobId === "string" && r.lease !== undefined);
}
