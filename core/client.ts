// A typed HTTP client for the dispatcher's API v1, used by the agent, the CLI, the TUI and the
// benchmarks. It uses the global fetch so it bundles into the agent without native modules.
import type { ZodType } from "zod";
import {
  API_VERSION,
  deviceListResponseSchema,
  deviceSchema,
  groupWithJobsSchema,
  healthResponseSchema,
  heartbeatResponseSchema,
  importResponseSchema,
  jobListResponseSchema,
  jobSchema,
  leaseResponseSchema,
  registerResponseSchema,
  slurmViewSchema,
  syncStatusResponseSchema,
  type SlurmView,
  type HealthResponse,
  type Device,
  type ImportRequest,
  type ImportResponse,
  type JobGroup,
  type Priority,
  type SubmitGroupRequest,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type Job,
  type JobEventRequest,
  type JobState,
  type Lease,
  type RegisterRequest,
  type RegisterResponse,
  type SubmitJobRequest,
  type SyncStatus,
} from "./api.js";
import { codeOfferResponseSchema, codeSnapshotResponseSchema, codeUsageResponseSchema, type CodeManifest, type CodeOffer, type CodeSnapshotInfo, type CodeUsage } from "./code.js";
import { ApiError, IncompatibleDispatcherError, LabrigError } from "./errors.js";

export interface ClientOptions {
  url: string;
  token?: string;
  /** Per-request timeout in ms for ordinary calls (long polls add their wait). */
  timeoutMs?: number;
  /** The client acting, as a cancel or retry records it: "the CLI", "the dashboard". */
  via?: string;
}

export class DispatcherClient {
  readonly url: string;
  token: string | undefined;
  private readonly timeoutMs: number;
  private readonly via: string | undefined;

  constructor(opts: ClientOptions) {
    this.url = opts.url.replace(/\/+$/, "");
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.via = opts.via;
  }

  async request<T>(
    method: string,
    path: string,
    opts: { body?: unknown; raw?: Uint8Array; token?: string; timeoutMs?: number; signal?: AbortSignal; contentType?: string; schema?: ZodType<T> } = {},
  ): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    const token = opts.token ?? this.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: BodyInit | undefined;
    if (opts.raw !== undefined) {
      headers["content-type"] = opts.contentType ?? "application/octet-stream";
      body = opts.raw as unknown as BodyInit;
    } else if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? anySignal([opts.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetch(this.url + path, { method, headers, body, signal });
    } catch (err) {
      throw new LabrigError(`cannot reach the dispatcher at ${this.url} (${method} ${path}): ${describeFetchError(err)}`, { cause: err });
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.status >= 400) {
      const e = (parsed ?? {}) as { error?: string; message?: string };
      throw new ApiError(res.status, e.error ?? "error", e.message ?? `${method} ${path} failed`, parsed);
    }
    if (opts.schema && res.status !== 204) checkAnswer(opts.schema, parsed, `${method} ${path}`, this.url);
    return { status: res.status, body: parsed as T };
  }

  // ---- public ----
  async health(): Promise<HealthResponse> {
    const h = (await this.request("GET", "/api/health", { schema: healthResponseSchema })).body;
    if (h.api !== undefined && h.api !== API_VERSION) throw new IncompatibleDispatcherError(`the dispatcher at ${this.url} (version ${h.version}) speaks API ${h.api}; this labrig speaks API ${API_VERSION}. Use the same labrig version on both sides.`);
    return h;
  }

  // ---- agents ----
  async register(joinToken: string, req: RegisterRequest): Promise<RegisterResponse> {
    return (await this.request("POST", "/api/agents/register", { body: req, token: joinToken, schema: registerResponseSchema })).body;
  }
  async heartbeat(hostId: string, req: HeartbeatRequest): Promise<HeartbeatResponse> {
    return (await this.request("POST", `/api/agents/${enc(hostId)}/heartbeat`, { body: req, schema: heartbeatResponseSchema })).body;
  }
  /** Long poll: resolves with a lease, or null when the wait ran out with nothing to do. */
  async lease(hostId: string, waitS: number, signal?: AbortSignal): Promise<Lease | null> {
    const r = await this.request("GET", `/api/agents/${enc(hostId)}/lease?wait=${waitS}`, {
      schema: leaseResponseSchema,
      timeoutMs: (waitS + 15) * 1000,
      signal,
    });
    return r.status === 204 ? null : r.body;
  }
  async jobEvent(jobId: string, ev: JobEventRequest): Promise<Job> {
    return (await this.request("POST", `/api/jobs/${enc(jobId)}/events`, { body: ev, schema: jobSchema })).body;
  }

