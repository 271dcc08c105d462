// Step `dispatcher-container` (role dispatcher): the dispatcher running as a container on the
// lab's always-on box (a Synology NAS, or any Linux host with Docker), driven through dockerode
// over SSH. It reads the facts (folders, the image on both engines, the container and the hash of
// its settings, the tokens saved here) and changes only what differs:
//   - the data folders (state, runs, config, backup) with the container user as owner;
//   - the image: pulled on the host when it names a registry, else `docker save` on this machine
//     streamed into `docker load` there;
//   - the container, created or replaced only when its image or settings changed; the previous one
//     is kept (stopped, renamed) until the new one is healthy, and brought back if it never is;
//   - on a Synology (DSM has no systemd timers), the container keeps the nightly backup's schedule
//     itself (LABRIG_BACKUP_SCHEDULE, dispatcher/scheduled-backup.ts); the backup-timer step writes
//     the repository settings it reads;
//   - the admin and join tokens read back into ~/.labrig/labs/<lab>/ (0600) with dispatcher.json,
//     so later `provision` runs and the dashboard need no copy-paste.
//
//   hosts: { nas: { roles: [dispatcher], dispatcher: { image: labrig/dispatcher:latest } } }
import { LabrigError } from "../../core/errors.js";
import type { DispatcherChange } from "../change.js";
import { dockerInstalled } from "../facts/docker.js";
import { shq } from "../remote.js";
import type { Step } from "../step.js";
import { deployContainer, saveTokens, waitHealthy } from "./dispatcher-container-deploy.js";
import { localDocker, pullImage, transferImage } from "./dispatcher-container-docker.js";
import { connectHostDocker, readDispatcherFacts } from "./dispatcher-container-facts.js";
import { planDispatcherContainer } from "./dispatcher-container-plan.js";
import { dataFolders, dispatcherSettings, namesRegistry } from "./dispatcher-container-settings.js";

export const dispatcherContainerStep: Step = {
  id: "dispatcher-container",
  description: "the dispatcher container: folders, image, container (replaced only on change, rolled back if unhealthy), tokens",
  roles: ["dispatcher"],
  async check(ctx) {
    const s = dispatcherSettings(ctx.host);
    const pull = s.pull ?? namesRegistry(s.image);
    // No engine on a bare host before the docker step (a dry run, a Pulumi preview): the plan is the one for an empty engine.
    const engine = await dockerInstalled(ctx.remote);
    const conn = engine ? await connectHostDocker(ctx) : undefined;
    try {
      const facts = await readDispatcherFacts(ctx, conn?.docker, s, pull);
      const plan = planDispatcherContainer(facts, s, pull, ctx.inventory.lab.name);
      return {
        facts: {
          engine: engine ? "installed" : "not installed yet (the docker step installs it)",
          dataDir: facts.dataDir,
          image: s.image,
          ownBackupSchedule: facts.backupEnv?.LABRIG_BACKUP_SCHEDULE ?? null,
          imageOnHost: facts.imageThere ?? null,
          container: facts.container ? { running: facts.container.running, health: facts.container.health ?? null, configHash: facts.container.hash ?? null } : null,
          tokensSaved: facts.tokensSaved,
        },
        changes: plan.changes,
        ...(plan.fail ? { fail: plan.fail } : {}),
      };
    } finally {
      await conn?.close();
    }
  },
  /** Carries out the checked plan as it stands: each change holds what it needs, nothing is read again. */
  async apply(ctx, changes) {
    const s = dispatcherSettings(ctx.host);
    const conn = await connectHostDocker(ctx);
    const docker = conn.docker;
    try {
      for (const c of changes) {
        if (!isDispatcherChange(c)) throw new LabrigError(`internal: the dispatcher-container step got a ${c.kind} change`);
        switch (c.kind) {
          case "dispatcher-folders": {
            const dirs = Object.values(dataFolders(c.dataDir)).map(shq).join(" ");
            await ctx.remote.run(`mkdir -p ${dirs} && chown ${c.owner} ${dirs} && chmod 0700 ${dirs}`, { sudo: true });
            break;
          }
          case "dispatcher-image":
            if (c.action === "pull") {
              ctx.log(`pulling ${c.image} on ${ctx.host.name}`);
              await pullImage(docker, c.image);
            } else {
              ctx.log(`sending ${c.image} to ${ctx.host.name} (docker save | docker load over SSH)`);
              await transferImage(localDocker(), docker, c.image);
            }
            break;
          case "dispatcher-container":
            if (c.action === "start") {
              const container = docker.getContainer(c.container);
              await container.start();
              await waitHealthy(docker, container.id, s.healthTimeoutS);
            } else {
              await deployContainer(ctx, docker, s, { dataDir: c.dataDir, backupEnv: c.backupEnv, lab: ctx.inventory.lab.name }, c.action === "replace" ? c.previousId : undefined);
            }
            break;
          case "dispatcher-tokens":
            await saveTokens(ctx, s, c.dataDir);
            break;
        }
        ctx.applied(c);
      }
    } finally {
      await conn.close();
    }
  },
};

function isDispatcherChange(c: { kind: string }): c is DispatcherChange {
  return c.kind.startsWith("dispatcher-");
}
