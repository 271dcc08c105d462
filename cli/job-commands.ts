// What the job and device commands do: find the dispatcher, call its API, print tables or JSON.
// Loaded lazily by jobs.ts.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { isTerminalJobState, type Job, type JobListPage, type JobState, type SubmitJobRequest, type WhoAmI } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { resolveDispatcher } from "../core/config.js";
import { ApiError, InputError, LabrigError } from "../core/errors.js";
import { formatDevicesTable, formatJobDetail, formatJobsTable, type JobTransition } from "./format.js";
import { buildSubmitRequest } from "./job-file.js";
import type { SubmitFlags, TargetFlags } from "./jobs.js";
import { visibleText } from "../core/visible.js";

// What these print comes from the API: control characters are made visible (newlines kept).
const out = (s: string): void => void process.stdout.write(visibleText(s.endsWith("\n") ? s : `${s}\n`));
const note = (s: string): void => void process.stderr.write(`${visibleText(s)}\n`);
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

function clientFor(flags: TargetFlags): DispatcherClient {
  const target = resolveDispatcher(flags);
  return new DispatcherClient({ url: target.url, token: target.token });
}

export async function submitCommand(command: string[], opts: SubmitFlags): Promise<void> {
  let file: { file: string; text: string } | undefined;
  if (opts.config) {
    try {
      file = { file: opts.config, text: readFileSync(opts.config, "utf8") };
    } catch (err) {
      throw new InputError("--config", `cannot read ${opts.config}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }
  const req = buildSubmitRequest({
    file,
    command,
    flags: {
      name: opts.name,
      project: opts.project,
      gpus: opts.gpus,
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
  const client = clientFor(opts);
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
    throw new LabrigError(`job ${end.id} ended ${end.state}${end.exitCode !== null ? ` with exit code ${end.exitCode}` : ""}${end.reason ? ` (${end.reason})` : ""}; see: pnpm labrig logs ${end.id}`);
  }
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
  const exit = j.exitCode !== null && isTerminalJobState(j.state) ? `, exit code ${j.exitCode}` : "";
  return `job ${j.id}: ${j.state}${attempt}${where}${exit}${j.reason ? ` (${j.reason})` : ""}`;
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

export async function jobsCommand(opts: TargetFlags & { state?: JobState[]; project?: string; host?: string; owner?: string; mine?: boolean; limit: number; json?: boolean }) {
  const client = clientFor(opts);
  const q = new URLSearchParams();
  if (opts.state) q.set("state", opts.state.join(","));
  if (opts.project) q.set("project", opts.project);
  if (opts.host) q.set("host", opts.host);
  if (opts.mine) {
    const who = (await client.request<WhoAmI>("GET", "/api/whoami")).body;
    if (who.kind !== "person") throw new InputError("--mine", "the token is an agent's, not a person's");
    q.set("owner", who.name);
  } else if (opts.owner) q.set("owner", opts.owner);
  q.set("limit", String(opts.limit));
  const page = (await client.request<JobListPage>("GET", `/api/jobs?${q}`)).body;
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
  const write = (b: Uint8Array) => {
    wrote += b.length;
    process.stdout.write(opts.raw ? b : visibleText(decoder.decode(b, { stream: true })));
  };
  const decoder = new TextDecoder();
  await client.jobLog(id, { follow: opts.follow, attempt: opts.attempt, tail: opts.tail }, write);
  if (!opts.raw) process.stdout.write(visibleText(decoder.decode()));
  if (wrote === 0 && !opts.follow) {
    const job = await client.job(id);
    note(`job ${id} has no log${opts.attempt ? ` for attempt ${opts.attempt}` : ""} yet (state ${job.state}); follow it with: pnpm labrig logs ${id} -f`);
  }
}

export async function cancelCommand(id: string, opts: TargetFlags & { json?: boolean }) {
  const job = await clientFor(opts).cancel(id);
  if (opts.json) return json(job);
  out(job.state === "cancelled" ? `job ${id}: cancelled` : `job ${id}: cancel requested (${job.state}); its agent stops it at its next heartbeat`);
}

export async function retryCommand(id: string, opts: TargetFlags & { json?: boolean }) {
  const job = await clientFor(opts).retry(id);
  if (opts.json) return json(job);
  out(`job ${id}: ${job.state} again as attempt ${job.attempt}`);
}

export async function devicesCommand(opts: TargetFlags & { json?: boolean }) {
  const devices = await clientFor(opts).devices();
  if (opts.json) return json(devices);
  out(formatDevicesTable(devices, Date.now()));
}

export async function drainCommand(hostId: string, drain: boolean, opts: TargetFlags & { json?: boolean }) {
  const client = clientFor(opts);
  const device = drain ? await client.drain(hostId) : await client.undrain(hostId);
  if (opts.json) return json(device);
  out(drain ? `${hostId}: draining; it takes no new jobs, ${device.runningJobs.length} running finish` : `${hostId}: takes jobs again (${device.status})`);
}
