// The agent's limit code at its edge, bundled by job-limits-host.test.ts and run inside a test host
// or container: one mode a call, its answer as one JSON line on stdout.
//   stats                       the heartbeat's host figures (cpuCount, memoryTotalMiB, ...)
//   support                     how process jobs are held to their limits here
//   start '{"jobId", "limits", "command", "logFile", "exitFile", "wait"}'
//                               starts the job as the agent does; without wait, leaves it running
//   stop '{"pgid", "exitFile"}' adopts a running job's group (as a restarted agent does) and stops it
import { HostStatsReader } from "../../agent/host-stats.js";
import { detectScopeSupport, type JobLimits, processLimitPlan } from "../../agent/job-limits.js";
import { adoptProcessJob, startProcessJob } from "../../agent/process-job.js";

const print = (v: unknown) => process.stdout.write(JSON.stringify(v) + "\n");
const [mode, arg = "{}"] = process.argv.slice(2);
const a = JSON.parse(arg) as { jobId: string; limits: JobLimits; command: string | string[]; logFile: string; exitFile: string; wait?: boolean; pgid: number };

if (mode === "stats") print(new HostStatsReader("/").read());
else if (mode === "support") print(await detectScopeSupport());
else if (mode === "start") {
  const plan = processLimitPlan(a.limits, await detectScopeSupport(), a.jobId, 1);
  const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
  const job = startProcessJob({ command: a.command, env, cwd: "/tmp", logFile: a.logFile, exitFile: a.exitFile, launcher: plan.launcher });
  if (a.wait) print({ pgid: job.pgid, limits: plan.limits, exit: await job.exited });
  else {
    job.detach();
    print({ pgid: job.pgid, limits: plan.limits });
    process.exit(0);
  }
} else if (mode === "stop") {
  const job = adoptProcessJob(a.pgid, a.exitFile);
  await job.stop(2_000);
  print({ exit: await job.exited });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
