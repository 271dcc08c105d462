// CVLab-Kit's side of the dispatcher: turning what its web UI and scripts send to
// `POST /api/queue/add` into a labrig job, settling a job that carries a CVLab-Kit YAML (the lab's
// trainer command, its checkout as the working folder), and answering in the shape its UI reads
// (`{job: {experiment_uid, name, project, config_path, status, priority, ...}}`).
import { hostIdSchema, type Job, type Priority, priorities, projectSchema, type QueueAddRequest, type SubmitJob } from "../core/api.js";
import { configProject, CvlabYamlError, deviceForVisibleGpus, gpusForDevice, parseCvlabConfig, writeConfigValues } from "../core/cvlab-config.js";
import { shq } from "../core/shell.js";
import type { NewJob } from "./store.js";

/** A request the dispatcher refuses: the HTTP status, the field that is wrong and why. */
export class RequestProblem extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly status = 400,
    readonly code = "invalid_body",
  ) {
    super(`${field}: ${message}`);
  }
}

/** What the lab runs a CVLab-Kit config with: the dispatcher's settings. */
export interface CvlabSettings {
  /** `{config_path}` is the config's path on the GPU host. */
  queueCommand: string;
  /** The lab's CVLab-Kit checkout on the GPU hosts: the working folder of CVLab-Kit jobs. */
  cvlabDir?: string;
}

/** The default queue command: how CVLab-Kit's own queue starts a trainer. */
export const CVLAB_QUEUE_COMMAND = "uv run main.py --config {config_path} --fast";

export type Role = "admin" | "member";

/**
 * Who may ask for which priority: `urgent` is an admin's. Every route that takes a priority
 * (POST /api/jobs, /api/groups, /api/queue/add) calls this with the caller's role.
 */
export function assertPriorityAllowed(priority: Priority, role: Role): void {
  if (priority === "urgent" && role !== "admin") {
    throw new RequestProblem("priority", "urgent is for admins; ask for high, or ask an admin", 403, "forbidden");
  }
}

/** CVLab-Kit's priority words (any case); a number keeps labrig's older reading (> 0 high, < 0 low). */
export function cvlabPriority(p: string | number | undefined): Priority {
  if (p === undefined) return "normal";
  if (typeof p === "number") return p > 0 ? "high" : p < 0 ? "low" : "normal";
  const word = p.trim().toLowerCase();
  if ((priorities as readonly string[]).includes(word)) return word as Priority;
  throw new RequestProblem("priority", `'${p}' is not a priority; one of ${priorities.join(", ")}`);
}

/** A YAML problem as the API answers it: labrig's fields, and CVLab-Kit's `detail.detail` its UI shows. */
export function yamlProblemBody(err: CvlabYamlError, field = "config") {
  return {
    error: "invalid_yaml",
    message: err.message,
    field,
    line: err.line,
    column: err.column,
    detail: { title: "Bad Request", status: 400, detail: `Invalid YAML configuration: ${err.message}` },
  };
}

/**
 * Settles a submitted job: a job with a config and no command runs the lab's queue command in the
 * lab's CVLab-Kit checkout; the config must parse as CVLab-Kit parses it.
 */
export function settleJob(req: SubmitJob, settings: CvlabSettings, defaultName: (command: string | string[]) => string): NewJob {
  if (req.config !== undefined) parseCvlabConfig(req.config, "config");
  const command = req.command ?? (req.config !== undefined ? settings.queueCommand : undefined);
  if (command === undefined) throw new RequestProblem("command", "required (or send config: a CVLab-Kit YAML, to run the lab's queue command on it)");
  const workdir = req.workdir ?? (req.command === undefined ? settings.cvlabDir : undefined);
  return { ...req, command, workdir, name: req.name ?? defaultName(command), project: req.project ?? "default" };
}

