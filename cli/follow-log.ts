// `labrig logs -f`: prints a job's job.log as the agent syncs it to the dispatcher, by polling
// the sync status for the file's size. The dispatcher is always reachable where the CLI is, and
// agents may not be; polling it also survives agent and dispatcher restarts. Stops once the job
// has ended and the log has stopped growing, since an agent may sync its last bytes just after
// reporting the end.
import { setTimeout as sleep } from "node:timers/promises";
import { isTerminalJobState, type SyncStatus } from "../core/api.js";
import type { DispatcherClient } from "../core/client.js";
import { ApiError } from "../core/errors.js";

export interface FollowOptions {
  /** Follow this attempt only; else the latest, switching when the job is retried. */
  attempt?: number;
  intervalMs: number;
  /** How long an ended job's log must stay the same size before we stop. */
  settleMs?: number;
  write: (bytes: Uint8Array) => void;
  note: (line: string) => void;
  signal?: AbortSignal;
}

const LOG = "job.log";

export async function followJobLog(client: DispatcherClient, jobId: string, opts: FollowOptions): Promise<void> {
  const settleMs = opts.settleMs ?? 2000;
  let attempt = opts.attempt;
  let printed = 0;
  let endedSince: number | undefined;
  let lastSize = -1;
  while (!opts.signal?.aborted) {
    const job = await client.job(jobId);
    const want = opts.attempt ?? job.attempt;
    if (attempt !== undefined && want !== attempt) {
      opts.note(`--- attempt ${want} of job ${jobId} ---`);
      printed = 0;
      lastSize = -1;
      endedSince = undefined;
    }
    attempt = want;
    const size = await syncedSize(client, jobId, attempt);
    if (size < printed) {
      // The file was replaced whole (not appended); print it again from the start.
      opts.note(`--- ${LOG} was rewritten; printing it again ---`);
      printed = 0;
    }
    if (size > printed) {
      const bytes = await client.syncGet(jobId, LOG, attempt);
      opts.write(bytes.subarray(printed));
      printed = bytes.length;
    }
    const attemptOver = isTerminalJobState(job.state) || (opts.attempt !== undefined && job.attempt > opts.attempt);
    if (attemptOver) {
      if (size !== lastSize) endedSince = Date.now();
      endedSince ??= Date.now();
      if (Date.now() - endedSince >= settleMs) return;
    }
    lastSize = size;
    await sleep(opts.intervalMs, undefined, { signal: opts.signal }).catch(() => {});
  }
}

async function syncedSize(client: DispatcherClient, jobId: string, attempt: number): Promise<number> {
  try {
    const status = (await client.request<SyncStatus>("GET", `/api/sync/${encodeURIComponent(jobId)}/status?attempt=${attempt}`)).body;
    return status.files[LOG]?.size ?? 0;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return 0;
    throw err;
  }
}
