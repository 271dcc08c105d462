// The dispatcher-container step's facts: the data folders' owners, the image on this machine and
// on the host, the container and its settings' hash, the tokens there and those saved here.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type Docker from "dockerode";
import { CONTAINER_LABELS } from "../../core/labels.js";
import { hostSystemOf } from "../facts/host-system.js";
import { defaultKnownHostsFile } from "../known-hosts.js";
import { shq } from "../remote.js";
import { savedDispatcherDir } from "../saved-dispatcher.js";
import { sshTarget } from "../ssh-remote.js";
import type { StepContext } from "../step.js";
import { connectDockerOverSsh, type DockerConnection, dialStdioCommand, dockerOverStreams, imageId, localDocker } from "./dispatcher-container-docker.js";
import type { ContainerFact, DispatcherFacts } from "./dispatcher-container-plan.js";
import { containerBackupEnv, type DispatcherSettings, dataFolders, dispatcherDataDir, dispatcherJson } from "./dispatcher-container-settings.js";

/** The host's Docker engine: over the step's own SSH connection when it has one, else a new one. */
export async function connectHostDocker(ctx: StepContext): Promise<DockerConnection> {
  const remote = ctx.remote as StepContext["remote"] & { openStream?: (command: string, opts?: { sudo?: boolean }) => Promise<import("node:stream").Duplex> };
  if (remote.openStream) {
    const open = remote.openStream.bind(remote);
    return { docker: dockerOverStreams(() => open(dialStdioCommand(true), { sudo: true })), close: async () => undefined };
  }
  return connectDockerOverSsh(sshTarget(ctx.host), { knownHostsFile: process.env.LABRIG_KNOWN_HOSTS ?? defaultKnownHostsFile() });
}

/** `docker`: the host's engine, or undefined where none is installed yet (no image, no container there). */
export async function readDispatcherFacts(ctx: StepContext, docker: Docker | undefined, s: DispatcherSettings, pull: boolean): Promise<DispatcherFacts> {
  const system = await hostSystemOf(ctx);
  const backupEnv = containerBackupEnv(ctx.host, system);
  const dataDir = await dispatcherDataDir(ctx.remote, s, system);
  const dirs = Object.values(dataFolders(dataDir));
  const owners = await ctx.remote.exec(dirs.map((d) => `stat -c '%u:%g' ${shq(d)} 2>/dev/null || echo missing`).join("; "), { sudo: true });
  const foldersOk = owners.stdout.trim().split("\n").every((l) => l.trim() === `${s.uid}:${s.gid}`);

  const imageThere = docker ? await imageId(docker, s.image) : undefined;
  const imageHere = pull ? undefined : await imageId(localDocker(), s.image).catch(() => undefined);

  const container = docker ? await inspectContainer(docker, s.containerName) : undefined;

  const state = dataFolders(dataDir).state;
  const [admin, join_] = await Promise.all([ctx.remote.readFile(`${state}/admin-token`), ctx.remote.readFile(`${state}/join-token`)]);
  const tokensThere = { admin: admin?.toString().trim(), join: join_?.toString().trim() };
  const saved = savedDispatcherDir(ctx.inventory.lab.name);
  const same = (file: string, want?: string) => want !== undefined && existsSync(join(saved, file)) && readFileSync(join(saved, file), "utf8").trim() === want;
  const tokensSaved =
    same("admin-token", tokensThere.admin) && same("join-token", tokensThere.join) && same("dispatcher.json", dispatcherJson(ctx, s, saved).trim());
  return { dataDir, backupEnv, foldersOk, imageHere, imageThere, container, tokensThere, tokensSaved };
}

/** The container by name as the engine has it, or undefined when there is none. */
async function inspectContainer(docker: Docker, name: string): Promise<ContainerFact | undefined> {
  try {
    const info = await docker.getContainer(name).inspect();
    return { id: info.Id, running: info.State.Running, imageId: info.Image, hash: info.Config.Labels?.[CONTAINER_LABELS.configHash], health: info.State.Health?.Status };
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

