// What the job and device commands do: find the dispatcher, call its API, print tables or JSON.
// Loaded lazily by jobs.ts.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isTerminalJobState, jobListResponseSchema, type Job, type JobState, type SubmitJobRequest, type UsageReport, type WhoAmI } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { clientFor, targetClient } from "./dispatcher-client.js";
import { InputError, LabrigError } from "../core/errors.js";
import { formatDevicesTable, formatGpuProcessesTable, formatJobDetail, formatJobsTable, formatSlurmView, formatTable, jobOutcome, type JobTransition } from "./format.js";
import { buildSubmission } from "./cvlab-submit.js";
import { collectCodeSnapshot, gitWorkTree } from "./code-snapshot.js";
import { uploadCodeSnapshot } from "./code-upload.js";
import { jobFileCode } from "./job-file.js";
import { codeLimitFromEnv, describeCode, summarizeManifest, type CodeUsage } from "../core/code.js";
import { formatBytes } from "../core/units.js";
import { formatGroup } from "./format-group.js";
import type { SubmitFlags, TargetFlags } from "./jobs.js";
import type { Sweep } from "../core/sweep.js";
import { visibleText } from "../core/visible.js";

// What these print comes from the API: control characters are made visible (newlines kept).
const out = (s: string): void => void process.stdout.write(visibleText(s.endsWith("\n") ? s : `${s}\n`));
const note = (s: string): void => void process.stderr.write(`${visibleText(s)}\n`);
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

/**
 * The folder the user ran the command from. `pnpm submit` runs the script in the checkout and
 * passes the caller's folder as INIT_CWD; outside a package script INIT_CWD may be left over from
 * an outer one, so it counts only while npm_lifecycle_event says a script is running.
 */
export function invocationDir(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return env.npm_lifecycle_event && env.INIT_CWD ? env.INIT_CWD : cwd;
}

