// What the dispatcher hands Slurm for one attempt of a job: the sbatch script (options from the
// job's resources; a body that claims the allocation for the node's labrig agent and then waits for
// the job to end, exiting 0 or 1 with it so Slurm's accounting matches), and the reading of
// sbatch's answer. Pure: data in, text out.
//
//   batchScript(job, 1, "http://nas:8000", "lrs_…")  // "#!/bin/bash\n#SBATCH --job-name=labrig-j… --gres=gpu:1 …"
import type { Constraints, Priority } from "../core/api.js";
import { shq } from "../core/shell.js";
import { LabrigError } from "../core/errors.js";
import { gpuMatches, hostMatches, type SchedDevice, type SchedGpu } from "./scheduler.js";

/** What of a job the script needs. */
export interface BatchJob {
  id: string;
  name: string;
  gpus: number;
  cpus?: number;
  memoryMiB?: number;
  timeoutS: number | null;
  /** Absent: normal. */
  priority?: Priority;
  /** Slurm nodes the job must not go to (`--exclude`): those that cannot meet its constraints. */
  exclude?: string[];
  /** The Slurm account it runs under, with accounting on (slurmAccount). */
  account?: string;
}

/** The Slurm account of a labrig person's jobs (the admin token's are `admin`'s; `labrig` for a job of no one's): lower case, letters, digits, _ and -. */
export function slurmAccount(owner: string | null): string {
  const name = (owner ?? "").toLowerCase().replace(/[^a-z0-9_-]+/g, "_").replace(/^[_-]+/, "").slice(0, 60);
  return name || "labrig";
}

/** What makes an account for the SSH user, idempotent, and succeeds only when the association is there. */
export function ensureAccountCommand(account: string): string {
  const a = shq(account);
  return `sacctmgr -i add account ${a} description=${shq("labrig person")} >/dev/null 2>&1; sacctmgr -i add user "$(id -un)" account=${a} >/dev/null 2>&1; sacctmgr -n -P show assoc where account=${a} user="$(id -un)" format=account | grep -qx ${a}`;
}

/** Whether `scontrol show config` says Slurm keeps accounts (slurmdbd). */
export function accountingIsOn(scontrolShowConfig: string): boolean {
  return /^AccountingStorageType\s*=\s*accounting_storage\/slurmdbd\s*$/m.test(scontrolShowConfig);
}

/**
 * labrig's priorities as Slurm's `--nice` (which any user may set, and which lowers a job's priority
 * by that much under both of Slurm's priority plugins): urgent jobs go before high, high before
 * normal, normal before low, as in labrig's own queue; within one level, Slurm's order.
 */
export const SLURM_NICE: Record<Priority, number> = { urgent: 0, high: 1000, normal: 2000, low: 3000 };

/**
 * The Slurm nodes that cannot run `job` by its constraints (host, labels, GPU name and memory) as
 * labrig reads them from each node's agent: a node with no labrig agent, one whose labels differ,
 * or one with too few matching GPUs. Slurm then places it only where labrig's claim will take it.
 * `slurmNodes`: the nodes sinfo lists, or undefined when they are not known (then the agents' hosts).
 */
export function excludedNodes(job: { gpus: number; constraints: Constraints }, devices: (Pick<SchedDevice, "hostId" | "labels"> & { gpus: Pick<SchedGpu, "name" | "memoryTotalMiB">[] })[], slurmNodes: string[] | undefined): { exclude: string[]; eligible: string[] } {
  const eligible = devices.filter((d) => hostMatches(d, job.constraints) && d.gpus.filter((g) => gpuMatches(g, job.constraints)).length >= job.gpus).map((d) => d.hostId);
  const ok = new Set(eligible);
  const nodes = slurmNodes ?? devices.map((d) => d.hostId);
  return { exclude: [...new Set(nodes)].filter((n) => !ok.has(n)).sort(), eligible: eligible.filter((h) => slurmNodes === undefined || slurmNodes.includes(h)).sort() };
}

/**
 * Slurm's time limit is the job's timeout plus this: the labrig agent ends a job at its timeout and
 * reports timed_out, and the batch script must still be there to see that end and exit with it.
 */
export const SLURM_TIME_MARGIN_S = 300;

/** How often the batch script asks the dispatcher whether its job has ended. */
export const CLAIM_POLL_S = 5;

/** A job name Slurm shows in squeue: `labrig-<id>-<name>`, only characters no shell or parser trips on. */
export function slurmJobName(job: Pick<BatchJob, "id" | "name">): string {
  const name = job.name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "");
  return `labrig-${job.id}${name ? `-${name}` : ""}`.slice(0, 100);
}

/** `--time` in whole minutes (Slurm's plain number), the timeout plus the margin rounded up; none without a timeout. */
export function slurmTimeMinutes(timeoutS: number | null): number | undefined {
  if (timeoutS === null) return undefined;
  return Math.ceil((timeoutS + SLURM_TIME_MARGIN_S) / 60);
}

