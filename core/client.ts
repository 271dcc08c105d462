// A typed HTTP client for the dispatcher's API v1, used by the agent, the CLI, the TUI and the
// benchmarks. It uses the global fetch so it bundles into the agent without native modules.
import type {
  Device,
  ImportRequest,
  ImportResponse,
  JobGroup,
  Priority,
  SubmitGroupRequest,
  HeartbeatRequest,
  HeartbeatResponse,
  Job,
  JobEventRequest,
  JobState,
  Lease,
  RegisterRequest,
  RegisterResponse,
  SubmitJobRequest,
  SyncStatus,
} from "./api.js";
import type { CodeManifest, CodeOffer, CodeSnapshotInfo, CodeUsage } from "./code.js";
import { ApiError, LabrigError } from "./errors.js";

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
    opts: { body?: unknown; raw?: Uint8Array; token?: string; timeoutMs?: number; signal?: AbortSignal; contentType?: string } = {},
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
    return { status: res.status, body: parsed as T };
  }

  // ---- public ----
  async health(): Promise<{ status: string; version: string; instance?: string }> {
    return (await this.request<{ status: string; version: string; instance?: string }>("GET", "/api/health")).body;
  }

  // ---- agents ----
  async register(joinToken: string, req: RegisterRequest): Promise<RegisterResponse> {
    return (await this.request<RegisterResponse>("POST", "/api/agents/register", { body: req, token: joinToken })).body;
  }
  async heartbeat(hostId: string, req: HeartbeatRequest): Promise<HeartbeatResponse> {
    return (await this.request<HeartbeatResponse>("POST", `/api/agents/${enc(hostId)}/heartbeat`, { body: req })).body;
  }
  /** Long poll: resolves with a lease, or null when the wait ran out with nothing to do. */
  async lease(hostId: string, waitS: number, signal?: AbortSignal): Promise<Lease | null> {
    const r = await this.request<Lease>("GET", `/api/agents/${enc(hostId)}/lease?wait=${waitS}`, {
      timeoutMs: (waitS + 15) * 1000,
      signal,
    });
    return r.status === 204 ? null : r.body;
  }
  async jobEvent(jobId: string, ev: JobEventRequest): Promise<Job> {
    return (await this.request<Job>("POST", `/api/jobs/${enc(jobId)}/events`, { body: ev })).body;
  }

  // ---- jobs ----
  async submit(req: SubmitJobRequest): Promise<Job> {
    return (await this.request<Job>("POST", "/api/jobs", { body: req })).body;
  }
  async jobs(filter: { state?: JobState | JobState[]; project?: string; limit?: number } = {}): Promise<Job[]> {
    const q = new URLSearchParams();
    if (filter.state) q.set("state", Array.isArray(filter.state) ? filter.state.join(",") : filter.state);
    if (filter.project) q.set("project", filter.project);
    if (filter.limit) q.set("limit", String(filter.limit));
    const qs = q.toString();
    return (await this.request<{ jobs: Job[] }>("GET", `/api/jobs${qs ? `?${qs}` : ""}`)).body.jobs;
  }
  async job(id: string): Promise<Job> {
    return (await this.request<Job>("GET", `/api/jobs/${enc(id)}`)).body;
  }
  async cancel(id: string): Promise<Job> {
    return (await this.request<Job>("POST", `/api/jobs/${enc(id)}/cancel`, { body: this.via ? { via: this.via } : undefined })).body;
  }
  async retry(id: string): Promise<Job> {
    return (await this.request<Job>("POST", `/api/jobs/${enc(id)}/retry`, { body: this.via ? { via: this.via } : undefined })).body;
  }
  async setPriority(id: string, priority: Priority): Promise<Job> {
    return (await this.request<Job>("POST", `/api/jobs/${enc(id)}/priority`, { body: { priority } })).body;
  }

  // ---- groups (sweeps) ----
  async submitGroup(req: SubmitGroupRequest): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request<{ group: JobGroup; jobs: Job[] }>("POST", "/api/groups", { body: req })).body;
  }
  async group(id: string): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request<{ group: JobGroup; jobs: Job[] }>("GET", `/api/groups/${enc(id)}`)).body;
  }
  async cancelGroup(id: string): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request<{ group: JobGroup; jobs: Job[] }>("POST", `/api/groups/${enc(id)}/cancel`, { body: this.via ? { via: this.via } : undefined })).body;
  }
  async retryGroup(id: string): Promise<{ group: JobGroup; jobs: Job[] }> {
    return (await this.request<{ group: JobGroup; jobs: Job[] }>("POST", `/api/groups/${enc(id)}/retry`, { body: this.via ? { via: this.via } : undefined })).body;
  }
  /** The CVLab-Kit config stored with a job, byte for byte. */
  async jobConfig(id: string): Promise<string> {
    return (await this.getBytes(`/api/jobs/${enc(id)}/config`)).toString("utf8");
  }

  // ---- imports ----
  async importJobs(req: ImportRequest): Promise<ImportResponse> {
    return (await this.request<ImportResponse>("POST", "/api/import/jobs", { body: req })).body;
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
    return (await this.request<{ devices: Device[] }>("GET", "/api/devices")).body.devices;
  }
  async drain(hostId: string): Promise<Device> {
    return (await this.request<Device>("POST", `/api/devices/${enc(hostId)}/drain`)).body;
  }
  async undrain(hostId: string): Promise<Device> {
    return (await this.request<Device>("POST", `/api/devices/${enc(hostId)}/undrain`)).body;
  }

  // ---- sync ----
  async syncStatus(jobId: string): Promise<SyncStatus> {
    return (await this.request<SyncStatus>("GET", `/api/sync/${enc(jobId)}/status`)).body;
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
    return (await this.request<CodeOffer>("POST", "/api/code/snapshots", { body: manifest })).body;
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
    return (await this.request<CodeSnapshotInfo>("GET", `/api/code/snapshots/${enc(id)}`)).body;
  }
  async codeBlob(snapshotId: string, sha256: string): Promise<Buffer> {
    return this.getBytes(`/api/code/snapshots/${enc(snapshotId)}/blobs/${enc(sha256)}`, `GET blob ${sha256} of snapshot ${snapshotId} failed`);
  }
  async codeUsage(): Promise<CodeUsage> {
    return (await this.request<CodeUsage>("GET", "/api/code/usage")).body;
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
