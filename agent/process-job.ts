// Runs a job as a process: a string command through `sh -c`, an array directly, as the leader of
// its own process group, stdout and stderr both on job.log's one file descriptor so the kernel keeps
// their order. A small sh wrapper writes the exit code to a file, so an agent restarted while the
// job kept running (--keep-jobs) still learns how it ended. A launcher (systemd-run --scope, see
// job-limits.ts) may go in front of the wrapper; it execs it in place, so the group is the same.
import { closeSync, openSync, readFileSync } from "node:fs";
import { type ChildProcess, spawn } from "node:child_process";
import type { JobExit, JobHandle } from "./job-handle.js";
import { liveGroupMembers, signalGroup, terminateGroup, waitGroupGone } from "./process-group.js";

export interface ProcessJobSpec {
  command: string | string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  /** Where the wrapper writes the exit code (outside the synced output dir). */
  exitFile: string;
  /** An argv that runs the wrapper in place (it must exec it: the group is the child's pid). */
  launcher?: string[];
}

const WRAPPER = 'f=$1; shift; "$@"; c=$?; echo $c > "$f"; exit $c';

export function wrappedArgv(command: string | string[], exitFile: string, launcher: string[] = []): [string, string[]] {
  const argv = typeof command === "string" ? ["sh", "-c", command] : command;
  const [file, ...args] = [...launcher, "sh", "-c", WRAPPER, "labrig-job", exitFile, ...argv];
  return [file!, args];
}

export function startProcessJob(spec: ProcessJobSpec): JobHandle {
  const [file, args] = wrappedArgv(spec.command, spec.exitFile, spec.launcher);
  // node's spawn rather than execa: the child gets job.log's descriptor itself for stdout and
  // stderr (no pipe through the agent, so the agent can exit and the job keep writing), which
  // execa's types do not express.
  const fd = openSync(spec.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(file, args, { cwd: spec.cwd, env: spec.env, stdio: ["ignore", fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  let detached = false;
  let stopping: Promise<void> | undefined;
  const ended = new Promise<JobExit>((resolve) => {
    child.once("error", (err) => resolve({ exitCode: null, message: `could not start the job: ${err.message}` }));
    child.once("exit", (code, signal) => resolve({ exitCode: code, signal }));
  });
  const pgid = child.pid;
  const exited: Promise<JobExit> = ended.then(async (exit) => {
    // While a stop runs, the rest of the group gets its grace period (the wrapper sh dies at the
    // first SIGTERM; the job itself may still be saving a checkpoint).
    if (stopping) await stopping;
    // What the job left in its group (a background `sleep &`) goes with it.
    else if (pgid !== undefined && !detached && liveGroupMembers(pgid).length > 0) {
      signalGroup(pgid, "SIGKILL");
      await waitGroupGone(pgid, 5_000);
    }
    return exit;
  });
  return {
    kind: "process",
    pgid,
    exited,
    async stop(graceMs) {
      if (pgid !== undefined) stopping ??= terminateGroup(pgid, graceMs);
      await stopping;
      await exited;
    },
    detach() {
      detached = true;
      child.unref();
    },
  };
}

/** A job group the agent did not start (adopted after a restart): watched through /proc and its exit file. */
export function adoptProcessJob(pgid: number, exitFile: string): JobHandle {
  let detached = false;
  const exited = (async (): Promise<JobExit> => {
    while (!(await waitGroupGone(pgid, 60_000, 250))) if (detached) return { exitCode: null };
    try {
      return { exitCode: Number(readFileSync(exitFile, "utf8").trim()) };
    } catch {
      return { exitCode: null };
    }
  })();
  return {
    kind: "process",
    pgid,
    exited,
    async stop(graceMs) {
      await terminateGroup(pgid, graceMs);
      await exited;
    },
    detach() {
      detached = true;
    },
  };
}
