// Registers `labrig dispatcher`: the queue service.
import { type Command, InvalidArgumentError } from "commander";

export function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port number from 0 to 65535 (0 picks a free one)");
  return n;
}

export function registerDispatcherCommands(program: Command): void {
  program
    .command("dispatcher")
    .description("run the dispatcher: the lab's job queue and scheduler (HTTP API v1, SQLite state)")
    .option("--port <port>", "TCP port to listen on (0 picks a free one)", parsePort, 8000)
    .option("--bind <address>", "address to listen on (0.0.0.0 for the whole lab)", "127.0.0.1")
    .option("--state <dir>", "state folder: database, tokens, synced runs", "./state")
    .option("--queue-command <template>", "command that runs a CVLab-Kit config (POST /api/queue/add, submit --cvlab); {config_path} is its path (env LABRIG_QUEUE_COMMAND; default: uv run main.py --config {config_path} --fast)")
    .addHelpText(
      "after",
      `
Environment:
  LABRIG_ADMIN_TOKEN         admin token (else generated into <state>/admin-token)
  LABRIG_JOIN_TOKEN          token agents register with (else generated into <state>/join-token)
  LABRIG_STALE_AFTER_S       a device is stale after this many silent seconds (default 10)
  LABRIG_DISCONNECT_AFTER_S  ... and disconnected: shown, given no new work, its jobs left running (default 30)
  LABRIG_LOST_AFTER_S        ... and lost: its jobs requeued (attempt + 1) or failed 'lost' per retries (default 600)
  LABRIG_MISSING_GRACE_S     a job its host's heartbeats leave out this long is lost the same way (default 30)
  LABRIG_TIMEOUT_GRACE_S     a running job past its timeout by this much ends timed_out even if its agent is silent (default 120)
  LABRIG_HEARTBEAT_S         heartbeat interval told to agents (default 3)
  LABRIG_ASSIGN_TIMEOUT_S    a job handed to an agent that does not start it is requeued (default 60)
  LABRIG_CVLAB_DIR           the lab's CVLab-Kit checkout on the GPU hosts: where CVLab-Kit configs run
  LABRIG_SYNC_BODY_LIMIT_MB  the largest sync upload from an agent (default 1024)
  LABRIG_CODE_LIMIT_MB       the largest code snapshot (submit --code), all its files together (default 200)
  LABRIG_CODE_KEEP_UNUSED_S  a code snapshot no job uses is removed after this long (default 3600)
  LABRIG_CPUS_PER_GPU        cores a job holds per GPU it asks for, unless it names --cpus (default 4)
  LABRIG_MEMORY_GIB_PER_GPU  memory a job holds per GPU, unless it names --memory-gib (default 16)
  LABRIG_GPULESS_CPUS, LABRIG_GPULESS_MEMORY_GIB   the same for a job with no GPU (defaults 1 and 2)
  LABRIG_BACKUP_SCHEDULE     run \`labrig backup\` on this schedule from the dispatcher itself (hosts without systemd timers, e.g.
                             a Synology): '*-*-* 03:00:00', 'HH:MM', 'daily', 'hourly' or 'every 6h'; the repository from
                             LABRIG_BACKUP_ENV_FILE (default /etc/labrig/backup.env: RESTIC_REPOSITORY, RESTIC_PASSWORD_FILE),
                             snapshots named LABRIG_BACKUP_HOST, with LABRIG_BACKUP_CONFIG (default /etc/labrig) backed up too
  LABRIG_FAIR_SHARE_HALF_LIFE_DAYS  how fast a person's past GPU-hours stop counting in fair share (default 7)
People's limits (GPUs at once, queued jobs, high priority) are set with 'labrig users limits'.`,
    )
    .action(async (opts: { port: number; bind: string; state: string; queueCommand?: string }) => {
      const { runDispatcher } = await import("../dispatcher/main.js");
      await runDispatcher(opts);
    });
}
