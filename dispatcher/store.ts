// The dispatcher's durable state: jobs and agents in SQLite. Every job state change is one
// transaction that also records the transition, so a crash never leaves a half-made change.
import { randomBytes } from "node:crypto";
import { isTerminalJobState, jobStates, type Constraints, type Job, type JobState, type Priority, type RegisteredGpu, type ReportedJobState, type SubmitJob } from "../core/api.js";
import type { CodeSummary } from "../core/code.js";
import type { Db } from "./db.js";

export interface JobRow {
  id: string;
  seq: number;
  name: string;
  project: string;
  command: string;
  gpus: number;
  image: string | null;
  env: string;
  workdir: string | null;
  timeout_s: number | null;
  priority: Priority;
  max_retries: number;
  constraints: string;
  state: JobState;
  attempt: number;
  lost_count: number;
  host_id: string | null;
  gpu_indices: string;
  delivered_at: string | null;
  cancel_requested: number;
  cancelled_by: string | null;
  exit_code: number | null;
  reason: string | null;
  created_at: string;
  assigned_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  urgent: number;
  group_id: string | null;
  owner: string | null;
  code: string | null;
  cpus: number | null;
  memory_mib: number | null;
}

export interface AgentRow {
  host_id: string;
  hostname: string | null;
  token_hash: string;
  gpus: string;
  labels: string;
  agent_version: string | null;
  agent_url: string | null;
  draining: number;
  registered_at: string;
  last_seen_at: string | null;
  last_stats: string | null;
  relay_token: string | null;
}

export interface Transition {
  attempt: number;
  fromState: JobState | null;
  toState: JobState;
  hostId: string | null;
  message: string | null;
  at: string;
}

/** A job as the API shows it, with the fields the store keeps beyond the v1 schema. */
export type StoredJob = Job & { cancelRequested: boolean; deliveredAt: string | null; lostCount: number };

export function rowToJob(r: JobRow): StoredJob {
  return {
    id: r.id,
    name: r.name,
    project: r.project,
    command: JSON.parse(r.command),
    gpus: r.gpus,
    image: r.image,
    env: JSON.parse(r.env),
    workdir: r.workdir,
    timeoutS: r.timeout_s,
    priority: r.urgent === 1 ? "urgent" : r.priority,
    maxRetries: r.max_retries,
    constraints: JSON.parse(r.constraints),
    state: r.state,
    attempt: r.attempt,
    hostId: r.host_id,
    gpuIndices: JSON.parse(r.gpu_indices),
    exitCode: r.exit_code,
    reason: r.reason,
    createdAt: r.created_at,
    assignedAt: r.assigned_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    group: r.group_id,
    cancelledBy: r.cancelled_by ?? null,
    cancelRequested: r.cancel_requested === 1,
    deliveredAt: r.delivered_at,
    lostCount: r.lost_count,
    owner: r.owner,
    code: r.code === null ? null : (JSON.parse(r.code) as CodeSummary),
    ...(r.cpus !== null ? { cpus: r.cpus } : {}),
    ...(r.memory_mib !== null ? { memoryMiB: r.memory_mib } : {}),
  };
}

// Crockford's base32 in lower case: its digits sort in ASCII order, so ids sort by creation time.
const base32 = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_EPOCH_MS = Date.UTC(2024, 0, 1);

/**
 * A short, readable job id: 8 characters of milliseconds since 2024 (enough until 2058), then 2
 * random ones, e.g. `0c4h2m9qx7`. Ids of jobs made in different milliseconds sort by age.
 */
export function newJobId(nowMs = Date.now()): string {
  let t = Math.max(0, nowMs - ID_EPOCH_MS);
  let time = "";
  for (let i = 0; i < 8; i++) {
    time = base32[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const r = randomBytes(2);
  return time + base32[r[0]! & 31] + base32[r[1]! & 31];
}

export class StoreConflict extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly job?: StoredJob,
  ) {
    super(message);
  }
}

export interface JobFilter {
  states?: JobState[];
  project?: string;
  hostId?: string;
  group?: string;
  owner?: string;
  limit?: number;
}

