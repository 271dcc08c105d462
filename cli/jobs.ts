// Registers the job and device commands of `labrig` (submit, jobs, job, logs, cancel, retry,
// devices, drain, undrain). Only flag parsing lives here; the work is loaded lazily from
// job-commands.ts so `labrig --help` stays fast.
import { type Command, InvalidArgumentError, Option } from "commander";
import { jobStates, priorities } from "../core/api.js";

export interface TargetFlags {
  url?: string;
  token?: string;
}

export interface SubmitFlags extends TargetFlags {
  name?: string;
  project?: string;
  gpus?: number;
  cpus?: number;
  memoryGib?: number;
  image?: string;
  timeout?: number;
  priority?: string;
  env?: Record<string, string>;
  retries?: number;
  host?: string;
  label?: Record<string, string>;
  workdir?: string;
  config?: string;
  cvlab?: string;
  sweep?: string[];
  /** --code [DIR] (true: the default tree), --no-code (false). */
  code?: boolean | string;
  codeLimitMb?: number;
  json?: boolean;
  wait?: boolean;
}

/** A number above 0 (cores and GiB may be fractions). */
export function parsePositive(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a number above 0");
  return n;
}

export function parseWholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected a whole number >= ${min}` : `expected a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** Collects repeated KEY=VALUE flags into one record. */
export function collectKeyValue(v: string, acc: Record<string, string> | undefined): Record<string, string> {
  const eq = v.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got '${v}'`);
  return { ...acc, [v.slice(0, eq)]: v.slice(eq + 1) };
}

export function parseStates(v: string): string[] {
  const states = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of states) {
    if (!(jobStates as readonly string[]).includes(s)) throw new InvalidArgumentError(`'${s}' is not a job state; one of ${jobStates.join(", ")}`);
  }
  return states;
}

function withTarget(cmd: Command): Command {
  return cmd
    .option("--url <url>", "dispatcher URL (else LABRIG_URL, else your login, else the local lab under LABRIG_HOME)")
    .option("--token <token>", "your token (else LABRIG_TOKEN, else your login, else the local lab's admin token)");
}

const targetHelp = `
The dispatcher is found from --url/--token, then LABRIG_URL/LABRIG_TOKEN, then the credentials
'labrig login' wrote, then the local lab that 'pnpm start' runs under LABRIG_HOME (default ~/.labrig).`;

const load = () => import("./job-commands.js");

export function registerJobCommands(program: Command): void {
  const sweeps: string[] = [];
  withTarget(
    program
      .command("submit")
      .description("queue a job: the command after -- runs on a host with the GPUs it asks for")
      .argument("[command...]", "the command to run, after --")
      .passThroughOptions()
      .option("--name <name>", "job name (default: from the command)")
      .option("--project <project>", "project the job belongs to (default: default)")
      .option("--gpus <n>", "GPUs the job needs (default 1; 0 on a lab with no GPUs at all)", parseWholeNumber(0, 64))
      .option("--cpus <n>", "CPU cores the job needs (default: the lab's per-GPU figure, 4 a GPU; 1 without a GPU)", parsePositive)
      .option("--memory-gib <n>", "memory the job needs in GiB (default: the lab's per-GPU figure, 16 a GPU; 2 without a GPU)", parsePositive)
      .option("--image <image>", "run in this container image instead of as a process")
      .option("--timeout <seconds>", "stop the job after this many seconds", parseWholeNumber(1))
      .addOption(new Option("--priority <priority>", "queue priority").choices([...priorities]))
      .option("--env <KEY=VALUE>", "environment variable for the job (repeatable)", collectKeyValue)
      .option("--retries <n>", "run again this many times if the host is lost", parseWholeNumber(0, 100))
      .option("--host <hostId>", "run only on this host")
      .option("--label <key=value>", "run only on hosts with this label (repeatable)", collectKeyValue)
      .option("--workdir <dir>", "working folder on the host (default: in the local lab, this folder; elsewhere the job's output folder)")
      .option("--config <file.yaml>", "job file (name, project, command, gpus, image, env, timeout, priority, retries, constraints, cvlab); flags override it")
      .option("--cvlab <exp.yaml>", "run a CVLab-Kit experiment YAML with the lab's queue command (GPUs from its device:, project from its project:)")
      .option("--sweep [KEY=V1,V2]", "a group with one job per grid point: bare, the --cvlab YAML's list values; KEY=V1,V2 an axis (a YAML key, or {KEY} in the command); repeatable")
      .option("--code [dir]", "send a snapshot of DIR with the job and run it there (default: the git repository around this folder, else this folder; .gitignore and .labrigignore are honoured)")
      .option("--no-code", "send no code (a --cvlab job submitted from a CVLab-Kit checkout to a lab of other machines sends that checkout by default)")
      .option("--code-limit-mb <n>", "refuse a snapshot larger than this many MiB (default 200, or LABRIG_CODE_LIMIT_MB)", parseWholeNumber(1))
      .option("--json", "print the job as JSON")
      .option("--wait", "wait until the job ends; exit 0 only if it succeeded"),
  )
    .addHelpText(
      "after",
      `
Examples:
  pnpm submit -- echo hi
  pnpm submit --gpus 2 --project vision --timeout 3600 -- python train.py --lr 0.001
  pnpm submit --config jobs/train.yaml --priority high
  pnpm submit --cvlab config/example.yaml
  pnpm submit --cvlab config/example.yaml --sweep                  (one job per point of its list values)
  pnpm submit --cvlab exp.yaml --sweep lr=0.1,0.01 --sweep batch_size=32,64
  pnpm submit --sweep seed=1,2,3 -- python train.py --seed {seed}
  pnpm submit --code --gpus 1 -- python train.py                   (this repository goes with the job)

Where it runs: with --code, in the snapshot of your tree on the host that takes it (in the same
subfolder you ran submit from, or --workdir inside the tree). Without it: with the local lab
('pnpm start'), in the folder you ran submit from; on a lab's other hosts in its own output folder
there unless --workdir names a folder that exists on that host. A --cvlab job without --workdir runs in the lab's
CVLab-Kit checkout (the dispatcher's LABRIG_CVLAB_DIR); in the local lab, in this folder.
${targetHelp}`,
    )
    // Each --sweep, bare ("") or KEY=V1,V2, in order: commander alone keeps only the last.
    .on("option:sweep", (v: string | null | undefined) => void sweeps.push(v ?? ""))
    .action(async (command: string[], opts: Omit<SubmitFlags, "sweep">) => (await load()).submitCommand(command, { ...opts, sweep: sweeps.length ? sweeps : undefined }));

  withTarget(
    program
      .command("jobs")
      .description("list jobs, newest first")
      .option("--state <states>", `only these states, comma-separated (${jobStates.join(", ")})`, parseStates)
      .option("--project <project>", "only this project")
      .option("--host <hostId>", "only jobs on this host")
      .option("--group <groupId>", "only the jobs of this sweep group")
      .option("--owner <name>", "only jobs this person submitted")
      .option("--mine", "only jobs you submitted")
      .option("--limit <n>", "at most this many (the output says how many there are in all)", parseWholeNumber(1, 10_000), 50)
      .option("--json", "print JSON"),
  )
    .addHelpText("after", targetHelp)
    .action(async (opts) => (await load()).jobsCommand(opts));

  withTarget(program.command("job").description("show one job: its fields and state history").argument("<id>", "job id").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (id: string, opts) => (await load()).jobCommand(id, opts));

  withTarget(
    program
      .command("logs")
      .description("print a job's job.log through the dispatcher (live from its agent while it runs, else the synced copy)")
      .argument("<id>", "job id")
      .option("-f, --follow", "keep printing as the log grows, until the job ends")
      .option("--attempt <n>", "this attempt's log (default: the latest)", parseWholeNumber(1))
      .option("--tail <lines>", "only the last N lines", parseWholeNumber(0))
      .option("--raw", "print the bytes as they are (control characters included; else they are made visible)")
      .addOption(new Option("--interval <ms>", "unused; kept so old scripts still run").argParser(parseWholeNumber(50)).default(500).hideHelp()),
  )
    .addHelpText("after", targetHelp)
    .action(async (id: string, opts) => (await load()).logsCommand(id, opts));

  withTarget(program.command("cancel").description("cancel a job (a running one is stopped by its agent)").argument("<id>", "job id").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (id: string, opts) => (await load()).cancelCommand(id, opts));

  withTarget(program.command("retry").description("queue an ended job again as a new attempt (a succeeded one too: it runs again)").argument("<id>", "job id").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (id: string, opts) => (await load()).retryCommand(id, opts));

  withTarget(program.command("usage").description("each person's GPU-hours this week and lately (what fair share ranks by), what they hold and queue, their limits; and the code snapshots kept").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (opts) => (await load()).usageCommand(opts));

  withTarget(program
      .command("devices")
      .description("list the lab's hosts: status, GPUs, free GPUs, running jobs; in a Slurm lab, Slurm's nodes and queue below them")
      .option("--json", "print JSON (labrig's devices)")
      .option("--slurm", "only Slurm's view (sinfo, squeue, read on the controller), in a lab whose scheduler is Slurm"))
    .addHelpText("after", targetHelp)
    .action(async (opts) => (await load()).devicesCommand(opts));

  const group = program.command("group").description("a sweep group: show it, or cancel or retry all its jobs at once");
  for (const [action, description] of [
    ["show", "the group's jobs and their states"],
    ["cancel", "cancel every job of the group that has not ended"],
    ["retry", "queue again every job of the group that failed, was cancelled or timed out"],
  ] as const) {
    withTarget(group.command(action).description(description).argument("<groupId>", "group id (g...)").option("--json", "print JSON"))
      .addHelpText("after", targetHelp)
      .action(async (id: string, opts) => (await load()).groupCommand(action, id, opts));
  }

  for (const [name, description] of [
    ["drain", "stop giving a host new jobs (running ones finish)"],
    ["undrain", "let a drained host take jobs again"],
  ] as const) {
    withTarget(program.command(name).description(description).argument("<hostId>", "host id").option("--json", "print JSON"))
      .addHelpText("after", targetHelp)
      .action(async (hostId: string, opts) => (await load()).drainCommand(hostId, name === "drain", opts));
  }
}