/** CVLab-Kit's `POST /api/queue/add` as a labrig job. */
export function jobFromQueueAdd(body: QueueAddRequest, settings: CvlabSettings, now = new Date()): SubmitJob {
  const priority = cvlabPriority(body.priority);
  const name = body.name ?? undefined;
  if ("config_path" in body) {
    return {
      name: name ?? body.config_path.split("/").pop()!.replace(/\.ya?ml$/, ""),
      project: checkedProject(body.project ?? undefined, "project"),
      command: settings.queueCommand.replaceAll("{config_path}", shq(body.config_path)),
      workdir: settings.cvlabDir,
      gpus: 1,
      priority,
      maxRetries: 0,
    };
  }
  const cfg = parseCvlabConfig(body.config, "config");
  const project = checkedProject(body.project ?? configProject(cfg), body.project ? "project" : "config: project");
  return {
    name: name ?? `job_${stamp(now)}`,
    project,
    config: body.config,
    gpus: gpusForDevice(cfg.data.device),
    priority,
    maxRetries: 0,
    constraints: deviceConstraint(body.device),
  };
}

function checkedProject(project: string | undefined, field: string): string | undefined {
  if (project === undefined || project === "") return undefined;
  const r = projectSchema.safeParse(project);
  if (!r.success) throw new RequestProblem(field, `'${project}' is not a labrig project name: letters, digits, '.', '_' or '-'`);
  return project;
}

/** CVLab-Kit's `device`: "any", a host id, or "host:gpu" (labrig places the GPU itself). */
function deviceConstraint(device: string | undefined): SubmitJob["constraints"] {
  if (device === undefined || device === "" || device.toLowerCase() === "any") return undefined;
  const hostId = device.replace(/:\d+$/, "");
  if (!hostIdSchema.safeParse(hostId).success) throw new RequestProblem("device", `'${device}' is not "any" or a host id`);
  return { hostId };
}

/** `20260124_103012`: CVLab-Kit names unnamed jobs job_<date>_<time>_<hex>; labrig's id is the unique part. */
function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}_${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** The config a job's agent writes: `device` renamed to the leased GPUs as CUDA_VISIBLE_DEVICES shows them. */
export function configForLease(yaml: string, gpuCount: number): string {
  const cfg = parseCvlabConfig(yaml);
  if (!("device" in cfg.data)) return yaml;
  const device = deviceForVisibleGpus(cfg.data.device, gpuCount);
  return device === undefined ? yaml : writeConfigValues(cfg, [{ path: ["device"], value: device }]);
}

const cvlabStatus: Record<Job["state"], string> = {
  queued: "queued",
  assigned: "assigned",
  running: "running",
  succeeded: "completed",
  failed: "failed",
  cancelled: "cancelled",
  timed_out: "failed",
};

/** A labrig job as CVLab-Kit's QueueJob (web_helper/backend/models/queue.py), the shape its UI reads. */
export function toCvlabJob(job: Job & { hasConfig?: boolean }, device?: string) {
  return {
    experiment_uid: job.id,
    name: job.name,
    project: job.project,
    config_path: job.hasConfig ? `/api/jobs/${job.id}/config` : configPathInCommand(job.command),
    status: cvlabStatus[job.state],
    priority: job.priority,
    created_at: job.createdAt,
    queued_at: job.createdAt,
    started_at: job.startedAt,
    completed_at: job.endedAt,
    requirements: { gpu_count: job.gpus },
    assigned_device: job.hostId ? `${job.hostId}${job.gpuIndices.length ? `:${job.gpuIndices.join(",")}` : ""}` : null,
    command: Array.isArray(job.command) ? job.command.join(" ") : job.command,
    working_directory: job.workdir,
    environment_vars: job.env,
    progress: job.state === "succeeded" ? 1 : 0,
    current_epoch: null,
    total_epochs: null,
    current_metrics: {},
    error_message: job.reason,
    retry_count: job.attempt - 1,
    max_retries: job.maxRetries,
    user: null,
    tags: [] as string[],
    metadata: { device_preference: device ?? "any", submitted_from: "labrig", labrig_job_id: job.id },
  };
}

/** The config file a command names after --config or -c (a shell-quoted path unquoted). */
function configPathInCommand(command: string | string[]): string {
  if (Array.isArray(command)) {
    const i = command.findIndex((w) => w === "--config" || w === "-c");
    return i >= 0 ? (command[i + 1] ?? "") : "";
  }
  const m = /(?:^|\s)(?:--config|-c)\s+('(?:[^']|'\\'')*'|\S+)/.exec(command);
  if (!m) return "";
  const word = m[1]!;
  return word.startsWith("'") ? word.slice(1, -1).replaceAll("'\\''", "'") : word;
}
