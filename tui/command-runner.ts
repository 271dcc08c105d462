// The operator's commands (cancel, retry, priority, drain, for a job or a sweep) sent to the
// dispatcher; its answer goes into the store at once with a line that says what happened, and a
// refusal is said as an error line, not thrown.
import type { DispatcherClient } from "../core/client.js";
import { visibleDeep } from "../core/visible.js";
import { describeError } from "./describe-error.js";
import { type Command, flash, upsertDevice, upsertJob } from "./state.js";
import type { TuiStore } from "./store.js";

export async function performCommand(api: DispatcherClient, store: TuiStore, command: Command): Promise<void> {
  const now = () => Date.now();
  try {
    switch (command.kind) {
      case "cancel": {
        const job = visibleDeep(await api.cancel(command.jobId));
        store.updateNow((s) => flash(upsertJob(s, job), `asked to cancel job ${job.id}: now ${job.state}`, "info", now()));
        return;
      }
      case "retry": {
        const job = visibleDeep(await api.retry(command.jobId));
        store.updateNow((s) => flash(upsertJob(s, job), `job ${job.id} queued again (attempt ${job.attempt})`, "info", now()));
        return;
      }
      case "cancel-group":
      case "retry-group": {
        const cancel = command.kind === "cancel-group";
        const r = visibleDeep(cancel ? await api.cancelGroup(command.groupId) : await api.retryGroup(command.groupId));
        const n = r.jobs.length;
        const text = `group ${command.groupId}: ${n} job${n === 1 ? "" : "s"} ${cancel ? "cancelled or asked to stop" : "queued again"}`;
        store.updateNow((s) => flash(r.jobs.reduce(upsertJob, s), text, "info", now()));
        return;
      }
      case "priority": {
        const job = visibleDeep(await api.setPriority(command.jobId, command.priority));
        store.updateNow((s) => flash(upsertJob(s, job), `job ${job.id} priority is now ${job.priority}`, "info", now()));
        return;
      }
      case "drain":
      case "undrain": {
        const device = visibleDeep(command.kind === "drain" ? await api.drain(command.hostId) : await api.undrain(command.hostId));
        store.updateNow((s) => flash(upsertDevice(s, device), `${device.hostId} is ${device.draining ? "draining: no new jobs" : "taking jobs again"}`, "info", now()));
        return;
      }
    }
  } catch (err) {
    store.updateNow((s) => flash(s, `${command.kind.replace("-", " ")} failed: ${describeError(err)}`, "error", now()));
  }
}
