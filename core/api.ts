// The dispatcher's HTTP API v1: every request body and response shape, shared by the dispatcher,
// the agent, the CLI and the TUI so that a contract change breaks the build where it matters.
import { z } from "zod";
import { codeSummarySchema, sha256Schema } from "./code.js";

export const API_VERSION = 1;

export const HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const hostIdSchema = z.string().regex(HOST_ID_PATTERN, "host id: letters, digits, '.', '_' or '-', at most 63");

export const jobStates = ["queued", "assigned", "running", "succeeded", "failed", "cancelled", "timed_out"] as const;
export type JobState = (typeof jobStates)[number];
export const terminalJobStates: readonly JobState[] = ["succeeded", "failed", "cancelled", "timed_out"];
export const isTerminalJobState = (s: JobState) => terminalJobStates.includes(s);

export const deviceStatuses = ["healthy", "stale", "disconnected", "draining"] as const;
export type DeviceStatus = (typeof deviceStatuses)[number];

/** `urgent` (above high) is CVLab-Kit's top level; only admins may ask for it. */
export const priorities = ["low", "normal", "high", "urgent"] as const;
export type Priority = (typeof priorities)[number];

const labelsSchema = z.record(z.string(), z.string());

/** Names that become folder names or are printed to terminals: a safe set, never "." or "..". */
export const SAFE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const projectNameSchema = z.string().regex(SAFE_NAME_PATTERN, "project: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
export const personNameSchema = z.string().regex(SAFE_NAME_PATTERN, "name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
// C0 and C1 control characters (ESC, BEL, CR, ...): in a name they would reach an operator's terminal.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
export const jobNameSchema = z
  .string()
  .min(1)
  .max(200)
  .refine((s) => !CONTROL_CHARS.test(s), "name: no control characters")
  .refine((s) => s.trim() !== "." && s.trim() !== "..", "name: not '.' or '..'");
const envSchema = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names: letters, digits and '_'"), z.string());

// ---- agents ----

export const registeredGpuSchema = z.object({
  index: z.number().int().min(0),
  uuid: z.string(),
  name: z.string(),
  memoryTotalMiB: z.number().min(0),
});
export type RegisteredGpu = z.infer<typeof registeredGpuSchema>;

export const registerRequestSchema = z.object({
  hostId: hostIdSchema,
  hostname: z.string().optional(),
  gpus: z.array(registeredGpuSchema),
  labels: labelsSchema.optional(),
  agentVersion: z.string().optional(),
  agentUrl: z.string().optional(),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

export const registerResponseSchema = z.object({
  agentToken: z.string(),
  heartbeatIntervalS: z.number(),
  /** What the dispatcher shows this agent's local server when it relays a live log; the agent accepts it there. */
  relayToken: z.string().optional(),
});
export type RegisterResponse = z.infer<typeof registerResponseSchema>;

/** A compute process on a GPU, as the host's agent saw it (nvidia-smi and /proc). */
export const gpuProcessSchema = z.object({
  pid: z.number().int().positive(),
  usedMemoryMiB: z.number().min(0).nullable(),
  /** Its owner's user name (a uid where the host has no name for it); null when unreadable. */
  user: z.string().max(64).nullable(),
  /** Its command line, cut short; null when unreadable. */
  command: z.string().max(200).nullable(),
  /** The labrig job it belongs to; null for a process outside labrig, which keeps the GPU busy. */
  jobId: z.string().max(64).nullable(),
});
export type GpuProcess = z.infer<typeof gpuProcessSchema>;

export const gpuStatsSchema = z.object({
  index: z.number().int().min(0),
  utilizationPct: z.number().nullable().optional(),
  memoryUsedMiB: z.number().nullable().optional(),
  memoryTotalMiB: z.number().nullable().optional(),
  temperatureC: z.number().nullable().optional(),
  powerW: z.number().nullable().optional(),
  /** The compute processes on this GPU; absent from agents that do not look (older ones). */
  processes: z.array(gpuProcessSchema).max(64).optional(),
});
export type GpuStats = z.infer<typeof gpuStatsSchema>;

export const heartbeatRequestSchema = z.object({
  gpus: z.array(gpuStatsSchema),
  cpuPct: z.number().optional(),
  memoryUsedMiB: z.number().optional(),
  memoryTotalMiB: z.number().optional(),
  diskFreeGiB: z.number().optional(),
  /** CPU cores jobs may use on this host (the agent's view: cgroup limit, else online CPUs). */
  cpuCount: z.number().positive().optional(),
  runningJobs: z.array(z.string()).optional(),
  gpuProblem: z.string().optional(),
});
export type HeartbeatRequest = z.infer<typeof heartbeatRequestSchema>;

export const heartbeatResponseSchema = z.object({
  cancel: z.array(z.string()),
});
export type HeartbeatResponse = z.infer<typeof heartbeatResponseSchema>;

// ---- jobs ----

export const constraintsSchema = z.object({
  hostId: hostIdSchema.optional(),
  labels: labelsSchema.optional(),
  gpuName: z.string().optional(),
  minMemoryMiB: z.number().int().min(0).optional(),
});
export type Constraints = z.infer<typeof constraintsSchema>;

/** The same rule as projectNameSchema (CVLab-Kit paths use this name). */
export const projectSchema = projectNameSchema;
/**
 * The longest timeout a job may ask for: 30 days. Agents and the dispatcher both enforce it with
 * timers that hold any delay up to this (core/long-timer.ts), so a longer one is refused, not cut.
 */
export const MAX_JOB_TIMEOUT_S = 30 * 24 * 3600;

/**
 * A submission is strict: a key this API does not have (`gpu` for `gpus`, `constraints.hostid`) is
 * refused by name rather than dropped, which would run the job with the default in its place.
 */
export const submitJobRequestSchema = z.strictObject({
  name: jobNameSchema.optional(),
  project: projectNameSchema.optional(),
  /** Required unless `config` is given: then the lab's CVLab-Kit command runs (the dispatcher's queue command). */
  command: z.union([z.array(z.string()).min(1), z.string().min(1)]).optional(),
  /** A CVLab-Kit experiment YAML, stored with the job and written next to it; `{config_path}` in the command is its path. */
  config: z.string().min(1).max(1024 * 1024).optional(),
  gpus: z.number().int().min(0).max(64).default(1),
  /** CPU cores the job needs (default: the lab's per-GPU figure times gpus, or its GPU-less figure). */
  cpus: z.number().min(0.1).max(1024).optional(),
  /** Memory the job needs, in GiB (default as for cpus). */
  memoryGiB: z.number().min(0.1).max(16_384).optional(),
  image: z.string().min(1).optional(),
  env: envSchema.optional(),
  workdir: z.string().optional(),
  timeoutS: z
    .number()
    .int()
    .positive()
    .max(MAX_JOB_TIMEOUT_S, `at most ${MAX_JOB_TIMEOUT_S} s (30 days), the longest timeout labrig enforces`)
    .optional(),
  priority: z.enum(priorities).default("normal"),
  maxRetries: z.number().int().min(0).max(100).default(0),
  constraints: constraintsSchema.strict().optional(),
  /**
   * A code snapshot (its id from `POST /api/code/snapshots`): the job runs in that tree on its
   * host, in `workdir` inside it when given.
   */
  code: sha256Schema.optional(),
});
export type SubmitJobRequest = z.input<typeof submitJobRequestSchema>;
export type SubmitJob = z.output<typeof submitJobRequestSchema>;

export const jobSchema = z.object({
  id: z.string(),
  name: z.string(),
  project: z.string(),
  command: z.union([z.array(z.string()), z.string()]),
  gpus: z.number(),
  /** CPU cores and memory the job holds on its host (defaults applied); absent from dispatchers before they were tracked. */
  cpus: z.number().optional(),
  memoryMiB: z.number().optional(),
  image: z.string().nullable(),
  env: z.record(z.string(), z.string()),
  workdir: z.string().nullable(),
  timeoutS: z.number().nullable(),
  priority: z.enum(priorities),
  maxRetries: z.number(),
  constraints: constraintsSchema,
  state: z.enum(jobStates),
  attempt: z.number(),
  hostId: z.string().nullable(),
  gpuIndices: z.array(z.number()),
  exitCode: z.number().nullable(),
  reason: z.string().nullable(),
  createdAt: z.string(),
  assignedAt: z.string().nullable(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  /** The sweep group the job belongs to. */
  group: z.string().nullable().optional(),
  /** Whether a CVLab-Kit config is stored with the job (`GET /api/jobs/{id}/config`). */
  hasConfig: z.boolean().optional(),
  /** Who submitted it (a person's name; "admin" for the state dir's admin token); null for jobs from before people existed. */
  owner: z.string().nullable().optional(),
  /** Who asked to cancel it (see jobActionRequestSchema), while the request or its result stands. */
  cancelledBy: z.string().nullable().optional(),
  /** The code snapshot it runs in: id, size and the git facts it was taken with; null without one. */
  code: codeSummarySchema.nullable().optional(),
  /** Why a queued job waits, as the last scheduling decision saw it (the first 200 waiting jobs). */
  waiting: z.string().nullable().optional(),
});
export type Job = z.infer<typeof jobSchema>;

/**
 * The optional body of POST /api/jobs/{id}/cancel and /retry: `via` names the client a person
 * acts through ("the CLI", "the dashboard"), so the job's history and reason say who did it.
 */
export const jobActionRequestSchema = z.object({ via: z.string().min(1).max(60).optional() });
export type JobActionRequest = z.infer<typeof jobActionRequestSchema>;

export const jobListResponseSchema = z.object({
  jobs: z.array(jobSchema),
  /** How many jobs match the filter in all. */
  total: z.number().optional(),
  /** Pass as ?cursor= for the next page; null on the last page. */
  nextCursor: z.string().nullable().optional(),
});
export type JobListPage = z.infer<typeof jobListResponseSchema>;

// CVLab-Kit's `POST /api/queue/add`: its web UI and scripts send the YAML inline; the older shape
// names a config file the GPU hosts can read.
const cvlabPrioritySchema = z.union([z.string(), z.number()]).optional();
export const queueAddRequestSchema = z.union([
  z.object({
    config: z.string().max(1024 * 1024),
    device: z.string().optional(),
    priority: cvlabPrioritySchema,
    name: z.string().min(1).max(200).nullish(),
    project: z.string().nullish(),
  }),
  z.object({
    config_path: z.string().min(1),
    priority: cvlabPrioritySchema,
    name: z.string().min(1).max(200).nullish(),
    project: z.string().nullish(),
  }),
]);
export type QueueAddRequest = z.infer<typeof queueAddRequestSchema>;

// ---- groups (sweeps) ----

export const submitGroupRequestSchema = z.object({
  name: z.string().min(1).max(200).optional(),
  jobs: z.array(submitJobRequestSchema).min(1).max(10_000),
});
export type SubmitGroupRequest = z.input<typeof submitGroupRequestSchema>;

export const groupSchema = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.string(),
  jobs: z.number(),
  states: z.record(z.string(), z.number()),
});
export type JobGroup = z.infer<typeof groupSchema>;
export const groupWithJobsSchema = z.object({ group: groupSchema, jobs: z.array(jobSchema) });

// ---- imports (history from CVLab-Kit) ----

export const importedJobSchema = z.object({
  /** The job's id where it came from (CVLab-Kit's experiment_uid); a second import of it is skipped. */
  externalId: z.string().min(1).max(200),
  name: z.string().min(1).max(200),
  project: projectSchema,
  state: z.enum(jobStates),
  priority: z.enum(priorities),
  reason: z.string().nullable().optional(),
  exitCode: z.number().int().nullable().optional(),
  hostId: z.string().nullable().optional(),
  createdAt: z.string(),
  startedAt: z.string().nullable().optional(),
  endedAt: z.string().nullable().optional(),
  config: z.string().max(1024 * 1024).nullable().optional(),
});
export type ImportedJob = z.infer<typeof importedJobSchema>;
export const importRequestSchema = z.object({
  source: z.string().regex(/^[a-z0-9-]+$/),
  dryRun: z.boolean().default(false),
  jobs: z.array(importedJobSchema).max(100_000),
});
export type ImportRequest = z.input<typeof importRequestSchema>;
export const importResponseSchema = z.object({
  imported: z.array(z.object({ externalId: z.string(), id: z.string().nullable(), state: z.enum(jobStates) })),
  skipped: z.array(z.object({ externalId: z.string(), id: z.string(), reason: z.string() })),
});
export type ImportResponse = z.infer<typeof importResponseSchema>;

export const leaseResponseSchema = z.object({
  job: jobSchema,
  attempt: z.number(),
  gpuIndices: z.array(z.number()),
  /** The job's CVLab-Kit config as the agent writes it (its `device` mapped to the leased GPUs). */
  config: z.string().optional(),
});
export type Lease = z.infer<typeof leaseResponseSchema>;

export const reportedJobStates = ["running", "succeeded", "failed", "timed_out", "cancelled"] as const;
export type ReportedJobState = (typeof reportedJobStates)[number];
export const jobEventRequestSchema = z.object({
  attempt: z.number().int().min(1),
  state: z.enum(reportedJobStates),
  exitCode: z.number().int().nullable().optional(),
  message: z.string().optional(),
});
export type JobEventRequest = z.infer<typeof jobEventRequestSchema>;

/** A Slurm batch script claiming its allocation for the node's agent (`POST /api/slurm/claim`, bearer: the attempt's claim token). */
export const slurmClaimRequestSchema = z
  .object({
    jobId: z.string().min(1).max(64),
    attempt: z.number().int().min(1),
    /** Slurm's node name ($SLURMD_NODENAME): the host id of the labrig agent there. */
    hostId: hostIdSchema,
    /** The GPUs Slurm allocated, by the index the node's agent knows them by. */
    gpuIndices: z.array(z.number().int().min(0).max(1023)).max(64),
  })
  .strict();
export type SlurmClaimRequest = z.infer<typeof slurmClaimRequestSchema>;

// ---- devices ----

export const deviceGpuSchema = z.object({
  index: z.number(),
  uuid: z.string(),
  name: z.string(),
  memoryTotalMiB: z.number(),
  memoryUsedMiB: z.number().nullable(),
  utilizationPct: z.number().nullable(),
  temperatureC: z.number().nullable(),
  powerW: z.number().nullable(),
  /** A labrig job holds it. */
  busy: z.boolean(),
  /** What runs on it, labrig's and others' (absent when the agent does not report it). A GPU with
   * a process outside labrig gets no new job until that process ends. */
  processes: z.array(gpuProcessSchema).optional(),
});
export type DeviceGpu = z.infer<typeof deviceGpuSchema>;

/** A process outside labrig is using the GPU, so the scheduler leaves it alone. */
export function hasForeignProcesses(g: { processes?: GpuProcess[] }): boolean {
  return g.processes?.some((p) => p.jobId === null) ?? false;
}

export const deviceSchema = z.object({
  hostId: z.string(),
  hostname: z.string().nullable(),
  status: z.enum(deviceStatuses),
  draining: z.boolean(),
  lastSeenAt: z.string().nullable(),
  registeredAt: z.string(),
  agentVersion: z.string().nullable(),
  agentUrl: z.string().nullable(),
  labels: labelsSchema,
  gpus: z.array(deviceGpuSchema),
  /** GPUs neither a labrig job nor a process outside labrig is using (0 unless healthy). */
  freeGpus: z.number(),
  runningJobs: z.array(z.string()),
  cpuPct: z.number().nullable(),
  memoryUsedMiB: z.number().nullable(),
  memoryTotalMiB: z.number().nullable(),
  diskFreeGiB: z.number().nullable(),
  gpuProblem: z.string().nullable(),
});
export type Device = z.infer<typeof deviceSchema>;

export const deviceListResponseSchema = z.object({ devices: z.array(deviceSchema) });

// ---- sync ----

export const syncFileSchema = z.object({ size: z.number(), sha256: z.string(), updatedAt: z.string() });
export const syncStatusResponseSchema = z.object({
  attempt: z.number(),
  files: z.record(z.string(), syncFileSchema),
});
export type SyncStatus = z.infer<typeof syncStatusResponseSchema>;

// ---- events (SSE) ----

export type DispatcherEvent =
  | { type: "job"; job: Job }
  | { type: "device"; device: Device }
  | { type: "log"; jobId: string; attempt: number; path: string; offset: number; size: number }
  | { type: "notice"; level: "info" | "warn" | "error"; message: string; at: string };

/** `POST /api/notices` (admin): a line for the events stream, e.g. a failed nightly backup. */
export const noticeRequestSchema = z.object({
  level: z.enum(["info", "warn", "error"]).default("info"),
  message: z.string().min(1).max(2000),
});

// ---- people and join tokens ----

export const roles = ["admin", "member"] as const;
export type Role = (typeof roles)[number];

export const addPersonRequestSchema = z.object({ name: personNameSchema, role: z.enum(roles).default("member") });
export const personSchema = z.object({
  name: z.string(),
  role: z.enum(roles),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
export type Person = z.infer<typeof personSchema>;
/** `GET /api/users` (admin). */
export const personListResponseSchema = z.object({ users: z.array(personSchema) });

export const createJoinTokenRequestSchema = z.object({
  ttlS: z.number().int().positive().optional(),
  uses: z.number().int().positive().optional(),
  note: z.string().max(200).refine((s) => !CONTROL_CHARS.test(s), "note: no control characters").optional(),
});
export const joinTokenSchema = z.object({
  id: z.string(),
  note: z.string().nullable(),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  expiresAt: z.string().nullable(),
  usesLeft: z.number().nullable(),
  uses: z.number(),
  revokedAt: z.string().nullable(),
  usable: z.boolean(),
});
export type JoinToken = z.infer<typeof joinTokenSchema>;
/** `GET /api/join-tokens` (admin). */
export const joinTokenListResponseSchema = z.object({ joinTokens: z.array(joinTokenSchema) });

// ---- shares of the lab: usage and limits ----

/** `PUT /api/users/{name}/limits` (admin; name `*` is everyone's default): null lifts a limit. */
export const personLimitsRequestSchema = z.object({
  maxGpus: z.number().int().min(0).max(10_000).nullable().optional(),
  maxQueued: z.number().int().min(0).max(1_000_000).nullable().optional(),
  /** May ask for high priority (admins always may). */
  high: z.boolean().optional(),
});
export const personLimitsSchema = z.object({
  name: z.string(),
  maxGpus: z.number().nullable(),
  maxQueued: z.number().nullable(),
  high: z.boolean(),
});
export type PersonLimits = z.infer<typeof personLimitsSchema>;
/** `GET /api/users/limits` (admin). */
export const personLimitsListResponseSchema = z.object({ limits: z.array(personLimitsSchema) });

/** `GET /api/usage`: each person's share of the lab lately, and what the dispatcher keeps of code. */
export const usageResponseSchema = z.object({
  halfLifeDays: z.number(),
  people: z.array(
    z.object({
      /** null: jobs without an owner (from before people existed). */
      owner: z.string().nullable(),
      gpuHoursWeek: z.number(),
      /** GPU-hours with the half-life applied: what fair share ranks by. */
      decayedGpuHours: z.number(),
      /** This owner's part of everyone's decayed GPU-hours, 0..1. */
      share: z.number(),
      runningGpus: z.number(),
      runningJobs: z.number(),
      queuedJobs: z.number(),
      limits: personLimitsSchema.omit({ name: true }),
    }),
  ),
});
export type UsageReport = z.infer<typeof usageResponseSchema>;

/** `GET /api/whoami`: who the token is. */
export type WhoAmI = { kind: "person"; name: string; role: Role } | { kind: "agent"; hostId: string };

// ---- query strings ----
// Each value is one string (a repeated parameter is an array, and refused); numbers are digits only.

/** A query value that is a whole number from `min` to `max`, said as `what`. */
const wholeNumberParam = (min: number, max: number, what: string) =>
  z
    .string(what)
    .regex(/^[0-9]{1,16}$/, what)
    .transform(Number)
    .refine((n) => n >= min && n <= max, what);

/** The most jobs one page of `GET /api/jobs` holds; the default page is 1000, as before paging existed. */
export const MAX_JOB_PAGE = 10_000;

/** `GET /api/jobs?state=a,b&project=&host=&owner=&group=&limit=&cursor=` */
export const jobListQuerySchema = z.object({
  state: z
    .string("one state or several, comma-separated")
    .transform((v) => v.split(",").filter(Boolean))
    .superRefine((states, ctx) => {
      for (const s of states) if (!(jobStates as readonly string[]).includes(s)) ctx.addIssue({ code: "custom", message: `'${s}' is not one of ${jobStates.join(", ")}` });
    })
    .transform((states) => states as JobState[])
    .optional(),
  project: z.string("one project").optional(),
  host: z.string("one host id").optional(),
  owner: z.string("one person").optional(),
  group: z.string("one group id").optional(),
  limit: wholeNumberParam(1, MAX_JOB_PAGE, `a whole number from 1 to ${MAX_JOB_PAGE}`).default(1000),
  cursor: z
    .string("pass the nextCursor of the previous page")
    .regex(/^[1-9][0-9]{0,15}$/, "pass the nextCursor of the previous page")
    .transform(Number)
    .optional(),
});

/** CVLab-Kit's statuses (its QueueView), for `GET /api/queue/list?status=`. */
export const cvlabQueueStatuses = ["pending", "queued", "assigned", "running", "completed", "failed", "cancelled"] as const;
export type CvlabQueueStatus = (typeof cvlabQueueStatuses)[number];

/** `GET /api/queue/list`: CVLab-Kit's queue page (queue.py's list call). */
export const queueListQuerySchema = z.object({
  status: z.enum(cvlabQueueStatuses, `one of ${cvlabQueueStatuses.join(", ")}`).optional(),
  project: z.string("one project").optional(),
  limit: wholeNumberParam(1, 1000, "a whole number from 1 to 1000").default(50),
  offset: wholeNumberParam(0, Number.MAX_SAFE_INTEGER, "a whole number >= 0").default(0),
});

/** `GET /api/agents/{hostId}/lease?wait=S` (seconds; the dispatcher caps it). */
export const leaseQuerySchema = z.object({
  wait: z
    .string("a number of seconds >= 0")
    .regex(/^[0-9]{1,6}(\.[0-9]{1,3})?$/, "a number of seconds >= 0")
    .transform(Number)
    .default(0),
});

/** Which attempt a sync call is for (`?attempt=N`); uploads must name the current one. */
export const syncAttemptQuerySchema = z.object({ attempt: wholeNumberParam(1, Number.MAX_SAFE_INTEGER, "a whole number >= 1").optional() });
/** `POST /api/sync/{jobId}/files/{path}?offset=N`: where the appended bytes go. */
export const syncAppendQuerySchema = syncAttemptQuerySchema.extend({ offset: wholeNumberParam(0, Number.MAX_SAFE_INTEGER, "a whole number of bytes >= 0") });
/** `PUT /api/sync/{jobId}/files/{path}?sha256=H`: the hash the whole body must have. */
export const syncPutQuerySchema = syncAttemptQuerySchema.extend({ sha256: z.string("the body's SHA-256 as 64 hex digits").regex(/^[0-9a-fA-F]{64}$/, "the body's SHA-256 as 64 hex digits") });

/** `GET /api/health`: public, so a client can tell which dispatcher (and API) it reached. */
export const healthResponseSchema = z.object({ status: z.string(), version: z.string(), api: z.number().optional(), instance: z.string().optional(), queued: z.number().optional() });
export type HealthResponse = z.infer<typeof healthResponseSchema>;

export const errorResponseSchema = z.object({
  error: z.string(),
  message: z.string(),
  field: z.string().optional(),
});
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

// ---- Slurm's own view (slurm mode) ----

export const slurmNodeSchema = z.object({
  name: z.string(),
  partitions: z.array(z.string()),
  /** Slurm's long state, as sinfo prints it: idle, mixed, allocated, down*, drained, … */
  state: z.string(),
  cpus: z.object({ allocated: z.number(), idle: z.number(), other: z.number(), total: z.number() }),
  memoryMiB: z.number(),
  /** e.g. "gpu:fake:2"; "" when the node has none. */
  gres: z.string(),
  /** Why the node is down or drained; "" when it is not. */
  reason: z.string(),
});
export type SlurmNode = z.infer<typeof slurmNodeSchema>;

export const slurmQueueJobSchema = z.object({
  id: z.string(),
  state: z.string(),
  /** The nodes it runs on; "" while it waits. */
  nodes: z.string(),
  /** Why it waits ("Resources", "Priority", …); "None" once it runs. */
  reason: z.string(),
  timeUsed: z.string(),
  timeLimit: z.string(),
  /** What it asked per node, e.g. "gres/gpu:1"; "" for none. */
  tresPerNode: z.string(),
  account: z.string(),
  name: z.string(),
});
export type SlurmQueueJob = z.infer<typeof slurmQueueJobSchema>;

/** `GET /api/slurm/status`: what the dispatcher last read from Slurm on the controller (sinfo, squeue), and when; `error` when the last read failed (the last good view is kept beside it). */
export const slurmViewSchema = z.object({
  readAt: z.string().nullable(),
  nodes: z.array(slurmNodeSchema),
  queue: z.array(slurmQueueJobSchema),
  error: z.string().optional(),
});
export type SlurmView = z.infer<typeof slurmViewSchema>;
