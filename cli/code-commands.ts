// What `labrig code get|diff|usage` do: read a job's snapshot back from the dispatcher and write
// it out as plain files, print its stored diff, or show the space snapshots take.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CodeCache } from "../agent/code-cache.js";
import { describeCode } from "../core/code.js";
import type { DispatcherClient } from "../core/client.js";
import { LabrigError } from "../core/errors.js";
import { formatBytes } from "../core/units.js";
import { visibleText } from "../core/visible.js";
import { clientFor } from "./dispatcher-client.js";
import { invocationDir } from "./job-commands.js";
import type { TargetFlags } from "./jobs.js";

const out = (s: string): void => void process.stdout.write(visibleText(s.endsWith("\n") ? s : `${s}\n`));

async function jobSnapshot(client: DispatcherClient, jobId: string) {
  const job = await client.job(jobId);
  if (!job.code) throw new LabrigError(`job ${job.id} was submitted without code (submit --code sends a snapshot with a job)`);
  return { job, code: job.code };
}

export async function codeGetCommand(jobId: string, opts: TargetFlags & { to?: string; json?: boolean }): Promise<void> {
  const client = clientFor(opts);
  const { job, code } = await jobSnapshot(client, jobId);
  const dest = resolve(invocationDir(), opts.to ?? `${job.id}-code`);
  // The files are written as plain copies the user owns; the cache is only a staging area here.
  const staging = mkdtempSync(join(tmpdir(), "labrig-code-get-"));
  try {
    const cache = new CodeCache({ dir: staging, maxBytes: 0 });
    const r = await cache.materialize(code.snapshot, dest, { snapshot: (id) => client.codeSnapshot(id), blob: (id, sha) => client.codeBlob(id, sha) }, { link: false });
    if (opts.json) return out(JSON.stringify({ job: job.id, dir: r.dir, snapshot: code.snapshot, files: r.files, bytes: r.bytes, git: r.git }, null, 2));
    out(`wrote job ${job.id}'s tree to ${r.dir}: ${describeCode(code)}`);
    if (code.git?.dirty) out(`  it had uncommitted changes (they are in the tree); see them with: labrig code diff ${job.id}`);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export async function codeDiffCommand(jobId: string, opts: TargetFlags): Promise<void> {
  const client = clientFor(opts);
  const { job, code } = await jobSnapshot(client, jobId);
  if (!code.git) throw new LabrigError(`job ${job.id}'s tree was not a git repository, so there is no diff to show (labrig code get ${job.id} gives the tree)`);
  if (!code.git.diffSha256) {
    process.stderr.write(`job ${job.id}'s tree was clean: exactly commit ${code.git.commit}\n`);
    return;
  }
  process.stdout.write(await client.codeBlob(code.snapshot, code.git.diffSha256));
}

export async function codeUsageCommand(opts: TargetFlags & { json?: boolean }): Promise<void> {
  const u = await clientFor(opts).codeUsage();
  if (opts.json) return out(JSON.stringify(u, null, 2));
  out(`code snapshots: ${u.snapshots} (${u.unused} used by no job, removed after the dispatcher's grace), ${u.blobs} blobs, ${formatBytes(u.bytes)} on the dispatcher`);
}