export interface GroupRow {
  id: string;
  name: string;
  created_at: string;
}

/** An imported job: what insertJob takes plus its state, times and outcome where it came from. */
export type ImportedJobInput = NewJob & {
  externalId: string;
  state: JobState;
  reason?: string | null;
  exitCode?: number | null;
  hostId?: string | null;
  createdAt: string;
  startedAt?: string | null;
  endedAt?: string | null;
};

/** A job to insert: the request with its name, project and command settled. */
export type NewJob = Omit<SubmitJob, "command"> & { name: string; project: string; command: string | string[]; codeSummary?: CodeSummary; resources?: { cpus: number; memoryMiB: number } };

/** The priority column's value and the urgent flag (see migration 002_i14). */
function priorityColumns(p: Priority): { priority: Exclude<Priority, "urgent">; urgent: 0 | 1 } {
  return p === "urgent" ? { priority: "high", urgent: 1 } : { priority: p, urgent: 0 };
}

export interface JobPage {
  jobs: StoredJob[];
  /** How many jobs match the filter in all. */
  total: number;
  /** The cursor of the next page (the last job's seq), null on the last page. */
  nextCursor: string | null;
}

export class Store {
  private readonly stmts;

  constructor(readonly db: Db) {
    this.stmts = {
      getJob: db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE id = ?"),
      maxSeq: db.prepare("SELECT COALESCE(MAX(seq), 0) FROM jobs").pluck(),
      insertJob: db.prepare(`INSERT INTO jobs (id, seq, name, project, command, gpus, image, env, workdir, timeout_s, priority,
        max_retries, constraints, state, attempt, created_at, urgent, group_id, owner, code_snapshot, code, cpus, memory_mib)
        VALUES (@id, @seq, @name, @project, @command, @gpus, @image, @env, @workdir, @timeout_s, @priority, @max_retries,
        @constraints, 'queued', 1, @created_at, @urgent, @group_id, @owner, @code_snapshot, @code, @cpus, @memory_mib)`),
      usageRows: db.prepare<[string], { owner: string | null; gpus: number; started_at: string; ended_at: string | null }>(
        "SELECT owner, gpus, started_at, ended_at FROM jobs WHERE started_at IS NOT NULL AND (ended_at IS NULL OR ended_at >= ?)",
      ),
      insertConfig: db.prepare("INSERT INTO job_configs (job_id, yaml) VALUES (?, ?)"),
      getConfig: db.prepare<[string], unknown>("SELECT yaml FROM job_configs WHERE job_id = ?").pluck(),
      transition: db.prepare(`INSERT INTO job_transitions (job_id, attempt, from_state, to_state, host_id, message, at)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      transitions: db.prepare("SELECT attempt, from_state, to_state, host_id, message, at FROM job_transitions WHERE job_id = ? ORDER BY id"),
      queued: db.prepare<[], JobRow>("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq"),
      active: db.prepare<[], JobRow>("SELECT * FROM jobs WHERE state IN ('assigned', 'running')"),
      activeOnHost: db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE host_id = ? AND state IN ('assigned', 'running') ORDER BY seq"),
      nextUndelivered: db.prepare<[string], JobRow>(
        "SELECT * FROM jobs WHERE host_id = ? AND state = 'assigned' AND delivered_at IS NULL ORDER BY assigned_at, seq LIMIT 1",
      ),
      countByState: db.prepare<[], { state: JobState; n: number }>("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"),
      getAgent: db.prepare<[string], AgentRow>("SELECT * FROM agents WHERE host_id = ?"),
      allAgents: db.prepare<[], AgentRow>("SELECT * FROM agents ORDER BY host_id"),
      upsertAgent: db.prepare(`INSERT INTO agents (host_id, hostname, token_hash, gpus, labels, agent_version, agent_url, relay_token, registered_at, last_seen_at)
        VALUES (@host_id, @hostname, @token_hash, @gpus, @labels, @agent_version, @agent_url, @relay_token, @registered_at, @registered_at)
        ON CONFLICT (host_id) DO UPDATE SET hostname = excluded.hostname, token_hash = excluded.token_hash, gpus = excluded.gpus,
          labels = excluded.labels, agent_version = excluded.agent_version, agent_url = excluded.agent_url, relay_token = excluded.relay_token,
          registered_at = excluded.registered_at, last_seen_at = excluded.last_seen_at`),
      setDraining: db.prepare("UPDATE agents SET draining = ? WHERE host_id = ?"),
      resetAgentToken: db.prepare("UPDATE agents SET token_hash = ?, relay_token = NULL WHERE host_id = ?"),
      saveSeen: db.prepare("UPDATE agents SET last_seen_at = ?, last_stats = ? WHERE host_id = ?"),
    };
  }

  // ---- jobs: reads ----

  /** Jobs that ran (or run) since `since`: who, how many GPUs, from when to when; for fair share. */
  usageSince(since: Date): { owner: string | null; gpus: number; startedMs: number; endedMs: number | null }[] {
    return this.stmts.usageRows.all(since.toISOString()).map((r) => ({ owner: r.owner, gpus: r.gpus, startedMs: Date.parse(r.started_at), endedMs: r.ended_at ? Date.parse(r.ended_at) : null }));
  }

  getJob(id: string): StoredJob | undefined {
    const r = this.stmts.getJob.get(id);
    return r ? rowToJob(r) : undefined;
  }

  listJobs(f: JobFilter = {}): StoredJob[] {
    return this.listJobsPage(f).jobs;
  }

  /** Jobs newest first, `limit` at most (default 1000), those older than `beforeSeq` when given, and how many match in all. */
  listJobsPage(f: JobFilter & { beforeSeq?: number } = {}): JobPage {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.states?.length) {
      where.push(`state IN (${f.states.map(() => "?").join(",")})`);
      args.push(...f.states);
    }
    if (f.project) {
      where.push("project = ?");
      args.push(f.project);
    }
    if (f.hostId) {
      where.push("host_id = ?");
      args.push(f.hostId);
    }
    if (f.group) {
      where.push("group_id = ?");
      args.push(f.group);
    }
    if (f.owner) {
      where.push("owner = ?");
      args.push(f.owner);
    }
    const filter = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const total = this.db.prepare(`SELECT COUNT(*) FROM jobs ${filter}`).pluck().get(...args) as number;
    const limit = f.limit ?? 1000;
    const pageWhere = f.beforeSeq !== undefined ? [...where, "seq < ?"] : where;
    const pageArgs = f.beforeSeq !== undefined ? [...args, f.beforeSeq] : [...args];
    const sql = `SELECT * FROM jobs ${pageWhere.length ? `WHERE ${pageWhere.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...pageArgs, limit + 1) as JobRow[];
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return { jobs: page.map(rowToJob), total, nextCursor: more ? String(page[page.length - 1]!.seq) : null };
  }

  queuedJobs(): StoredJob[] {
    return this.stmts.queued.all().map(rowToJob);
  }

  activeJobs(): StoredJob[] {
    return this.stmts.active.all().map(rowToJob);
  }

  activeJobsOnHost(hostId: string): StoredJob[] {
    return this.stmts.activeOnHost.all(hostId).map(rowToJob);
  }

  transitions(jobId: string): Transition[] {
    return (this.stmts.transitions.all(jobId) as { attempt: number; from_state: JobState | null; to_state: JobState; host_id: string | null; message: string | null; at: string }[]).map(
      (t) => ({ attempt: t.attempt, fromState: t.from_state, toState: t.to_state, hostId: t.host_id, message: t.message, at: t.at }),
    );
  }

  countByState(): Record<JobState, number> {
    const counts = Object.fromEntries(jobStates.map((s) => [s, 0])) as Record<JobState, number>;
    for (const { state, n } of this.stmts.countByState.all()) counts[state] = n;
    return counts;
  }

  // ---- jobs: changes, one transaction each ----

  insertJob(req: NewJob & { owner?: string | null }, now = new Date(), groupId: string | null = null): StoredJob {
    return this.db.transaction(() => {
      let id = newJobId(now.getTime());
      // 1024 ids per millisecond; after a few collisions borrow the next millisecond.
      for (let tries = 1; this.stmts.getJob.get(id); tries++) id = newJobId(now.getTime() + Math.floor(tries / 8));
      const at = now.toISOString();
      this.stmts.insertJob.run({
        id,
        seq: (this.stmts.maxSeq.get() as number) + 1,
        name: req.name,
        project: req.project,
        command: JSON.stringify(req.command),
        gpus: req.gpus,
        image: req.image ?? null,
        env: JSON.stringify(req.env ?? {}),
        workdir: req.workdir ?? null,
        timeout_s: req.timeoutS ?? null,
        ...priorityColumns(req.priority),
        max_retries: req.maxRetries,
        constraints: JSON.stringify(req.constraints ?? {}),
        created_at: at,
        group_id: groupId,
        owner: req.owner ?? null,
        code_snapshot: req.codeSummary?.snapshot ?? null,
        code: req.codeSummary ? JSON.stringify(req.codeSummary) : null,
        cpus: req.resources?.cpus ?? null,
        memory_mib: req.resources?.memoryMiB ?? null,
      });
      if (req.config !== undefined) this.stmts.insertConfig.run(id, req.config);
      this.stmts.transition.run(id, 1, null, "queued", null, null, at);
      return this.getJob(id)!;
    })();
  }

  /** Assigns a queued job to a host's GPUs; returns undefined when the job is no longer queued. */
  assign(jobId: string, hostId: string, gpuIndices: number[], now = new Date()): StoredJob | undefined {
    return this.db.transaction(() => {
      const job = this.stmts.getJob.get(jobId);
      if (!job || job.state !== "queued") return undefined;
      const at = now.toISOString();
      this.db
        .prepare("UPDATE jobs SET state = 'assigned', host_id = ?, gpu_indices = ?, assigned_at = ?, delivered_at = NULL WHERE id = ?")
        .run(hostId, JSON.stringify(gpuIndices), at, jobId);
      this.stmts.transition.run(jobId, job.attempt, "queued", "assigned", hostId, `GPUs [${gpuIndices.join(",")}]`, at);
      return this.getJob(jobId);
    })();
  }

  /** Hands the oldest undelivered assignment of a host to its agent (marks it delivered). */
  takeNextAssignment(hostId: string, now = new Date()): StoredJob | undefined {
    return this.db.transaction(() => {
      const r = this.stmts.nextUndelivered.get(hostId);
      if (!r) return undefined;
      this.db.prepare("UPDATE jobs SET delivered_at = ? WHERE id = ?").run(now.toISOString(), r.id);
      return this.getJob(r.id);
    })();
  }

  /**
   * Applies a state an agent reports for an attempt. Throws StoreConflict when the attempt is not
   * the current one on that host, or the transition makes no sense.
   */
  applyAgentReport(
    jobId: string,
    hostId: string,
    report: { attempt: number; state: ReportedJobState; exitCode?: number | null; message?: string },
    now = new Date(),
  ): StoredJob {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r) throw new StoreConflict("not_found", `job ${jobId} does not exist`);
      if (r.host_id !== hostId || r.attempt !== report.attempt || (r.state !== "assigned" && r.state !== "running")) {
        throw new StoreConflict(
          "stale_attempt",
          `attempt ${report.attempt} of job ${jobId} on ${hostId} is not current (the job is ${r.state}, attempt ${r.attempt}${r.host_id ? ` on ${r.host_id}` : ""}); stop it`,
          rowToJob(r),
        );
      }
      const at = now.toISOString();
      if (report.state === "running") {
        if (r.state === "running") return rowToJob(r);
        this.db.prepare("UPDATE jobs SET state = 'running', started_at = ?, delivered_at = COALESCE(delivered_at, ?) WHERE id = ?").run(at, at, jobId);
      } else {
        // A cancelled job's reason names who asked, not the agent that carried it out.
        const reason =
          report.state === "cancelled" && r.cancelled_by
            ? `cancelled by ${r.cancelled_by}`
            : (report.message ?? (report.state === "failed" && report.exitCode != null ? `exit code ${report.exitCode}` : null));
        this.db
          .prepare("UPDATE jobs SET state = ?, exit_code = ?, reason = ?, ended_at = ?, started_at = COALESCE(started_at, ?) WHERE id = ?")
          .run(report.state, report.exitCode ?? null, reason, at, at, jobId);
      }
      this.stmts.transition.run(jobId, r.attempt, r.state, report.state, hostId, report.message ?? null, at);
      return this.getJob(jobId)!;
    })();
  }

  /**
   * Cancels a job. A queued job, or one assigned but not yet handed to its agent, ends at once; a
   * job an agent holds gets cancel_requested, and its agent is told in the next heartbeat. `by` is
   * the actor who asked ("the CLI", "the dashboard", "the dispatcher", a person), kept on the job.
   */
  cancel(jobId: string, by = "an API client", now = new Date()): StoredJob {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r) throw new StoreConflict("not_found", `job ${jobId} does not exist`);
      const at = now.toISOString();
      if (r.state === "queued" || (r.state === "assigned" && r.delivered_at === null)) {
        this.db.prepare("UPDATE jobs SET state = 'cancelled', reason = ?, cancelled_by = ?, ended_at = ? WHERE id = ?").run(`cancelled by ${by}`, by, at, jobId);
        this.stmts.transition.run(jobId, r.attempt, r.state, "cancelled", r.host_id, `cancelled by ${by}`, at);
      } else if (r.state === "assigned" || r.state === "running") {
        if (r.cancel_requested === 0) {
          this.db.prepare("UPDATE jobs SET cancel_requested = 1, cancelled_by = ? WHERE id = ?").run(by, jobId);
          this.stmts.transition.run(jobId, r.attempt, r.state, r.state, r.host_id, `cancel requested by ${by}`, at);
        }
      } else {
        throw new StoreConflict("already_ended", `job ${jobId} already ended (${r.state}); nothing to cancel`, rowToJob(r));
      }
      return this.getJob(jobId)!;
    })();
  }

  /** Queues an ended job again as a new attempt; `by` is the actor who asked, for the history. */
  retry(jobId: string, by = "an API client", now = new Date()): StoredJob {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r) throw new StoreConflict("not_found", `job ${jobId} does not exist`);
      if (!isTerminalJobState(r.state)) {
        throw new StoreConflict("not_ended", `job ${jobId} is ${r.state}; only an ended job can be retried (cancel it first)`, rowToJob(r));
      }
      this.requeueRow(r, `retried by ${by}`, now, false);
      return this.getJob(jobId)!;
    })();
  }

  /**
   * An agent lost the job (its host went silent, or it never started the job it was handed).
   * `countsAsRetry`: losing the host uses up one of maxRetries; when none remain the job fails
   * with reason `lost`.
   */
  loseJob(jobId: string, why: string, countsAsRetry: boolean, now = new Date()): StoredJob | undefined {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r || (r.state !== "assigned" && r.state !== "running")) return undefined;
      const at = now.toISOString();
      if (r.cancel_requested === 1) {
        this.db.prepare("UPDATE jobs SET state = 'cancelled', reason = ?, ended_at = ? WHERE id = ?").run(`cancelled by ${r.cancelled_by ?? "an API client"}; ${why}`, at, jobId);
        this.stmts.transition.run(jobId, r.attempt, r.state, "cancelled", r.host_id, why, at);
      } else if (countsAsRetry && r.lost_count >= r.max_retries) {
        this.db.prepare("UPDATE jobs SET state = 'failed', reason = 'lost', ended_at = ? WHERE id = ?").run(at, jobId);
        this.stmts.transition.run(jobId, r.attempt, r.state, "failed", r.host_id, `lost: ${why}`, at);
      } else {
        this.requeueRow(r, why, now, countsAsRetry);
      }
      return this.getJob(jobId);
    })();
  }

  /**
   * A queued attempt that ended outside labrig before it ever ran (its Slurm job left Slurm's queue
   * without claiming it): a new attempt while retries remain, each using one up, else failed with
   * `why`. Undefined when the job is no longer queued at that attempt.
   */
  endUnstartedAttempt(jobId: string, attempt: number, why: string, now = new Date()): StoredJob | undefined {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r || r.state !== "queued" || r.attempt !== attempt) return undefined;
      if (r.lost_count >= r.max_retries) {
        const at = now.toISOString();
        this.db.prepare("UPDATE jobs SET state = 'failed', reason = ?, ended_at = ? WHERE id = ?").run(why, at, jobId);
        this.stmts.transition.run(jobId, r.attempt, r.state, "failed", r.host_id, why, at);
      } else {
        this.requeueRow(r, why, now, true);
      }
      return this.getJob(jobId);
    })();
  }

  /**
   * Ends a running attempt as timed_out at the dispatcher's word (its agent did not report the end
   * in time). Returns undefined when the job is no longer running.
   */
  timeOutJob(jobId: string, why: string, now = new Date()): StoredJob | undefined {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r || r.state !== "running") return undefined;
      const at = now.toISOString();
      this.db.prepare("UPDATE jobs SET state = 'timed_out', reason = ?, ended_at = ? WHERE id = ?").run(why, at, jobId);
      this.stmts.transition.run(jobId, r.attempt, r.state, "timed_out", r.host_id, why, at);
      return this.getJob(jobId);
    })();
  }

  private requeueRow(r: JobRow, why: string, now: Date, countsAsRetry: boolean) {
    const at = now.toISOString();
    this.db
      .prepare(`UPDATE jobs SET state = 'queued', attempt = attempt + 1, lost_count = lost_count + ?, host_id = NULL, gpu_indices = '[]',
        delivered_at = NULL, cancel_requested = 0, cancelled_by = NULL, exit_code = NULL, reason = NULL, assigned_at = NULL, started_at = NULL, ended_at = NULL
        WHERE id = ?`)
      .run(countsAsRetry ? 1 : 0, r.id);
    this.stmts.transition.run(r.id, r.attempt + 1, r.state, "queued", r.host_id, why, at);
  }

  setPriority(jobId: string, priority: Priority): StoredJob {
    return this.db.transaction(() => {
      const r = this.stmts.getJob.get(jobId);
      if (!r) throw new StoreConflict("not_found", `job ${jobId} does not exist`);
      if (r.state !== "queued") throw new StoreConflict("not_queued", `job ${jobId} is ${r.state}; only a queued job's priority can change`, rowToJob(r));
      const cols = priorityColumns(priority);
      this.db.prepare("UPDATE jobs SET priority = ?, urgent = ? WHERE id = ?").run(cols.priority, cols.urgent, jobId);
      return this.getJob(jobId)!;
    })();
  }

  // ---- CVLab-Kit configs, groups, imports ----

  /** The YAML stored with a job, exactly as submitted. */
  jobConfig(jobId: string): string | undefined {
    return this.stmts.getConfig.get(jobId) as string | undefined;
  }

  /** A sweep: the group and all its jobs, in one transaction. */
  insertGroup(name: string, jobs: NewJob[], now = new Date()): { group: GroupRow; jobs: StoredJob[] } {
    return this.db.transaction(() => {
      let id = `g${newJobId(now.getTime())}`;
      while (this.getGroup(id)) id = `g${newJobId(now.getTime())}`;
      this.db.prepare("INSERT INTO job_groups (id, name, created_at) VALUES (?, ?, ?)").run(id, name, now.toISOString());
      const inserted = jobs.map((j) => this.insertJob(j, now, id));
      return { group: this.getGroup(id)!, jobs: inserted };
    })();
  }

  getGroup(id: string): GroupRow | undefined {
    return this.db.prepare<[string], GroupRow>("SELECT * FROM job_groups WHERE id = ?").get(id);
  }

  groupJobs(id: string): StoredJob[] {
    return this.db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE group_id = ? ORDER BY seq").all(id).map(rowToJob);
  }

  /**
   * Cancels every job of a group that has not ended, in one transaction; returns the jobs that
   * changed. Ended jobs stay as they are.
   */
  cancelGroup(id: string, by: string, now = new Date()): StoredJob[] {
    return this.db.transaction(() => {
      if (!this.getGroup(id)) throw new StoreConflict("not_found", `group ${id} does not exist`);
      return this.groupJobs(id)
        .filter((j) => !isTerminalJobState(j.state))
        .map((j) => this.cancel(j.id, by, now));
    })();
  }

  /** Queues again every job of a group that failed, was cancelled or timed out, in one transaction. */
  retryGroup(id: string, by: string, now = new Date()): StoredJob[] {
    return this.db.transaction(() => {
      if (!this.getGroup(id)) throw new StoreConflict("not_found", `group ${id} does not exist`);
      return this.groupJobs(id)
        .filter((j) => isTerminalJobState(j.state) && j.state !== "succeeded")
        .map((j) => this.retry(j.id, by, now));
    })();
  }

  /** The labrig job an earlier import made of `externalId`, if any. */
  importedJobId(source: string, externalId: string): string | undefined {
    return this.db.prepare("SELECT job_id FROM job_imports WHERE source = ? AND external_id = ?").pluck().get(source, externalId) as string | undefined;
  }

  /**
   * Inserts a job from another queue's history in the state it had there, with its own times, in
   * one transaction with its import record. Only queued and ended states can be imported: a job
   * running elsewhere is not running here.
   */
  insertImported(source: string, j: ImportedJobInput, now = new Date()): StoredJob {
    return this.db.transaction(() => {
      if (j.state === "assigned" || j.state === "running") throw new StoreConflict("bad_state", `${j.externalId}: a job cannot be imported as ${j.state}`);
      const job = this.insertJob(j, new Date(j.createdAt));
      if (j.state !== "queued") {
        const ended = j.endedAt ?? j.startedAt ?? j.createdAt;
        this.db
          .prepare("UPDATE jobs SET state = ?, reason = ?, exit_code = ?, host_id = ?, started_at = ?, ended_at = ? WHERE id = ?")
          .run(j.state, j.reason ?? null, j.exitCode ?? null, j.hostId ?? null, j.startedAt ?? null, ended, job.id);
        this.stmts.transition.run(job.id, 1, "queued", j.state, j.hostId ?? null, j.reason ?? `imported from ${source}`, ended);
      }
      this.db.prepare("INSERT INTO job_imports (source, external_id, job_id, imported_at) VALUES (?, ?, ?, ?)").run(source, j.externalId, job.id, now.toISOString());
      return this.getJob(job.id)!;
    })();
  }

  // ---- agents ----

  getAgent(hostId: string): AgentRow | undefined {
    return this.stmts.getAgent.get(hostId);
  }

  allAgents(): AgentRow[] {
    return this.stmts.allAgents.all();
  }

  upsertAgent(a: {
    hostId: string;
    hostname?: string;
    tokenHash: string;
    gpus: RegisteredGpu[];
    labels: Record<string, string>;
    agentVersion?: string;
    agentUrl?: string;
    relayToken?: string;
    now?: Date;
  }): AgentRow {
    this.stmts.upsertAgent.run({
      host_id: a.hostId,
      hostname: a.hostname ?? null,
      token_hash: a.tokenHash,
      gpus: JSON.stringify(a.gpus),
      labels: JSON.stringify(a.labels),
      agent_version: a.agentVersion ?? null,
      agent_url: a.agentUrl ?? null,
      relay_token: a.relayToken ?? null,
      registered_at: (a.now ?? new Date()).toISOString(),
    });
    return this.getAgent(a.hostId)!;
  }

  setDraining(hostId: string, draining: boolean): void {
    this.stmts.setDraining.run(draining ? 1 : 0, hostId);
  }

  /** Makes a host's agent token unusable (an admin's reset): `tokenHash` is a marker no token hashes to. */
  resetAgentToken(hostId: string, tokenHash: string): void {
    this.stmts.resetAgentToken.run(tokenHash, hostId);
  }

  /** Persists when agents were last seen and their last stats, many in one transaction. */
  saveSeen(rows: { hostId: string; lastSeenAt: string; stats: unknown }[]): void {
    if (rows.length === 0) return;
    this.db.transaction(() => {
      for (const r of rows) this.stmts.saveSeen.run(r.lastSeenAt, JSON.stringify(r.stats), r.hostId);
    })();
  }
}

export type { Constraints };