  // ---- jobs ----
  async submit(req: SubmitJobRequest): Promise<Job> {
    return (await this.request("POST", "/api/jobs", { body: req, schema: jobSchema })).body;
  }
  async jobs(filter: { state?: JobState | JobState[]; project?: string; limit?: number } = {}): Promise<Job[]> {
    const q = new URLSearchParams();
    if (filter.state) q.set("state", Array.isArray(filter.state) ? filter.state.join(",") : filter.state);
    if (filter.project) q.set("project", filter.project);
    if (filter.limit) q.set("limit", String(filter.limit));
    const qs = q.toString();
    return (await this.request("GET", `/api/jobs${qs ? `?${qs}` : ""}`, { schema: jobListResponseSchema })).body.jobs;
  }
  async job(id: string): Promise<Job> {
    return (await this.request("GET", `/api/jobs/${enc(id)}`, { schema: jobSchema })).body;
  }
  async cancel(id: string): Promise<Job> {
    return (await this.request("POST", `/api/jobs/${enc(id)}/cancel`, { body: this.via ? { via: this.via } : undefined, schema: jobSchema })).body;
  }
  async retry(id: string): Promise<Job> {
    return (await this.request("POST", `/api/jobs/${enc(id)}/retry`, { body: this.via ? { via: this.via } : undefined, schema: jobSchema })).body;
  }
  async setPriority(id: string, priority: Priority): Promise<Job> {
    return (await this.request("POST", `/api/jobs/${enc(id)}/priority`, { body: { priority }, schema: jobSchema })).body;
  }

