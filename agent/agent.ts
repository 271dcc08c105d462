// The agent: registers with the dispatcher, heartbeats its GPUs and host figures, takes work with
// the long poll, runs each lease as a RunningJob, serves its local HTTP API, and stops cleanly.
// Network trouble never ends it: every loop backs off and tries again.
import { CodeCache } from "./code-cache.js";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import type { Server } from "node:http";
import { dirname, join } from "node:path";
import type { GpuProcess, Lease, RegisterResponse } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { ApiError, errorMessage, LabrigError } from "../core/errors.js";
import { type GpuProbe, probeGpus } from "./gpu-probe.js";
import { type OwnedJob, describeGpuProcesses, linuxProcReader, probeComputeApps } from "./gpu-processes.js";
import { type HostStats, HostStatsReader } from "./host-stats.js";
import { detectScopeSupport, type ScopeSupport } from "./job-limits.js";
import { ensurePrivateDir, readJsonFile, writeJsonFile } from "./json-file.js";
import { AdminTokenCheck, createLocalServer, listen } from "./local-server.js";
import { createAgentMetrics } from "./metrics.js";
import type { AgentOptions } from "./options.js";
import { type AgentPaths, agentPaths } from "./paths.js";
import { type JobContext, loadJobRecords, RunningJob } from "./running-job.js";
import { agentVersion } from "./version.js";
import { Backoff } from "../core/backoff.js";

export class JoinRefusedError extends LabrigError {}

export interface AgentInfo {
  url: string | null;
  hostId: string;
  pid: number;
  dispatcherUrl: string;
}

export class Agent {
  readonly paths: AgentPaths;
  readonly client: DispatcherClient;
  private jobs = new Map<string, RunningJob>();
  private probe: GpuProbe = { gpus: [] };
  private readonly procReader = linuxProcReader();
  private registeredGpus = "";
  private hostStats?: HostStats;
  private readonly statsReader: HostStatsReader;
  private heartbeatS = 3;
  private registering?: Promise<void>;
  /** What the dispatcher shows our local server when it relays a live log. */
  private relayToken: string | undefined;
  private stopping = false;
  private shutdownBy?: number;
  private leaseAbort = new AbortController();
  private loops: Promise<void>[] = [];
  private server?: Server;
  private serverUrl: string | null = null;
  /** The server's URL for the rest of the lab: the host's name when it listens on every address. */
  private advertisedUrl: string | null = null;
  private syncedBytesDone = 0;
  private wakers = new Set<() => void>();
  private codeCache?: CodeCache;
  private scopeSupport?: Promise<ScopeSupport>;

  constructor(
    readonly opts: AgentOptions,
    private readonly log: (m: string) => void = (m) => process.stderr.write(`${new Date().toISOString()} agent ${opts.hostId}: ${m}\n`),
  ) {
    this.paths = agentPaths(opts.workdir);
    this.client = new DispatcherClient({ url: opts.url });
    this.statsReader = new HostStatsReader(opts.workdir);
  }

  /** Registers (retrying while the dispatcher is unreachable), starts the server, picks up old jobs, starts the loops. */
  async start(): Promise<AgentInfo> {
    // The workdir holds job records with env secrets and the agent token: 0700 whatever existed.
    ensurePrivateDir(this.opts.workdir);
    ensurePrivateDir(dirname(this.paths.recordsDir));
    mkdirSync(this.paths.jobsDir, { recursive: true });
    this.probe = await probeGpus(this.opts.nvidiaSmi);
    if (this.probe.problem) this.log(`GPU probe: ${this.probe.problem}`);
    this.log(`GPUs: ${this.probe.gpus.map((g) => `${g.index}:${g.name}`).join(", ") || "none"}`);
    // Found out while registering; the first process job waits for it.
    void this.jobScopes().then((s) => this.log(`CPU and memory limits of process jobs: ${s.kind === "scope" ? `systemd scopes (${s.manager} manager)` : `none: ${s.reason}`}`));
    if (this.opts.listen) {
      this.server = createLocalServer(this.localServerSource());
      const addr = await listen(this.server, this.opts.listen.host, this.opts.listen.port);
      const host = addr.address === "0.0.0.0" || addr.address === "::" ? "127.0.0.1" : addr.address.includes(":") ? `[${addr.address}]` : addr.address;
      this.serverUrl = `http://${host}:${addr.port}`;
      const wildcard = addr.address === "0.0.0.0" || addr.address === "::";
      this.advertisedUrl = this.opts.advertiseUrl ?? (wildcard ? `http://${hostname()}:${addr.port}` : this.serverUrl);
      this.log(`local server at ${this.serverUrl}${this.advertisedUrl !== this.serverUrl ? ` (advertised as ${this.advertisedUrl})` : ""}`);
    }
    try {
      await this.registerUntilDone(true);
    } catch (err) {
      this.server?.close();
      this.server?.closeAllConnections();
      throw err;
    }
    for (const record of loadJobRecords(this.paths)) {
      if (this.jobs.has(record.jobId)) continue;
      this.log(`job ${record.jobId} attempt ${record.attempt}: picked up from the last run`);
      this.track(RunningJob.resume(this.jobContext(), record));
    }
    const info: AgentInfo = { url: this.serverUrl, hostId: this.opts.hostId, pid: process.pid, dispatcherUrl: this.opts.url };
    writeJsonFile(this.paths.infoFile, info, 0o644);
    this.loops.push(this.heartbeatLoop(), this.leaseLoop());
    return info;
  }

