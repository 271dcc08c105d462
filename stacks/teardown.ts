// What deleting a step's resource does on the host: the reverse where one is safe, and a
// statement of what stays. Removing Docker or the NVIDIA packages would take away what other
// workloads on the host rely on, so those stay; labrig's own units, files, firewall rules and
// container go. Changes are data, as in provisioning, carried out by the same applyChanges.
// The dispatcher's data folders stay (its queue database and tokens are the lab's history), but
// the backup password labrig wrote into their config folder goes with the backup timer.
//
//   const t = await teardownFor("agent", ctx);   // {changes: [stop and disable labrig-agent.service, ...], runs, leaves: "..."}
//   await applyChanges(ctx, t.changes, { runs: t.runs });
import type { Change } from "../provision/change.js";
import { ufwState } from "../provision/facts/ufw.js";
import type { HostConfig } from "../provision/inventory.js";
import { shq } from "../core/shell.js";
import type { StepContext } from "../provision/step.js";
import { agentBundleRemote, agentEnvFile, agentNodeRemote, agentUnit, agentUnitFile } from "../provision/steps/agent.js";
import { backupEnvFile, backupPasswordFile, backupServiceFile, backupTimerFile, dispatcherPasswordFile } from "../provision/steps/backup-timer.js";
import { dataFolders, dispatcherDataDir, dispatcherSettings } from "../provision/steps/dispatcher-container-settings.js";
import { dispatcherFilter } from "../provision/steps/dispatcher-firewall.js";
import { removeFilterCommand, unitFileOf } from "../provision/steps/docker-user.js";
import { labrigComment } from "../provision/steps/firewall.js";
import { gpuFilter } from "../provision/steps/gpu-firewall.js";

export interface Teardown {
  /** Removal changes, in order. */
  changes: Change[];
  /** The actions behind the "run" changes, by their `what`; each is harmless when its target is already gone. */
  runs: Record<string, () => Promise<void>>;
  /** What deleting leaves on the host, said to the user. */
  leaves: string;
}

/** The plan for a step; the firewall's depends on the rules found on the host. */
export async function teardownFor(step: string, ctx: Pick<StepContext, "host" | "remote">): Promise<Teardown> {
  const { host, remote } = ctx;
  const changes: Change[] = [];
  const runs: Record<string, () => Promise<void>> = {};
  const run = (what: string, reason: string, command: string) => {
    changes.push({ kind: "run", what, reason });
    runs[what] = async () => void (await remote.run(command, { sudo: true }));
  };
  const stopUnit = (unit: string) => run(`stop and disable ${unit}`, "labrig no longer manages it", `systemctl disable --now ${shq(unit)} 2>/dev/null || true`);
  const removeFiles = (paths: string[], reason: string) => run(`remove ${paths.join(" ")}`, reason, `rm -f ${paths.map(shq).join(" ")}`);
  const reload = () => changes.push({ kind: "daemon-reload", reason: "labrig's unit files are gone" });

  switch (step) {
    case "agent":
      stopUnit(agentUnit);
      removeFiles([agentUnitFile, agentEnvFile, agentBundleRemote, agentNodeRemote], "the agent's unit, env file (with the join token), bundle and Node runtime");
      reload();
      break;
    case "firewall": {
      const sshRule = `allow ${host.port}/tcp`;
      for (const r of (await ufwState(remote)).rules) {
        if (r.comment === labrigComment && r.rule !== sshRule) changes.push({ kind: "ufw-delete", rule: r.rule, reason: "a rule labrig added" });
      }
      break;
    }
    case "dispatcher-container": {
      const settings = dispatcherSettings(host);
      const name = settings.containerName;
      run(`remove container ${name}`, "the dispatcher is no longer declared", `docker rm -f ${shq(name)} ${shq(`${name}-previous`)} >/dev/null 2>&1 || true`);
      return { changes, runs, leaves: leavesAfterDelete(step, host, { dataDir: await dispatcherDataDir(remote, settings) }) };
    }
    case "dispatcher-firewall":
    case "gpu-firewall": {
      const filter = step === "gpu-firewall" ? gpuFilter : dispatcherFilter(host);
      stopUnit(filter.unit);
      run(`remove the ${filter.chain} chain from DOCKER-USER`, "labrig added it", removeFilterCommand(filter));
      removeFiles([filter.script, unitFileOf(filter)], "the firewall script and its unit");
      reload();
      break;
    }
    case "backup-timer": {
      // On a dispatcher host the password lives in the container's config folder instead.
      const passwordFile = host.roles.includes("dispatcher") ? dispatcherPasswordFile(await dispatcherDataDir(remote, dispatcherSettings(host))) : backupPasswordFile;
      stopUnit("labrig-backup.timer");
      removeFiles([backupTimerFile, backupServiceFile, backupEnvFile, passwordFile], "the backup units, settings and password");
      reload();
      break;
    }
    // base, docker, nvidia-toolkit: nothing is removed (see leavesAfterDelete).
  }
  return { changes, runs, leaves: leavesAfterDelete(step, host) };
}

/**
 * What deleting a step's resource leaves on the host, in words. `dataDir`: the dispatcher's data
 * folder as found on the host; without it, the setting or the defaults are named.
 */
export function leavesAfterDelete(step: string, host: HostConfig, found: { dataDir?: string | undefined } = {}): string {
  switch (step) {
    case "base":
      return "the packages curl, ca-certificates, gnupg and jq (other software may use them)";
    case "docker":
      return "Docker (docker.io or docker-ce), /etc/docker/daemon.json and the docker group membership: containers other than labrig's may depend on them";
    case "nvidia-toolkit":
      return "the NVIDIA container toolkit, its apt source and Docker's nvidia runtime: GPU containers other than labrig's may depend on them";
    case "agent":
      return `the user labrig-agent and ${host.agent.workdir} (the jobs' files)`;
    case "firewall":
      return `ufw enabled with its default policies, and the rule 'allow ${host.port}/tcp' so SSH still reaches the host`;
    case "dispatcher-container": {
      const s = dispatcherSettings(host);
      const dir = found.dataDir ?? s.dataDir;
      const f = dir ? dataFolders(dir) : dataFolders("<dataDir>");
      const where = dir ? "" : " (<dataDir>: /srv/labrig, or /volume1/docker/labrig on a Synology)";
      return (
        `the data folders${where}: ${f.state} (the queue database, and the admin and join tokens, which a new container picks up again), ${f.runs} (the jobs' files), ` +
        `${f.config} (${host.backup ? `${dispatcherPasswordFile(dir ?? "<dataDir>")}, the restic password in plain text, until the backup-timer resource's delete removes it` : "empty unless something else was put there"}), ` +
        `${f.backup} (the backups); the image ${s.image}; and on this machine the saved URL, admin and join tokens (LABRIG_HOME/labs/<lab>/). ` +
        `Remove them by hand when the lab's data is no longer wanted: rm -rf ${dir ?? "<dataDir>"} on ${host.name}`
      );
    }
    case "dispatcher-firewall":
    case "gpu-firewall":
      return "iptables and Docker's own chains";
    case "backup-timer":
      return `restic, and the backup repository${host.backup ? ` ${host.backup.repository}` : ""} with every snapshot in it (its password stays in the stack's config and the inventory's passwordFile)`;
    default:
      return `whatever step ${step} set up (labrig knows no safe reverse for it)`;
  }
}