  // ---- groups (sweeps) ----
  async submitGroup(req: SubmitGroupRequest): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request("POST", "/api/groups", { body: req, schema: groupWithJobsSchema })).body;
  }
  async group(id: string): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request("GET", `/api/groups/${enc(id)}`, { schema: groupWithJobsSchema })).body;
  }
  async cancelGroup(id: string): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request("POST", `/api/groups/${enc(id)}/cancel`, { body: this.via ? { via: this.via } : undefined, schema: groupWithJobsSchema })).body;
  }
  async retryGroup(id: string): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request("POST", `/api/groups/${enc(id)}/retry`, { body: this.via ? { via: this.via } : undefined, schema: groupWithJobsSchema })).body;
  }
  /** The CVLab-Kit config stored with a job, byte for byte. */
  async jobConfig(id: string): Promise<string> {
    return (await this.getBytes(`/api/jobs/${enc(id)}/config`)).toString("utf8");
  }

  // ---- imports ----
  async importJobs(req: ImportRequest): Promise<ImportResponse> {
    return (await this.request("POST", "/api/import/jobs", { body: req, schema: importResponseSchema })).body;
  }

  /**
   * A job's job.log through the dispatcher (`GET /api/jobs/{id}/log`): live from its agent while it
   * runs, else the synced copy; with follow, until the attempt has ended. Calls `write` per chunk.
   */
  async jobLog(
    id: string,
    opts: { follow?: boolean; attempt?: number; tail?: number; signal?: AbortSignal; onSource?: (source: "agent" | "dispatcher") => void },
    write: (bytes: Uint8Array) => void,
  ): Promise<{ source: "agent" | "dispatcher" }> {
    const q = new URLSearchParams();
    if (opts.follow) q.set("follow", "1");
    if (opts.attempt !== undefined) q.set("attempt", String(opts.attempt));
    if (opts.tail !== undefined) q.set("tail", String(opts.tail));
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // The time limit is for the answer; the stream itself lasts as long as the job.
    const answered = new AbortController();
    const timer = setTimeout(() => answered.abort(), this.timeoutMs);
    const signal = opts.signal ? anySignal([opts.signal, answered.signal]) : answered.signal;
    let res: Response;
    try {
      res = await fetch(`${this.url}/api/jobs/${enc(id)}/log${q.size ? `?${q}` : ""}`, { headers, signal });
    } catch (err) {
      throw new LabrigError(`cannot reach the dispatcher at ${this.url} (GET job log): ${describeFetchError(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    if (res.status >= 400) {
      throw await apiErrorOf(res, `GET log of job ${id} failed`);
    }
    const source = res.headers.get("x-labrig-log-source") === "agent" ? "agent" : "dispatcher";
    opts.onSource?.(source);
    if (res.body) {
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        write(value);
      }
    }
    return { source };
  }

  // ---- devices ----
  async devices(): Promise<Device[]> {
    return (await this.request("GET", "/api/devices", { schema: deviceListResponseSchema })).body.devices;
  }
  /** Slurm's view of the cluster; undefined from a dispatcher that schedules its own jobs (or one older than the view). */
  async slurmStatus(): Promise<SlurmView | undefined> {
    try {
      return (await this.request("GET", "/api/slurm/status", { schema: slurmViewSchema })).body;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }
  }
  async drain(hostId: string): Promise<Device> {
    return (await this.request("POST", `/api/devices/${enc(hostId)}/drain`, { schema: deviceSchema })).body;
  }
  async undrain(hostId: string): Promise<Device> {
    return (await this.request("POST", `/api/devices/${enc(hostId)}/undrain`, { schema: deviceSchema })).body;
  }

  // ---- sync ----
  async syncStatus(jobId: string): Promise<SyncStatus> {
    return (await this.request("GET", `/api/sync/${enc(jobId)}/status`, { schema: syncStatusResponseSchema })).body;
  }
  async syncAppend(jobId: string, path: string, offset: number, bytes: Uint8Array, attempt?: number): Promise<{ size: number }> {
    const a = attempt !== undefined ? `&attempt=${attempt}` : "";
    return (await this.request<{ size: number }>("POST", `/api/sync/${enc(jobId)}/files/${encPath(path)}?offset=${offset}${a}`, { raw: bytes })).body;
  }
  async syncPut(jobId: string, path: string, bytes: Uint8Array, sha256: string, attempt?: number): Promise<{ size: number }> {
    const a = attempt !== undefined ? `&attempt=${attempt}` : "";
    return (await this.request<{ size: number }>("PUT", `/api/sync/${enc(jobId)}/files/${encPath(path)}?sha256=${sha256}${a}`, { raw: bytes })).body;
  }
  async syncGet(jobId: string, path: string, attempt?: number): Promise<Buffer> {
    const a = attempt !== undefined ? `?attempt=${attempt}` : "";
    return this.getBytes(`/api/sync/${enc(jobId)}/files/${encPath(path)}${a}`, `GET sync file ${path} failed`);
  }
  // ---- code snapshots ----
  /** Offers a manifest; the reply lists the blobs to upload before the snapshot is stored (none: stored). */
  async codeOffer(manifest: CodeManifest): Promise<CodeOffer> {
    return (await this.request("POST", "/api/code/snapshots", { body: manifest, schema: codeOfferResponseSchema })).body;
  }
  async codePutBlob(sha256: string, bytes: Uint8Array): Promise<{ sha256: string; size: number }> {
    // A big file takes a while to cross a slow link: allow a minute per 64 MiB on top of the usual.
    const timeoutMs = this.timeoutMs + Math.ceil(bytes.length / (64 * 1024 * 1024)) * 60_000;
    return (await this.request<{ sha256: string; size: number }>("PUT", `/api/code/blobs/${sha256}`, { raw: bytes, timeoutMs })).body;
  }
  /** Whether the dispatcher holds the snapshot already (a HEAD: nothing but the id goes over). */
  async codeSnapshotExists(id: string): Promise<boolean> {
    try {
      await this.request("HEAD", `/api/code/snapshots/${enc(id)}`);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return false;
      throw err;
    }
  }
  async codeSnapshot(id: string): Promise<CodeSnapshotInfo> {
    return (await this.request("GET", `/api/code/snapshots/${enc(id)}`, { schema: codeSnapshotResponseSchema })).body;
  }
  async codeBlob(snapshotId: string, sha256: string): Promise<Buffer> {
    return this.getBytes(`/api/code/snapshots/${enc(snapshotId)}/blobs/${enc(sha256)}`, `GET blob ${sha256} of snapshot ${snapshotId} failed`);
  }
  async codeUsage(): Promise<CodeUsage> {
    return (await this.request("GET", "/api/code/usage", { schema: codeUsageResponseSchema })).body;
  }

  /** A GET whose reply is bytes, not JSON. */
  private async getBytes(path: string, failure = `GET ${path} failed`): Promise<Buffer> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.url}${path}`, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    if (res.status >= 400) {
      throw await apiErrorOf(res, failure);
    }
    return Buffer.from(await res.arrayBuffer());
  }
}

/** AbortSignal.any, which Node 18 (the agent bundle's floor) lacks. */
/** The API's JSON error reply ({error, message}) as an ApiError; `fallback` when the body is not that. */
async function apiErrorOf(res: Response, fallback: string): Promise<ApiError> {
  let e: { error?: string; message?: string } = {};
  try {
    e = JSON.parse(await res.text());
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, e.error ?? "error", e.message ?? fallback);
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === "function") return AbortSignal.any(signals);
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

const enc = encodeURIComponent;
/** Encodes each segment of a relative path, keeping the slashes. */
export const encPath = (p: string) => p.split("/").map(encodeURIComponent).join("/");

function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ""}`;
    if (err.name === "TimeoutError") return "timed out";
    return err.message;
  }
  return String(err);
}

/**
 * Checks an answer against the contract's schema; extra fields are let through (a newer
 * dispatcher may add some). One that does not fit is a dispatcher this client cannot work with:
 * said once, here, rather than as a crash deep in whatever reads the field.
 */
function checkAnswer(schema: ZodType, body: unknown, call: string, url: string): void {
  const r = schema.safeParse(body);
  if (r.success) return;
  const issues = r.error.issues;
  const shown = issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join(".") : "the body"} (${i.message})`);
  throw new IncompatibleDispatcherError(
    `incompatible dispatcher at ${url}: its answer to ${call} does not fit API ${API_VERSION} at ${shown.join(", ")}${issues.length > 3 ? ` and ${issues.length - 3} more` : ""}. ` +
      "Is it another labrig version? `curl " + url + "/api/health` shows its version; use the same on both sides.",
  );
}