  /**
   * Stops the loops; without --keep-jobs stops every job and reports it `failed` ("agent stopped"),
   * with --keep-jobs leaves them running for the next start. Reports that cannot reach the
   * dispatcher within `reportWithinMs` stay in the state dir and go out at the next start.
   */
  async stop(reportWithinMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.leaseAbort.abort();
    for (const w of this.wakers) w();
    const jobs = [...this.jobs.values()];
    if (this.opts.keepJobs) {
      for (const j of jobs) j.leaveRunning();
      this.log(`stopping; ${jobs.length} job(s) left running (--keep-jobs)`);
    } else {
      this.log(`stopping; stopping ${jobs.length} job(s)`);
      this.shutdownBy = Date.now() + this.opts.killGraceMs + reportWithinMs;
      for (const j of jobs) j.stop("agent-stop");
      await Promise.all(jobs.map((j) => j.done));
    }
    await Promise.allSettled(this.loops);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server?.closeAllConnections();
    rmSync(this.paths.infoFile, { force: true });
  }

  // ---- registration ----

  private registerBody() {
    return {
      hostId: this.opts.hostId,
      hostname: hostname(),
      gpus: this.probe.gpus.map((g) => ({ index: g.index, uuid: g.uuid, name: g.name, memoryTotalMiB: g.memoryTotalMiB })),
      labels: this.opts.labels,
      agentVersion,
      agentUrl: this.advertisedUrl ?? undefined,
    };
  }

  /**
   * The agent token this host got last time from this dispatcher, if it kept one: the same URL, or
   * the same dispatcher (its /api/health `instance`) at another address or port.
   */
  private async savedToken(): Promise<string | undefined> {
    const saved = readJsonFile<{ hostId?: string; url?: string; instance?: string; agentToken?: string }>(this.paths.tokenFile);
    if (!saved?.agentToken || saved.hostId !== this.opts.hostId) return undefined;
    if (saved.url === this.opts.url) return saved.agentToken;
    if (!saved.instance) return undefined;
    const instance = await this.dispatcherInstance();
    return instance === saved.instance ? saved.agentToken : undefined;
  }

  private async dispatcherInstance(): Promise<string | undefined> {
    try {
      return (await this.client.health()).instance;
    } catch {
      return undefined;
    }
  }

