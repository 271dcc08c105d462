// Starts the dispatcher: state dir, tokens, database, service, HTTP server; writes
// dispatcher.json once listening and shuts down cleanly on SIGTERM/SIGINT.
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, writeFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputError } from "../core/errors.js";
import { codeLimitFromEnv } from "../core/code.js";
import { mibFromEnv } from "../core/config.js";
import { CodeStore } from "./code-store.js";
import { DEFAULT_RESOURCES, type ResourceSettings } from "./resources.js";
import { CVLAB_QUEUE_COMMAND } from "./cvlab.js";
import { openDatabase } from "./db.js";
import { createMetrics } from "./metrics.js";
import { PeopleStore } from "./people.js";
import { backupScheduleFromEnv, startScheduledBackup } from "./scheduled-backup.js";
import { buildServer, DEFAULT_SYNC_BODY_LIMIT } from "./server.js";
import { DispatcherService, type ServiceConfig } from "./service.js";
import { Store } from "./store.js";
import { SyncStore } from "./sync-store.js";
import { loadOrCreateToken } from "./tokens.js";
import { SlurmDriver, type SlurmDriverOptions } from "./slurm-driver.js";
import { SlurmViewReader } from "./slurm-view.js";
import { parseProxyJump, ProxyJumpError } from "../provision/proxy-jump.js";
import { SshRemote, type SshTarget } from "../provision/ssh-remote.js";

export interface DispatcherOptions {
  port: number;
  bind: string;
  state: string;
  queueCommand?: string;
}

export function configFromEnv(env: NodeJS.ProcessEnv, queueCommand?: string): ServiceConfig {
  const num = (name: string, def: number) => {
    const v = env[name];
    if (v === undefined || v === "") return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InputError(name, `expected a positive number of seconds, got '${v}'`);
    return n;
  };
  const staleAfterS = num("LABRIG_STALE_AFTER_S", 10);
  const disconnectAfterS = num("LABRIG_DISCONNECT_AFTER_S", 30);
  if (disconnectAfterS <= staleAfterS) {
    throw new InputError("LABRIG_DISCONNECT_AFTER_S", `must be larger than LABRIG_STALE_AFTER_S (${disconnectAfterS} <= ${staleAfterS})`);
  }
  const lostAfterS = num("LABRIG_LOST_AFTER_S", Math.max(600, disconnectAfterS));
  if (lostAfterS < disconnectAfterS) {
    throw new InputError("LABRIG_LOST_AFTER_S", `must be at least LABRIG_DISCONNECT_AFTER_S (${lostAfterS} < ${disconnectAfterS}): a host is disconnected before its jobs are lost`);
  }
  const heartbeatIntervalS = num("LABRIG_HEARTBEAT_S", 3);
  const missingGraceS = num("LABRIG_MISSING_GRACE_S", Math.max(30, 3 * heartbeatIntervalS));
  if (missingGraceS <= heartbeatIntervalS) {
    throw new InputError("LABRIG_MISSING_GRACE_S", `must be longer than LABRIG_HEARTBEAT_S (${missingGraceS} <= ${heartbeatIntervalS}), or a job just handed out would count as lost`);
  }
  return {
    staleAfterMs: staleAfterS * 1000,
    disconnectAfterMs: disconnectAfterS * 1000,
    lostAfterMs: lostAfterS * 1000,
    missingGraceMs: missingGraceS * 1000,
    timeoutGraceMs: num("LABRIG_TIMEOUT_GRACE_S", 120) * 1000,
    heartbeatIntervalS,
    assignTimeoutMs: num("LABRIG_ASSIGN_TIMEOUT_S", 60) * 1000,
    queueCommand: queueCommand ?? env.LABRIG_QUEUE_COMMAND ?? CVLAB_QUEUE_COMMAND,
    cvlabDir: env.LABRIG_CVLAB_DIR || undefined,
    persistSeenEveryMs: 2000,
    resources: resourcesFromEnv(env),
    scheduler: schedulerFromEnv(env),
  };
}