/** The #SBATCH options for one attempt. */
export function sbatchOptions(job: BatchJob): string[] {
  const opts = [`--job-name=${slurmJobName(job)}`, "--requeue", "--nodes=1", "--ntasks=1"];
  if (job.gpus > 0) opts.push(`--gres=gpu:${job.gpus}`);
  if (job.cpus !== undefined && job.cpus > 0) opts.push(`--cpus-per-task=${Math.ceil(job.cpus)}`);
  if (job.memoryMiB !== undefined && job.memoryMiB > 0) opts.push(`--mem=${Math.ceil(job.memoryMiB)}M`);
  const minutes = slurmTimeMinutes(job.timeoutS);
  if (minutes !== undefined) opts.push(`--time=${minutes}`);
  opts.push(`--nice=${SLURM_NICE[job.priority ?? "normal"]}`);
  if (job.exclude?.length) opts.push(`--exclude=${job.exclude.join(",")}`);
  if (job.account) opts.push(`--account=${job.account}`);
  // The script's own lines (claims, retries) go to a file on the node, not to wherever sbatch ran.
  opts.push("--chdir=/tmp", "--output=/tmp/labrig-slurm-%j.out");
  return opts;
}

/**
 * The batch script for one attempt. It runs on the compute node Slurm picked: it claims the job for
 * that node (`POST /api/slurm/claim` with the attempt's claim token; the node's labrig agent then
 * leases and runs it as it runs any job), then asks `GET /api/slurm/claim` every few seconds until
 * the dispatcher says the attempt is over, and exits 0 when it succeeded, 1 otherwise.
 *
 * GPUs: SLURM_JOB_GPUS first, because it holds the indices gres.conf gave the GPUs on the node,
 * which is what the agent (outside the job's cgroup) uses; CUDA_VISIBLE_DEVICES counts from 0
 * inside a cgroup that hides the others.
 *
 * The token reaches curl on its stdin (`-K -`), never a command line another user's `ps` shows.
 */
export function batchScript(job: BatchJob, attempt: number, claimUrl: string, claimToken: string): string {
  if (!Number.isInteger(attempt) || attempt < 1) throw new LabrigError(`attempt must be a whole number >= 1, got ${attempt}`);
  const url = claimUrl.replace(/\/+$/, "");
  return [
    "#!/bin/bash",
    ...sbatchOptions(job).map((o) => `#SBATCH ${o}`),
    `# labrig job ${job.id}, attempt ${attempt}: claims this allocation for the node's labrig agent, then waits for the job to end.`,
    "set -u",
    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `url=${shq(`${url}/api/slurm/claim`)}`,
    `token=${shq(claimToken)}`,
    `job=${shq(job.id)}`,
    `attempt=${attempt}`,
    `gpus=$(printf '%s' "\${SLURM_JOB_GPUS:-\${CUDA_VISIBLE_DEVICES:-}}" | tr -cd '0-9,')`,
    `body=$(printf '{"jobId":"%s","attempt":%s,"hostId":"%s","gpuIndices":[%s]}' "$job" "$attempt" "\${SLURMD_NODENAME:-$(hostname -s)}" "$gpus")`,
    `call() { printf 'header = "authorization: Bearer %s"\\n' "$token" | curl -sS -K - --max-time 30 -o /tmp/labrig-slurm-$$.reply -w '%{http_code}' "$@"; }`,
    `reply() { cat /tmp/labrig-slurm-$$.reply 2>/dev/null; }`,
    "trap 'rm -f /tmp/labrig-slurm-$$.reply' EXIT",
    // A claim that fails to arrive is tried again: the dispatcher may be restarting. A 4xx is final.
    "for try in $(seq 1 30); do",
    `  code=$(call -H 'content-type: application/json' --data "$body" "$url") || code=000`,
    `  case "$code" in`,
    `    200) echo "labrig: claimed job $job attempt $attempt for $(printf '%s' "$body")"; break ;;`,
    `    4*) echo "labrig: the dispatcher refused the claim (HTTP $code): $(reply)" >&2; exit 1 ;;`,
    `    *) echo "labrig: claim got HTTP $code, trying again" >&2; sleep ${CLAIM_POLL_S} ;;`,
    "  esac",
    `  [ "$try" = 30 ] && { echo "labrig: the dispatcher did not take the claim" >&2; exit 1; }`,
    "done",
    "while :; do",
    `  sleep ${CLAIM_POLL_S}`,
    `  code=$(call "$url") || code=000`,
    `  case "$code" in`,
    `    200) r=$(reply); case "$r" in *'"done":true'*) echo "labrig: $r"; case "$r" in *'"succeeded":true'*) exit 0 ;; *) exit 1 ;; esac ;; esac ;;`,
    `    401) echo "labrig: the dispatcher no longer knows this attempt: $(reply)" >&2; exit 1 ;;`,
    "  esac",
    "done",
    "",
  ].join("\n");
}

export class SbatchAnswerError extends LabrigError {}

/** The job id from `sbatch --parsable`: `<id>` or `<id>;<cluster>`. */
export function parseSbatchParsable(stdout: string): string {
  const line = stdout.trim().split("\n").pop() ?? "";
  const m = /^(\d+)(?:;\S+)?$/.exec(line.trim());
  if (!m) throw new SbatchAnswerError(`sbatch --parsable answered '${stdout.trim().slice(0, 200)}', not a job id`);
  return m[1]!;
}