  /**
   * Registers with this host's own agent token when it has one (a join token only makes a host id
   * that does not exist yet), else, or when the dispatcher no longer knows that token, with the
   * join token.
   */
  private async register(): Promise<void> {
    const body = this.registerBody();
    const own = this.client.token ?? (await this.savedToken());
    let r: RegisterResponse | undefined;
    if (own) {
      try {
        r = await this.client.register(own, body);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) throw err;
      }
    }
    r ??= await this.client.register(this.opts.joinToken, body);
    this.client.token = r.agentToken;
    this.relayToken = r.relayToken;
    this.heartbeatS = r.heartbeatIntervalS;
    this.registeredGpus = JSON.stringify(body.gpus);
    const instance = await this.dispatcherInstance();
    writeJsonFile(this.paths.tokenFile, { hostId: this.opts.hostId, url: this.opts.url, instance, agentToken: r.agentToken, relayToken: r.relayToken }, 0o600);
    this.log(`registered with ${this.opts.url} (${body.gpus.length} GPU(s), heartbeat every ${r.heartbeatIntervalS} s)`);
  }

  /** Registers, retrying network trouble with a capped backoff; a refused join token ends the first try. */
  private async registerUntilDone(first: boolean): Promise<void> {
    const backoff = new Backoff(500, 5_000);
    for (;;) {
      try {
        return await this.register();
      } catch (err) {
        if (err instanceof ApiError && err.status === 401 && first) {
          throw new JoinRefusedError(`the dispatcher at ${this.opts.url} refused the join token (${err.message}); use the one in its state dir's join-token file`);
        }
        if (err instanceof ApiError && err.status === 409 && err.code === "host_exists" && first) {
          throw new JoinRefusedError(`the dispatcher at ${this.opts.url} already has a host ${this.opts.hostId} and this agent lacks its token: ${err.message}`);
        }
        this.log(`register: ${errorMessage(err)} (retrying in ${backoff.peek() / 1000} s)`);
      }
      if (this.stopping) throw new LabrigError("stopped before registering");
      await backoff.wait();
    }
  }

  /** Registers again (one at a time) when the dispatcher says it does not know our token. */
  reregister(): Promise<void> {
    this.registering ??= this.registerUntilDone(false).finally(() => (this.registering = undefined));
    return this.registering;
  }

  // ---- loops ----

  private async heartbeatLoop(): Promise<void> {
    while (!this.stopping) {
      const started = Date.now();
      try {
        await this.heartbeat();
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          this.log("heartbeat: the dispatcher does not know this agent's token; registering again");
          await this.reregister().catch(() => undefined);
        } else {
          this.log(`heartbeat: ${errorMessage(err)}`);
        }
      }
      await this.pause(Math.max(100, this.heartbeatS * 1000 - (Date.now() - started)));
    }
  }

  private async heartbeat(): Promise<void> {
    this.probe = await probeGpus(this.opts.nvidiaSmi);
    this.hostStats = this.statsReader.read();
    const gpusNow = JSON.stringify(this.registerBody().gpus);
    if (gpusNow !== this.registeredGpus) {
      this.log(`the GPUs changed (${this.probe.problem ?? "now " + this.probe.gpus.length}); registering again`);
      await this.reregister();
    }
    const processes = await this.gpuProcesses();
    const res = await this.client.heartbeat(this.opts.hostId, {
      gpus: this.probe.gpus.map((g) => ({
        index: g.index,
        utilizationPct: g.utilizationPct,
        memoryUsedMiB: g.memoryUsedMiB,
        memoryTotalMiB: g.memoryTotalMiB,
        temperatureC: g.temperatureC,
        powerW: g.powerW,
        ...(processes ? { processes: processes.get(g.uuid) ?? [] } : {}),
      })),
      cpuPct: this.hostStats.cpuPct,
      memoryUsedMiB: this.hostStats.memoryUsedMiB,
      memoryTotalMiB: this.hostStats.memoryTotalMiB,
      cpuCount: this.hostStats.cpuCount,
      diskFreeGiB: this.hostStats.diskFreeGiB,
      runningJobs: [...this.jobs.keys()],
      gpuProblem: this.probe.problem,
    });
    for (const id of res.cancel) {
      const job = this.jobs.get(id);
      if (job && job.phase !== "finishing") job.stop("cancel");
    }
  }

  /** What runs on each GPU (by uuid), this agent's jobs marked; undefined without GPUs. */
  private async gpuProcesses(): Promise<Map<string, GpuProcess[]> | undefined> {
    if (this.probe.gpus.length === 0) return undefined;
    const apps = await probeComputeApps(this.opts.nvidiaSmi);
    const jobs: OwnedJob[] = [...this.jobs.entries()].map(([jobId, j]) => ({ jobId, pgid: j.pgid, containerId: j.containerId }));
    return describeGpuProcesses(apps, jobs, this.procReader);
  }

  private async leaseLoop(): Promise<void> {
    const backoff = new Backoff(500, 5_000);
    while (!this.stopping) {
      let lease: Lease | null;
      try {
        if (this.registering) await this.registering;
        lease = await this.client.lease(this.opts.hostId, this.opts.leaseWaitS, this.leaseAbort.signal);
        backoff.reset();
      } catch (err) {
        if (this.stopping) break;
        if (err instanceof ApiError && err.status === 401) {
          await this.reregister().catch(() => undefined);
          continue;
        }
        this.log(`lease: ${errorMessage(err)} (retrying in ${backoff.peek() / 1000} s)`);
        await this.pause(backoff.next());
        continue;
      }
      if (!lease) continue;
      if (this.stopping) {
        // Handed over while stopping: the dispatcher requeues it when no `running` comes.
        this.log(`job ${lease.job.id}: leased while stopping; not started`);
        break;
      }
      const current = this.jobs.get(lease.job.id);
      if (current && current.attempt === lease.attempt) continue;
      if (current) current.stop("stale");
      this.track(RunningJob.start(this.jobContext(), lease));
    }
  }

  private track(job: RunningJob): void {
    this.jobs.set(job.jobId, job);
    void job.done.then(() => {
      if (this.jobs.get(job.jobId) === job) {
        this.jobs.delete(job.jobId);
        this.syncedBytesDone += job.bytesSynced;
      }
    });
  }

  /** Sleeps, but wakes at once when the agent stops. */
  private async pause(ms: number): Promise<void> {
    if (this.stopping) return;
    await new Promise<void>((r) => {
      const wake = () => {
        clearTimeout(t);
        this.wakers.delete(wake);
        r();
      };
      const t = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  // ---- what jobs and the local server see ----

  /** How process jobs are held to their limits here: asked of systemd once per start. */
  private jobScopes(): Promise<ScopeSupport> {
    this.scopeSupport ??= detectScopeSupport().catch((err: unknown): ScopeSupport => ({ kind: "none", reason: `the systemd probe failed: ${errorMessage(err)}` }));
    return this.scopeSupport;
  }

  private jobContext(): JobContext {
    return {
      hostId: this.opts.hostId,
      hostname: hostname(),
      agentVersion,
      paths: this.paths,
      client: () => this.client,
      reregister: () => this.reregister(),
      gpus: () => this.probe.gpus,
      killGraceMs: this.opts.killGraceMs,
      syncIntervalMs: this.opts.syncIntervalMs,
      codeCache: () => (this.codeCache ??= new CodeCache({ dir: this.paths.codeCacheDir, maxBytes: this.opts.codeCacheBytes, log: this.log })),
      scopeSupport: () => this.jobScopes(),
      log: this.log,
      shutdownDeadline: () => this.shutdownBy,
    };
  }

  status() {
    return {
      hostId: this.opts.hostId,
      hostname: hostname(),
      agentVersion,
      dispatcherUrl: this.opts.url,
      registered: this.client.token !== undefined,
      labels: this.opts.labels,
      gpus: this.probe.gpus,
      gpuProblem: this.probe.problem ?? null,
      ...(this.hostStats ?? {}),
      runningJobs: [...this.jobs.values()].map((j) => ({
        id: j.jobId,
        attempt: j.attempt,
        name: j.lease.job.name,
        phase: j.phase,
        gpuIndices: j.lease.gpuIndices,
        pgid: j.pgid ?? null,
        containerId: j.containerId ?? null,
        startedAt: j.startedAt,
        timeoutS: j.lease.job.timeoutS,
        outputDir: j.outputDir,
      })),
    };
  }

  private localServerSource() {
    const metrics = createAgentMetrics({
      hostId: this.opts.hostId,
      agentVersion,
      probe: () => this.probe,
      host: () => this.hostStats,
      runningJobs: () => this.jobs.size,
      syncedBytes: () => this.syncedBytesDone + [...this.jobs.values()].reduce((n, j) => n + j.bytesSynced, 0),
    });
    return {
      agentToken: () => this.client.token,
      relayToken: () => this.relayToken,
      adminCheck: new AdminTokenCheck(this.opts.url, this.opts.adminTokens),
      status: () => this.status(),
      logFile: (jobId: string, attempt?: number) => {
        const running = this.jobs.get(jobId);
        if (running && (attempt === undefined || attempt === running.attempt)) {
          return { path: `${running.outputDir}/job.log`, active: () => this.jobs.get(jobId) === running && running.phase !== "finishing" };
        }
        const a = attempt ?? latestAttempt(this.paths, jobId);
        if (a === undefined) return undefined;
        const path = `${this.paths.outputDir(jobId, a)}/job.log`;
        return existsSync(path) ? { path, active: () => false } : undefined;
      },
      metrics: async () => ({ contentType: metrics.contentType, body: await metrics.metrics() }),
    };
  }
}

function latestAttempt(paths: AgentPaths, jobId: string): number | undefined {
  let names: string[];
  try {
    names = readdirSync(join(paths.jobsDir, jobId));
  } catch {
    return undefined;
  }
  const attempts = names.map((n) => /^attempt-(\d+)$/.exec(n)?.[1]).filter((a) => a !== undefined).map(Number);
  return attempts.length ? Math.max(...attempts) : undefined;
}