/** LABRIG_SCHEDULER: `labrig` (default) or `slurm`. */
export function schedulerFromEnv(env: NodeJS.ProcessEnv): "labrig" | "slurm" {
  const v = env.LABRIG_SCHEDULER;
  if (v === undefined || v === "" || v === "labrig") return "labrig";
  if (v === "slurm") return "slurm";
  throw new InputError("LABRIG_SCHEDULER", `expected labrig or slurm, got '${v}'`);
}

/** How the dispatcher reaches Slurm: the controller over SSH, and the URL compute nodes reach the dispatcher at. */
export interface SlurmSettings {
  target: SshTarget;
  knownHostsFile: string;
  claimUrl: string;
}

/**
 * With LABRIG_SCHEDULER=slurm: LABRIG_SLURM_SSH (user@host[:port] of the controller),
 * LABRIG_SLURM_IDENTITY (its key file; else the SSH agent), LABRIG_SLURM_KNOWN_HOSTS (where the
 * controller's host key is pinned: an unattended dispatcher never trusts a key on first sight)
 * and LABRIG_SLURM_DISPATCHER_URL (this dispatcher as the compute nodes reach it). Undefined
 * with labrig's own scheduler.
 */
export function slurmSettingsFromEnv(env: NodeJS.ProcessEnv): SlurmSettings | undefined {
  if (schedulerFromEnv(env) !== "slurm") return undefined;
  const required = (name: string, what: string) => {
    const v = env[name]?.trim();
    if (!v) throw new InputError(name, `required with LABRIG_SCHEDULER=slurm: ${what}`);
    return v;
  };
  const readable = (name: string, file: string) => {
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      throw new InputError(name, `cannot read ${file} (${(err as NodeJS.ErrnoException).code})`, { cause: err });
    }
  };
  const ssh = required("LABRIG_SLURM_SSH", "user@host[:port] of the Slurm controller, where sbatch and scancel run");
  let hops;
  try {
    hops = parseProxyJump(ssh);
  } catch (err) {
    if (err instanceof ProxyJumpError) throw new InputError("LABRIG_SLURM_SSH", `'${ssh}' is not user@host[:port]`, { cause: err });
    throw err;
  }
  const hop = hops[0];
  if (hops.length !== 1 || !hop?.user) throw new InputError("LABRIG_SLURM_SSH", `'${ssh}' is not user@host[:port] (one host, with its user)`);
  const identityFile = env.LABRIG_SLURM_IDENTITY?.trim() || undefined;
  if (identityFile) readable("LABRIG_SLURM_IDENTITY", identityFile);
  else if (!env.SSH_AUTH_SOCK) throw new InputError("LABRIG_SLURM_IDENTITY", "required with LABRIG_SCHEDULER=slurm when no SSH agent runs (SSH_AUTH_SOCK): the key file that logs in to the controller");
  const knownHostsFile = required("LABRIG_SLURM_KNOWN_HOSTS", "the known_hosts file with the controller's host key (labrig provision pins it)");
  readable("LABRIG_SLURM_KNOWN_HOSTS", knownHostsFile);
  const claimUrl = required("LABRIG_SLURM_DISPATCHER_URL", "this dispatcher's URL as the compute nodes reach it, e.g. http://nas:8000");
  let url: URL;
  try {
    url = new URL(claimUrl);
  } catch (err) {
    throw new InputError("LABRIG_SLURM_DISPATCHER_URL", `'${claimUrl}' is not a URL`, { cause: err });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InputError("LABRIG_SLURM_DISPATCHER_URL", `'${claimUrl}' is not an http(s) URL`);
  return { target: { host: `slurm controller ${hop.address}`, address: hop.address, port: hop.port, user: hop.user, ...(identityFile ? { identityFile } : {}) }, knownHostsFile, claimUrl };
}