export async function submitCommand(command: string[], opts: SubmitFlags): Promise<void> {
  const here = invocationDir();
  let file: { file: string; text: string } | undefined;
  if (opts.config) {
    try {
      file = { file: opts.config, text: readFileSync(resolve(here, opts.config), "utf8") };
    } catch (err) {
      throw new InputError("--config", `cannot read ${opts.config}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }
  const submission = buildSubmission({
    file,
    command,
    cvlab: opts.cvlab && resolve(here, opts.cvlab),
    sweep: opts.sweep,
    baseDir: here,
    flags: {
      name: opts.name,
      project: opts.project,
      gpus: opts.gpus,
      cpus: opts.cpus,
      memoryGiB: opts.memoryGib,
      image: opts.image,
      timeoutS: opts.timeout,
      priority: opts.priority,
      maxRetries: opts.retries,
      workdir: opts.workdir,
      env: opts.env,
      hostId: opts.host,
      labels: opts.label,
    },
  });
  const { client, target } = targetClient(opts);
  const requests = submission.kind === "sweep" ? submission.sweep.jobs : [submission.request];
  const code = await codeToSend(opts, file, here, target.source === "local-lab");
  if (code !== undefined) {
    const sent = await sendCode(client, code.dir, here, opts.codeLimitMb);
    for (const r of requests) {
      r.code = sent.id;
      if (r.workdir === undefined && sent.subdir !== "") r.workdir = sent.subdir;
    }
  }
  for (const r of requests) placeJob(r, target.source === "local-lab", here);
  if (submission.kind === "sweep") return submitSweep(client, submission.sweep, opts);
  const req = submission.request;
  await defaultGpusForGpulessLab(client, req);
  const job = await client.submit(req);
  if (opts.json && !opts.wait) return json(job);
  if (!opts.json) {
    out(`submitted job ${job.id} (${job.name}, project ${job.project}, ${job.gpus} GPU${job.gpus === 1 ? "" : "s"}): ${job.state}`);
    if (!opts.wait) note(`  follow its log: pnpm labrig logs ${job.id} -f`);
  }
  if (!opts.wait) return;
  const end = await waitForEnd(client, job, opts.json ? () => {} : (j) => out(describeProgress(j)));
  if (opts.json) json(end);
  if (end.state !== "succeeded") {
    throw new LabrigError(`job ${end.id} ended ${end.state}${jobOutcome(end)}; see: pnpm labrig logs ${end.id}`);
  }
}

/**
 * Where the job runs. The local lab's agent is on this machine, so a process job without a workdir
 * runs in the folder `submit` ran from, as a command typed here would. Elsewhere the host has its
 * own files: a command naming a relative path there would look for it in the job's output folder,
 * so say so and how to choose.
 */
function placeJob(req: SubmitJobRequest, localLab: boolean, here: string): void {
  // With code, the job runs in its snapshot (in `workdir` inside it).
  if (req.workdir !== undefined || req.code !== undefined) return;
  // A CVLab-Kit config without a command runs in the lab's CVLab-Kit checkout (the dispatcher's
  // LABRIG_CVLAB_DIR); in the local lab that is the folder submit ran from.
  if (req.command === undefined) {
    if (localLab && !req.image) req.workdir = here;
    return;
  }
  if (localLab && !req.image) {
    req.workdir = here;
    return;
  }
  const paths = relativePathsIn(req.command);
  if (paths.length === 0) return;
  const choices = "--workdir DIR (a folder that exists on that host) or --code (send this folder with the job)";
  note(
    `warning: ${paths.map((p) => `'${p}'`).join(", ")} ${paths.length === 1 ? "is a relative path" : "are relative paths"}, but this job does not run in this folder: ` +
      `without a workdir it runs in its own output folder on the host that takes it${req.image ? ", inside the container" : ""}. Pass ${choices}.`,
  );
}

/**
 * The folder whose tree goes with the job, or undefined for none: --code [DIR] / --no-code, else
 * the job file's `code:` (a folder relative to the file), else for a --cvlab job on a lab of other
 * machines submitted from inside a CVLab-Kit checkout (a git repository with main.py and
 * cvlabkit/ at its top) that checkout, with the researcher's changes to its components, since
 * those hosts cannot see this machine's files.
 */
async function codeToSend(opts: SubmitFlags, file: { file: string; text: string } | undefined, here: string, localLab: boolean): Promise<{ dir?: string } | undefined> {
  const choice = opts.code ?? (file ? jobFileCode(file) : undefined);
  if (choice === false) return undefined;
  // true: the default tree (the git repository around this folder, else this folder).
  if (choice === true) return {};
  if (typeof choice === "string") return { dir: opts.code !== undefined ? resolve(here, choice) : resolve(here, dirname(file!.file), choice) };
  if (opts.cvlab && !localLab) {
    const repo = await gitWorkTree(here);
    if (repo && existsSync(join(repo, "main.py")) && existsSync(join(repo, "cvlabkit"))) return { dir: repo };
  }
  return undefined;
}

/** Snapshots the tree and sends what the dispatcher lacks; says what went. */
async function sendCode(client: DispatcherClient, dir: string | undefined, here: string, limitMb: number | undefined): Promise<{ id: string; subdir: string }> {
  const limitBytes = limitMb !== undefined ? limitMb * 1024 * 1024 : codeLimitFromEnv(process.env);
  const snap = await collectCodeSnapshot({ dir, cwd: here, limitBytes });
  const sent = await uploadCodeSnapshot(client, snap);
  note(`code: ${describeCode(summarizeManifest(sent.id, snap.manifest))}; sent ${sent.uploadedBlobs} new blob${sent.uploadedBlobs === 1 ? "" : "s"} (${formatBytes(sent.uploadedBytes)})`);
  return { id: sent.id, subdir: snap.subdir };
}

/** Words of a command that look like relative file paths (train.py, ./run.sh, data/x.csv): not flags, numbers or the program's bare name. */
export function relativePathsIn(command: string | string[]): string[] {
  const words = typeof command === "string" ? command.trim().split(/\s+/) : command;
  return words.filter((w, i) => {
    if (w === "" || w.startsWith("/") || w.startsWith("-") || w.startsWith("~") || w.includes("=") || w.includes("://")) return false;
    if (w.startsWith("./") || w.startsWith("../") || (w.includes("/") && /[A-Za-z]/.test(w))) return true;
    return i > 0 && /^[\w.-]*[A-Za-z][\w.-]*\.[A-Za-z][A-Za-z0-9]{0,5}$/.test(w);
  });
}

async function submitSweep(client: DispatcherClient, sweep: Sweep, opts: SubmitFlags): Promise<void> {
  const r = await client.submitGroup({ name: sweep.name, jobs: sweep.jobs });
  if (opts.json && !opts.wait) return json(r);
  if (!opts.json) {
    out(`submitted group ${r.group.id} (${r.group.name}): ${r.jobs.length} jobs over ${sweep.axes.map((a) => `${a.key} (${a.values.length})`).join(" × ")}`);
    for (const j of r.jobs) out(`  ${j.id}  ${j.name}`);
    if (!opts.wait) note(`  watch it: pnpm labrig jobs --group ${r.group.id}; cancel it: pnpm labrig group cancel ${r.group.id}`);
  }
  if (!opts.wait) return;
  let g = r;
  while (g.jobs.some((j) => !isTerminalJobState(j.state))) {
    await sleep(500);
    g = await client.group(r.group.id);
  }
  if (opts.json) json(g);
  else out(formatGroup(g.group, g.jobs, Date.now()));
  const bad = g.jobs.filter((j) => j.state !== "succeeded");
  if (bad.length) throw new LabrigError(`group ${r.group.id}: ${bad.length} of ${g.jobs.length} jobs did not succeed (${bad.map((j) => `${j.id} ${j.state}`).join(", ")})`);
}

export async function groupCommand(action: "show" | "cancel" | "retry", id: string, opts: TargetFlags & { json?: boolean }) {
  const client = clientFor(opts);
  const r = action === "show" ? await client.group(id) : action === "cancel" ? await client.cancelGroup(id) : await client.retryGroup(id);
  if (opts.json) return json(r);
  if (action === "cancel") out(`group ${id}: ${r.jobs.length} job${r.jobs.length === 1 ? "" : "s"} cancelled or asked to stop`);
  if (action === "retry") out(`group ${id}: ${r.jobs.length} job${r.jobs.length === 1 ? "" : "s"} queued again`);
  const all = action === "show" ? r : await client.group(id);
  out(formatGroup(all.group, all.jobs, Date.now()));
}

/**
 * The API's default is one GPU, which a lab without any GPU (a laptop running `pnpm start`) can
 * never schedule. When the user did not choose, and every registered device has no GPU, ask for
 * none and say so.
 */
async function defaultGpusForGpulessLab(client: DispatcherClient, req: SubmitJobRequest): Promise<void> {
  if (req.gpus !== undefined) return;
  const devices = await client.devices();
  if (devices.length > 0 && devices.every((d) => d.gpus.length === 0)) {
    req.gpus = 0;
    note("note: no device in this lab has a GPU, so the job asks for 0 GPUs (pass --gpus to choose)");
  }
}

function describeProgress(j: Job): string {
  const where = j.hostId ? ` on ${j.hostId}${j.gpuIndices.length ? ` (GPUs ${j.gpuIndices.join(",")})` : ""}` : "";
  const attempt = j.attempt > 1 ? ` (attempt ${j.attempt})` : "";
  return `job ${j.id}: ${j.state}${attempt}${where}${jobOutcome(j)}`;
}

async function waitForEnd(client: DispatcherClient, job: Job, progress: (j: Job) => void): Promise<Job> {
  let last = `${job.state}/${job.attempt}`;
  let current = job;
  while (!isTerminalJobState(current.state)) {
    await sleep(300);
    current = await client.job(job.id);
    const key = `${current.state}/${current.attempt}`;
    if (key !== last) {
      progress(current);
      last = key;
    }
  }
  return current;
}

export async function jobsCommand(opts: TargetFlags & { state?: JobState[]; project?: string; host?: string; group?: string; owner?: string; mine?: boolean; limit: number; json?: boolean }) {
  const client = clientFor(opts);
  const q = new URLSearchParams();
  if (opts.state) q.set("state", opts.state.join(","));
  if (opts.project) q.set("project", opts.project);
  if (opts.host) q.set("host", opts.host);
  if (opts.group) q.set("group", opts.group);
  if (opts.mine) {
    const who = (await client.request<WhoAmI>("GET", "/api/whoami")).body;
    if (who.kind !== "person") throw new InputError("--mine", "the token is an agent's, not a person's");
    q.set("owner", who.name);
  } else if (opts.owner) q.set("owner", opts.owner);
  q.set("limit", String(opts.limit));
  const page = (await client.request("GET", `/api/jobs?${q}`, { schema: jobListResponseSchema })).body;
  if (opts.json) return json(page.jobs);
  out(formatJobsTable(page.jobs, Date.now()));
  const note_ = pageNote(page.jobs.length, page.total);
  if (note_) note(note_);
}

/** "showing 1000 of 2641 (--limit for more)" when a page holds fewer jobs than match; nothing otherwise. */
export function pageNote(shown: number, total: number | undefined): string | undefined {
  if (total === undefined || total <= shown) return undefined;
  return `showing ${shown} of ${total} (newest first; --limit N for more)`;
}

export async function jobCommand(id: string, opts: TargetFlags & { json?: boolean }) {
  const job = (await clientFor(opts).job(id)) as Job & { history?: JobTransition[] };
  if (opts.json) return json(job);
  out(formatJobDetail(job, Date.now()));
}

export async function logsCommand(id: string, opts: TargetFlags & { follow?: boolean; attempt?: number; tail?: number; raw?: boolean; interval: number }) {
  const client = clientFor(opts);
  let wrote = 0;
  const decoder = new TextDecoder();
  const write = (b: Uint8Array) => {
    wrote += b.length;
    process.stdout.write(opts.raw ? b : visibleText(decoder.decode(b, { stream: true })));
  };
  await client.jobLog(id, { follow: opts.follow, attempt: opts.attempt, tail: opts.tail }, write);
  if (!opts.raw) process.stdout.write(visibleText(decoder.decode()));
  if (opts.follow) {
    // The log alone does not say how it ended; stderr, so stdout stays the log's bytes.
    note(`--- ${describeProgress(await client.job(id))}`);
    return;
  }
  if (wrote === 0) {
    const job = await client.job(id); // a missing job throws its own 404 here
    note(noLogYet(job, opts.attempt));
  }
}

/** Why there is no log, and only where one may still come, how to follow it. */
function noLogYet(job: Job, attempt: number | undefined): string {
  const which = attempt ? ` for attempt ${attempt}` : "";
  if (attempt !== undefined && attempt < job.attempt) return `job ${job.id} has no log${which}: that attempt wrote none (the job is now at attempt ${job.attempt}, ${job.state})`;
  if (!isTerminalJobState(job.state)) return `job ${job.id} has no log${which} yet (state ${job.state}); follow it with: pnpm labrig logs ${job.id} -f`;
  if (job.startedAt === null) return `job ${job.id} never ran, so it has no log: it ended ${job.state}${jobOutcome(job)} before starting`;
  return `job ${job.id} has no log${which}: it ran but wrote nothing, and ended ${job.state}${jobOutcome(job)}`;
}

export async function cancelCommand(id: string, opts: TargetFlags & { json?: boolean }) {
  const job = await clientFor(opts).cancel(id);
  if (opts.json) return json(job);
  out(job.state === "cancelled" ? `job ${id}: cancelled` : `job ${id}: cancel requested (${job.state}); its agent stops it at its next heartbeat`);
}

export async function retryCommand(id: string, opts: TargetFlags & { json?: boolean }) {
  const client = clientFor(opts);
  const before = await client.job(id);
  const job = await client.retry(id);
  if (opts.json) return json(job);
  if (before.state === "succeeded") {
    out(`job ${id} had succeeded; it is ${job.state} to run again as attempt ${job.attempt} (attempt ${before.attempt}'s log stays: pnpm labrig logs ${id} --attempt ${before.attempt})`);
    return;
  }
  out(`job ${id}: ${job.state} again as attempt ${job.attempt}`);
}

export async function devicesCommand(opts: TargetFlags & { json?: boolean; slurm?: boolean }) {
  const client = clientFor(opts);
  if (opts.slurm) {
    const view = await client.slurmStatus();
    if (!view) throw new LabrigError(`the dispatcher at ${client.url} schedules jobs itself (lab.scheduler: labrig): there is no Slurm view`);
    if (opts.json) return json(view);
    return out(formatSlurmView(view, Date.now()));
  }
  // Slurm's view is extra: when it cannot be had, labrig's own table still prints.
  const [devices, view] = await Promise.all([client.devices(), opts.json ? undefined : client.slurmStatus().catch((err: unknown) => err as Error)]);
  if (opts.json) return json(devices);
  out(formatDevicesTable(devices, Date.now()));
  const onGpus = formatGpuProcessesTable(devices);
  if (onGpus) out(`\n${onGpus}`);
  if (view instanceof Error) note(`Slurm's view could not be read: ${view.message}`);
  else if (view) out(`\n${formatSlurmView(view, Date.now())}`);
}

export async function drainCommand(hostId: string, drain: boolean, opts: TargetFlags & { json?: boolean }) {
  const client = clientFor(opts);
  const device = drain ? await client.drain(hostId) : await client.undrain(hostId);
  if (opts.json) return json(device);
  out(drain ? `${hostId}: draining; it takes no new jobs, ${device.runningJobs.length} running finish` : `${hostId}: takes jobs again (${device.status})`);
}

export async function usageCommand(opts: TargetFlags & { json?: boolean }): Promise<void> {
  const client = clientFor(opts);
  const r = (await client.request<UsageReport & { code: CodeUsage }>("GET", "/api/usage")).body;
  if (opts.json) return json(r);
  const limit = (n: number | null) => (n === null ? "-" : String(n));
  if (r.people.length === 0) out("no one has run or queued a job yet");
  else
    out(
      formatTable(
        ["OWNER", "GPU-H 7D", `RECENT (½ ${r.halfLifeDays}d)`, "SHARE", "GPUS NOW", "RUNNING", "QUEUED", "MAX GPUS", "MAX QUEUED", "HIGH"],
        r.people.map((p) => [p.owner ?? "(no owner)", p.gpuHoursWeek.toFixed(1), p.decayedGpuHours.toFixed(1), `${Math.round(p.share * 100)}%`, String(p.runningGpus), String(p.runningJobs), String(p.queuedJobs), limit(p.limits.maxGpus), limit(p.limits.maxQueued), p.limits.high ? "yes" : "-"]),
      ),
    );
  note(`fair share: at the same priority, the queued job of whoever has the fewest recent GPU-hours (each hour counting half after ${r.halfLifeDays} days, a GPU held now as one more) goes first`);
  out(`code snapshots: ${r.code.snapshots} (${r.code.unused} used by no job), ${r.code.blobs} blobs, ${formatBytes(r.code.bytes)} on the dispatcher`);
}
