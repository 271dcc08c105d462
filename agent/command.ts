// The agent's command-line options, shared by `labrig agent` and the bundled labrig-agent.mjs, so
// both take the same flags. Only commander is imported here: the implementation loads lazily.
import type { Command } from "commander";

export function defineAgentOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", "the dispatcher's URL, e.g. http://nas:8000 (env LABRIG_URL)")
    .option("--host-id <id>", "this host's id in the lab (env LABRIG_HOST_ID; default: the hostname)")
    .option("--join-token <token>", "token to register with (env LABRIG_JOIN_TOKEN)")
    .option("--join-token-file <file>", "read the join token from a file (env LABRIG_JOIN_TOKEN_FILE)")
    .option("--workdir <dir>", "the agent's folder: its token, job outputs, sync state (env LABRIG_WORKDIR)")
    .option("--listen <host:port>", "local HTTP server for /status, /jobs/{id}/log, /metrics; 0 picks a free port, off runs none (env LABRIG_LISTEN; default 127.0.0.1:9400)")
    .option("--labels <k=v,...>", "labels jobs can be constrained to (env LABRIG_LABELS)")
    .option("--keep-jobs", "on SIGTERM leave running jobs running and re-adopt them at the next start (env LABRIG_KEEP_JOBS=1)")
    .option("--nvidia-smi <path>", "the nvidia-smi to probe GPUs with (env LABRIG_NVIDIA_SMI)")
    .option("--kill-grace <seconds>", "seconds between SIGTERM and SIGKILL when a job is stopped (env LABRIG_KILL_GRACE_S; default 10)")
    .addHelpText(
      "after",
      `
Also from the environment:
  LABRIG_AGENT_ADMIN_TOKENS  admin tokens the local server accepts without asking the dispatcher
  LABRIG_AGENT_URL           the local server's URL as the lab reaches it (default: http://HOSTNAME:PORT
                             when listening on every address)
  LABRIG_SYNC_INTERVAL_S     seconds between syncs of a running job's outputs (default 1)
  LABRIG_LEASE_WAIT_S        seconds one long poll for work waits (default 30, at most 60)
  LABRIG_CODE_CACHE_MB       the code snapshots kept on this host, least recently used out first (default 4096)

Files in the workdir:
  agent-token.json  the agent's token (0600)      agent.json  {url, hostId, pid} once running
  jobs/<id>/attempt-<n>/  job.log, run.json and what the job writes (synced to the dispatcher)
  jobs/<id>/attempt-<n>.code/  the job's code snapshot, while the attempt runs (submit --code)
  code-cache/       code snapshots' files, fetched once per host
  state/            job records and sync state, so a restart resumes without gaps or repeats`,
    );
}