/** Jobs' default cores and memory, and fair share's half-life: LABRIG_CPUS_PER_GPU … LABRIG_FAIR_SHARE_HALF_LIFE_DAYS. */
export function resourcesFromEnv(env: NodeJS.ProcessEnv): ResourceSettings {
  const num = (name: string, def: number) => {
    const v = env[name];
    if (v === undefined || v === "") return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InputError(name, `expected a positive number, got '${v}'`);
    return n;
  };
  const d = DEFAULT_RESOURCES;
  return {
    cpusPerGpu: num("LABRIG_CPUS_PER_GPU", d.cpusPerGpu),
    memoryGiBPerGpu: num("LABRIG_MEMORY_GIB_PER_GPU", d.memoryGiBPerGpu),
    gpulessCpus: num("LABRIG_GPULESS_CPUS", d.gpulessCpus),
    gpulessMemoryGiB: num("LABRIG_GPULESS_MEMORY_GIB", d.gpulessMemoryGiB),
    fairShareHalfLifeMs: num("LABRIG_FAIR_SHARE_HALF_LIFE_DAYS", d.fairShareHalfLifeMs / 86_400_000) * 86_400_000,
  };
}

/** The URL local tools reach the dispatcher at: loopback when it listens on every address. */
export function advertisedUrl(bind: string, port: number): string {
  const host = bind === "0.0.0.0" || bind === "::" ? "127.0.0.1" : bind;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** LABRIG_SYNC_BODY_LIMIT_MB: the largest sync upload in bytes. */
export const syncBodyLimitFromEnv = (env: NodeJS.ProcessEnv): number => mibFromEnv(env, "LABRIG_SYNC_BODY_LIMIT_MB", DEFAULT_SYNC_BODY_LIMIT);


/** How long a snapshot no job uses is kept (it is offered before its job is submitted): LABRIG_CODE_KEEP_UNUSED_S, default 1 h. */
export function codeKeepUnusedMsFromEnv(env: NodeJS.ProcessEnv): number {
  const v = env.LABRIG_CODE_KEEP_UNUSED_S;
  if (v === undefined || v === "") return 3600_000;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InputError("LABRIG_CODE_KEEP_UNUSED_S", `expected a number of seconds >= 0, got '${v}'`);
  return n * 1000;
}

const CODE_COLLECT_EVERY_MS = 10 * 60_000;

/**
 * The state dir holds env secrets (labrig.db, runs/) and tokens: folders 0700 and files 0600,
 * also when they existed before with looser modes. New files get them through the umask.
 */
export function secureStateDir(stateDir: string): void {
  process.umask(0o077);
  mkdirSync(join(stateDir, "runs"), { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  chmodSync(join(stateDir, "runs"), 0o700);
  for (const f of ["labrig.db", "labrig.db-wal", "labrig.db-shm", "admin-token", "join-token", "dispatcher.json"]) {
    if (existsSync(join(stateDir, f))) chmodSync(join(stateDir, f), 0o600);
  }
}

/** A dispatcher put together over its state dir, not yet listening: what runDispatcher serves, and what in-process tests `inject` into. */
export interface OpenDispatcher {
  app: FastifyInstance;
  service: DispatcherService;
  stateDir: string;
  admin: { token: string; file: string; generated: boolean };
  join: { token: string; file: string; generated: boolean };
  /** Submits and cancels Slurm jobs, with LABRIG_SCHEDULER=slurm (started by runDispatcher). */
  slurm?: SlurmDriver;
  /** Stops the service and the code collector, closes the server and checkpoints and closes the database. */
  close(): Promise<void>;
}

/**
 * Opens the state dir, database, stores and service and builds the HTTP server, with settings from
 * `env`. `slurmRemote` stands in for the SSH connection to the Slurm controller (tests).
 */
export function openDispatcher(state: string, env: NodeJS.ProcessEnv, queueCommand?: string, slurmRemote?: SlurmDriverOptions["remote"]): OpenDispatcher {
  const stateDir = resolve(state);
  secureStateDir(stateDir);
  const syncBodyLimit = syncBodyLimitFromEnv(env);
  const codeLimit = codeLimitFromEnv(env);
  const codeKeepUnusedMs = codeKeepUnusedMsFromEnv(env);
  const config = configFromEnv(env, queueCommand);
  const slurmSettings = slurmSettingsFromEnv(env);
  const admin = loadOrCreateToken(stateDir, "admin-token", env.LABRIG_ADMIN_TOKEN);
  const join_ = loadOrCreateToken(stateDir, "join-token", env.LABRIG_JOIN_TOKEN);

  const db = openDatabase(join(stateDir, "labrig.db"));
  secureStateDir(stateDir); // the WAL and shm files the open just made
  const store = new Store(db);
  const service = new DispatcherService(store, new SyncStore(db, join(stateDir, "runs")), config);
  const metrics = createMetrics(service);
  service.observer = { leased: (_job, waitedMs) => metrics.dispatchLatency.observe(waitedMs / 1000) };
  const code = new CodeStore(db, join(stateDir, "code"), codeLimit);
  const collectCode = () => {
    const r = code.collect(codeKeepUnusedMs);
    if (r.snapshots || r.blobs) console.log(`labrig dispatcher: removed ${r.snapshots} code snapshot(s) no job uses and ${r.blobs} blob(s), ${r.bytes} bytes`);
  };
  collectCode();
  const collector = setInterval(collectCode, Math.min(CODE_COLLECT_EVERY_MS, Math.max(1000, codeKeepUnusedMs)));
  collector.unref();
  const people = new PeopleStore(db);
  service.people = people;
  // One SSH connection to the controller: the driver's sbatch/scancel and the view's sinfo/squeue share it.
  let slurm: SlurmDriver | undefined;
  let slurmView: SlurmViewReader | undefined;
  if (slurmSettings) {
    const controller = slurmRemote ?? new SshRemote(slurmSettings.target, { knownHostsFile: slurmSettings.knownHostsFile, pinNew: false });
    const reader = (slurmView = new SlurmViewReader(controller));
    slurm = new SlurmDriver(service, { remote: controller, claimUrl: slurmSettings.claimUrl, slurmView: () => reader.snapshot() });
  }
  const app = buildServer({ service, people, metrics, adminToken: admin.token, joinToken: join_.token, syncBodyLimit, code, instanceId: instanceIdOf(admin.token), ...(slurmView ? { slurmView: slurmView.view.bind(slurmView) } : {}) });
  return {
    app,
    service,
    stateDir,
    admin,
    join: join_,
    ...(slurm ? { slurm } : {}),
    async close() {
      await slurm?.stop();
      clearInterval(collector);
      service.close();
      await app.close();
      db.pragma("wal_checkpoint(TRUNCATE)");
      db.close();
    },
  };
}

export async function runDispatcher(opts: DispatcherOptions): Promise<void> {
  const scheduledBackup = backupScheduleFromEnv(process.env, resolve(opts.state));
  const { app, service, stateDir, admin, join: join_, slurm, close } = openDispatcher(opts.state, process.env, opts.queueCommand);

  await app.listen({ port: opts.port, host: opts.bind });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  const url = advertisedUrl(opts.bind, port);
  service.start();
  slurm?.start();

  const info = join(stateDir, "dispatcher.json");
  writeFileSync(`${info}.tmp`, JSON.stringify({ url, port, bind: opts.bind, pid: process.pid, startedAt: new Date().toISOString() }, null, 2), { mode: 0o600 });
  renameSync(`${info}.tmp`, info);
  console.log(`labrig dispatcher listening on ${url} (bound to ${opts.bind}; state in ${stateDir})${slurm ? "; Slurm schedules its jobs" : ""}`);
  if (admin.generated) console.log(`admin token (written to ${admin.file}, shown once): ${admin.token}`);
  if (join_.generated) console.log(`join token for agents (written to ${join_.file}, shown once): ${join_.token}`);
  const stopScheduledBackup = scheduledBackup ? startScheduledBackup(scheduledBackup, (line) => console.log(line)) : () => undefined;

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`labrig dispatcher: ${signal}, stopping (no new leases, finishing requests)`);
    // The contract is an exit within 10 s; whatever still hangs after 8 s is cut off.
    const force = setTimeout(() => {
      console.error("labrig dispatcher: did not stop within 8 s, exiting");
      process.exit(1);
    }, 8000);
    force.unref();
    stopScheduledBackup();
    await close();
    console.log("labrig dispatcher: stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

/**
 * Names this dispatcher (its state dir) without revealing anything: agents keep it beside their
 * agent token, so a dispatcher that moved to another address or port still gets the token, and
 * another dispatcher never does.
 */
function instanceIdOf(adminToken: string): string {
  return createHash("sha256").update(`labrig-instance:${adminToken}`).digest("hex").slice(0, 16);
}
