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
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type Docker from "dockerode";
import { z } from "zod";
import { parseBackupSchedule } from "../../core/backup-schedule.js";
import { LabrigError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { dockerInstalled } from "../facts/docker.js";
import { type HostSystem, hostSystemOf } from "../facts/host-system.js";
import type { HostConfig } from "../inventory.js";
import { defaultKnownHostsFile } from "../known-hosts.js";
import { applyChanges } from "../ops.js";
import { parseProxyJump } from "../proxy-jump.js";
import { type Remote, shq } from "../remote.js";
import { savedDispatcherDir } from "../saved-dispatcher.js";
import type { Step, StepContext } from "../step.js";
import { connectDockerOverSsh, type DockerConnection, dialStdioCommand, dockerOverStreams, imageId, localDocker, pullImage, transferImage } from "./dispatcher-container-docker.js";
import { CONTAINER_LABELS } from "../../core/labels.js";

/** The host's `dispatcher:` settings in the inventory (all optional). */
export const dispatcherSettingsSchema = z.strictObject({
  image: z.string().min(1).default("labrig/dispatcher:latest"),
  /** Pull on the host (true), or send this machine's image over SSH (false). Default: pull when the image names a registry host. */
  pull: z.boolean().optional(),
  /** Where the data folders live on the host. Default: /volume1/docker/labrig on a Synology, /srv/labrig elsewhere. */
  dataDir: z.string().startsWith("/").optional(),
  port: z.number().int().min(1).max(65535).default(8000),
  /** Host address the port is published on. */
  bind: z.string().default("0.0.0.0"),
  /** The user the container runs as, and owner of its folders (the image's own user is 10001). */
  uid: z.number().int().min(0).default(10001),
  gid: z.number().int().min(0).default(10001),
  containerName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/).default("labrig-dispatcher"),
  env: z.record(z.string(), z.string()).default({}),
  memory: z.string().regex(/^\d+[kmg]?$/i, "e.g. 512m or 1g").default("1g"),
  cpus: z.number().positive().default(2),
  healthTimeoutS: z.number().int().positive().default(90),
});
export type DispatcherSettings = z.output<typeof dispatcherSettingsSchema>;

export function dispatcherSettings(host: HostConfig): DispatcherSettings {
  const raw = (host as HostConfig & { dispatcher?: unknown }).dispatcher ?? {};
  const parsed = dispatcherSettingsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LabrigError(`host '${host.name}', field 'dispatcher.${issue.path.join(".")}': ${issue.message}`);
  }
  return parsed.data;
}

/** Pull by default only for references that name a registry (ghcr.io/x/y, registry.lab:5000/y). */
export function namesRegistry(ref: string): boolean {
  const first = ref.split("/")[0]!;
  return ref.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
}

export function dataFolders(dataDir: string) {
  return { state: `${dataDir}/state`, runs: `${dataDir}/runs`, config: `${dataDir}/config`, backup: `${dataDir}/backup` };
}

/** Where the container sees those folders (its binds); the backup-timer step runs `labrig backup` in it with these. */
export const containerPaths = { state: "/var/lib/labrig", runs: "/var/lib/labrig/runs", config: "/etc/labrig", backup: "/var/lib/labrig-backup" } as const;

/** The data folders' root on the host: the setting, else a Synology's /volume1/docker/labrig or /srv/labrig. */
export async function dispatcherDataDir(remote: Remote, s: DispatcherSettings, system?: HostSystem): Promise<string> {
  if (s.dataDir) return s.dataDir;
  return (system ?? (await hostSystemOf({ remote }))).kind === "dsm" ? "/volume1/docker/labrig" : "/srv/labrig";
}

/** Where the container reads the repository settings when it keeps the backup schedule itself. */
export const containerBackupEnvFile = `${containerPaths.config}/backup.env`;

/**
 * The container's own backup schedule: on DSM, which has no systemd timer to run it, when the host
 * has backup settings; else none. A schedule the container cannot keep is an error naming the field.
 */
export function containerBackupEnv(host: HostConfig, system: HostSystem): Record<string, string> {
  if (system.kind !== "dsm" || !host.backup) return {};
  checkOwnBackupSchedule(host, host.backup.schedule);
  return { LABRIG_BACKUP_SCHEDULE: host.backup.schedule, LABRIG_BACKUP_ENV_FILE: containerBackupEnvFile, LABRIG_BACKUP_HOST: host.name };
}

/** Throws an InputError naming the host's field when the container cannot keep this schedule. */
export function checkOwnBackupSchedule(host: HostConfig, schedule: string): void {
  parseBackupSchedule(schedule, `host '${host.name}', field 'backup.schedule' (on DSM the dispatcher container keeps it)`);
}

/** The container as it should be, and the hash of everything in it that a change must replace it for. */
export function desiredContainer(s: DispatcherSettings, dataDir: string, imageRef: string, imageIdWanted: string, lab: string, backupEnv: Record<string, string> = {}) {
  const f = dataFolders(dataDir);
  const env = { LABRIG_LAB: lab, ...backupEnv, ...s.env };
  const spec = {
    name: s.containerName,
    Image: imageRef,
    User: `${s.uid}:${s.gid}`,
    Env: Object.entries(env)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`),
    ExposedPorts: { "8000/tcp": {} },
    HostConfig: {
      Binds: [`${f.state}:${containerPaths.state}`, `${f.runs}:${containerPaths.runs}`, `${f.config}:${containerPaths.config}:ro`, `${f.backup}:${containerPaths.backup}`],
      PortBindings: { "8000/tcp": [{ HostIp: s.bind, HostPort: String(s.port) }] },
      RestartPolicy: { Name: "unless-stopped" },
      Init: true,
      Memory: bytes(s.memory),
      NanoCpus: Math.round(s.cpus * 1e9),
      PidsLimit: 256,
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } },
    },
  };
  const hash = createHash("sha256").update(JSON.stringify({ spec, imageIdWanted })).digest("hex").slice(0, 16);
  return { spec: { ...spec, Labels: { [CONTAINER_LABELS.role]: "dispatcher", [CONTAINER_LABELS.configHash]: hash } }, hash };
}

function bytes(size: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(size)!;
  return Number(m[1]) * { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
}

export { savedDispatcherDir };

interface ContainerFact {
  id: string;
  running: boolean;
  imageId: string;
  hash?: string;
  health?: string;
}

interface Facts {
  dataDir: string;
  /** The container's own backup schedule (containerBackupEnv); none when absent. */
  backupEnv?: Record<string, string>;
  foldersOk: boolean;
  imageHere?: string;
  imageThere?: string;
  container?: ContainerFact;
  tokensThere: { admin?: string; join?: string };
  tokensSaved: boolean;
}

async function connect(ctx: StepContext): Promise<DockerConnection> {
  const remote = ctx.remote as StepContext["remote"] & { openStream?: (command: string, opts?: { sudo?: boolean }) => Promise<import("node:stream").Duplex> };
  if (remote.openStream) {
    const open = remote.openStream.bind(remote);
    return { docker: dockerOverStreams(() => open(dialStdioCommand(true), { sudo: true })), close: async () => undefined };
  }
  const h = ctx.host;
  return connectDockerOverSsh(
    { host: h.name, address: h.address, port: h.port, user: h.user, identityFile: h.identityFile, ...(h.proxyJump ? { jumps: parseProxyJump(h.proxyJump) } : {}) },
    { knownHostsFile: process.env.LABRIG_KNOWN_HOSTS ?? defaultKnownHostsFile() },
  );
}

/** `docker`: the host's engine, or undefined where none is installed yet (no image, no container there). */
async function readFacts(ctx: StepContext, docker: Docker | undefined, s: DispatcherSettings, pull: boolean): Promise<Facts> {
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

function dispatcherJson(ctx: StepContext, s: DispatcherSettings, dir: string): string {
  const url = ctx.inventory.lab.dispatcher?.url ?? `http://${ctx.host.address}:${s.port}`;
  return `${JSON.stringify({ host: ctx.host.name, url, adminTokenFile: join(dir, "admin-token"), joinTokenFile: join(dir, "join-token") }, null, 2)}\n`;
}

/** The plan: what differs between the facts and the settings, in the order it must be done. */
export function planDispatcherContainer(facts: Facts, s: DispatcherSettings, pull: boolean, lab: string): { changes: Change[]; fail?: string } {
  const changes: Change[] = [];
  if (!facts.foldersOk) changes.push({ kind: "run", what: `create folders under ${facts.dataDir}`, reason: `state, runs, config and backup owned by ${s.uid}:${s.gid}` });

  let wantImageId: string | undefined;
  if (pull) {
    if (!facts.imageThere) changes.push({ kind: "run", what: `pull image ${s.image}`, reason: "not on the host" });
    wantImageId = facts.imageThere; // unknown until pulled
  } else {
    if (!facts.imageHere) {
      return {
        changes: [],
        fail: `image ${s.image} is not on this machine's Docker engine, and the host does not pull it: build it here with \`labrig image build --tag ${s.image}\` (--base IMAGE for an air-gapped lab), or set dispatcher.pull: true for an image in a registry`,
      };
    }
    wantImageId = facts.imageHere;
    if (facts.imageThere !== facts.imageHere) {
      changes.push({ kind: "run", what: `send image ${s.image} from this machine`, reason: facts.imageThere ? "the host has another build" : "not on the host" });
    }
  }

  const c = facts.container;
  const want = wantImageId ? desiredContainer(s, facts.dataDir, s.image, wantImageId, lab, facts.backupEnv).hash : undefined;
  if (!c) changes.push({ kind: "run", what: `create container ${s.containerName}`, reason: "missing" });
  else if (!want || c.hash !== want) {
    const why = !want ? "a new image is pulled" : wantImageId !== c.imageId ? "its image changed" : "its settings changed";
    changes.push({ kind: "run", what: `replace container ${s.containerName}`, reason: why });
  } else if (!c.running) changes.push({ kind: "run", what: `start container ${s.containerName}`, reason: "stopped" });

  // A new container may bring tokens from changed settings; otherwise only unsaved or changed tokens need saving.
  const containerChanges = changes.some((ch) => ch.kind === "run" && ch.what.endsWith(`container ${s.containerName}`));
  if (!facts.tokensSaved || containerChanges) {
    changes.push({ kind: "run", what: `save the dispatcher's tokens for lab ${lab}`, reason: facts.tokensSaved ? "the container changes" : "not saved on this machine yet, or changed" });
  }
  return { changes };
}

export const dispatcherContainerStep: Step = {
  id: "dispatcher-container",
  description: "the dispatcher container: folders, image, container (replaced only on change, rolled back if unhealthy), tokens",
  roles: ["dispatcher"],
  async check(ctx) {
    const s = dispatcherSettings(ctx.host);
    const pull = s.pull ?? namesRegistry(s.image);
    // No engine on a bare host before the docker step (a dry run, a Pulumi preview): the plan is the one for an empty engine.
    const engine = await dockerInstalled(ctx.remote);
    const conn = engine ? await connect(ctx) : undefined;
    try {
      const facts = await readFacts(ctx, conn?.docker, s, pull);
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
  async apply(ctx, changes) {
    const s = dispatcherSettings(ctx.host);
    const pull = s.pull ?? namesRegistry(s.image);
    const lab = ctx.inventory.lab.name;
    const conn = await connect(ctx);
    const docker = conn.docker;
    try {
      const facts = await readFacts(ctx, docker, s, pull);
      const dirs = Object.values(dataFolders(facts.dataDir));
      const runs: Record<string, () => Promise<void>> = {
        [`create folders under ${facts.dataDir}`]: async () => {
          await ctx.remote.run(`mkdir -p ${dirs.map(shq).join(" ")} && chown ${s.uid}:${s.gid} ${dirs.map(shq).join(" ")} && chmod 0700 ${dirs.map(shq).join(" ")}`, { sudo: true });
        },
        [`pull image ${s.image}`]: async () => {
          ctx.log(`pulling ${s.image} on ${ctx.host.name}`);
          await pullImage(docker, s.image);
        },
        [`send image ${s.image} from this machine`]: async () => {
          ctx.log(`sending ${s.image} to ${ctx.host.name} (docker save | docker load over SSH)`);
          await transferImage(localDocker(), docker, s.image);
        },
        [`create container ${s.containerName}`]: () => deploy(ctx, docker, s, facts, lab, undefined),
        [`replace container ${s.containerName}`]: () => deploy(ctx, docker, s, facts, lab, facts.container),
        [`start container ${s.containerName}`]: async () => {
          const c = docker.getContainer(s.containerName);
          await c.start();
          await waitHealthy(docker, c.id, s.healthTimeoutS);
        },
        [`save the dispatcher's tokens for lab ${lab}`]: () => saveTokens(ctx, s, facts.dataDir),
      };
      await applyChanges(ctx, changes, { runs });
    } finally {
      await conn.close();
    }
  },
};

/** Creates the new container; with a previous one, keeps it aside until the new one is healthy, and brings it back if not. */
async function deploy(ctx: StepContext, docker: Docker, s: DispatcherSettings, facts: Facts, lab: string, previous: ContainerFact | undefined) {
  const imageIdNow = await imageId(docker, s.image);
  if (!imageIdNow) throw new LabrigError(`on ${ctx.host.name}: image ${s.image} is missing after it was fetched`);
  const { spec } = desiredContainer(s, facts.dataDir, s.image, imageIdNow, lab, facts.backupEnv);
  const asidename = `${s.containerName}-previous`;
  let old: Docker.Container | undefined;
  if (previous) {
    old = docker.getContainer(previous.id);
    await docker.getContainer(asidename).remove({ force: true }).catch(() => undefined);
    ctx.log(`stopping the previous ${s.containerName} (kept as ${asidename} until the new one is healthy)`);
    await old.stop({ t: 15 }).catch(ignoreNotModified);
    await old.rename({ name: asidename });
  }
  let created: Docker.Container | undefined;
  try {
    created = await docker.createContainer(spec);
    await created.start();
    await waitHealthy(docker, created.id, s.healthTimeoutS);
  } catch (err) {
    const logs = created ? await containerLogs(created) : "";
    await created?.remove({ force: true }).catch(() => undefined);
    let rolledBack = "";
    if (old) {
      await old.rename({ name: s.containerName });
      await old.start().catch(ignoreNotModified);
      rolledBack = `; the previous container is running again`;
    }
    throw new LabrigError(`on ${ctx.host.name}: the new ${s.containerName} did not become healthy (${(err as Error).message})${rolledBack}${logs ? `. Its last output:\n${logs}` : ""}`, { cause: err });
  }
  if (old) await old.remove({ force: true });
}

async function waitHealthy(docker: Docker, id: string, timeoutS: number): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  let last = "";
  while (Date.now() < deadline) {
    const info = await docker.getContainer(id).inspect();
    // With restart: unless-stopped a crashing dispatcher is restarted over and over; once is enough to know.
    if (!info.State.Running) throw new LabrigError(`it exited with code ${info.State.ExitCode}`);
    if (info.State.Restarting || info.RestartCount > 0) throw new LabrigError(`it exited and was restarted ${info.RestartCount} time(s)`);
    last = info.State.Health?.Status ?? "running (no health check)";
    if (last === "healthy" || (!info.State.Health && Date.now() - Date.parse(info.State.StartedAt) > 5000)) return;
    if (last === "unhealthy") throw new LabrigError("its health check failed");
    await sleep(500);
  }
  throw new LabrigError(`still '${last}' after ${timeoutS} s`);
}

async function containerLogs(c: Docker.Container): Promise<string> {
  try {
    const buf = (await c.logs({ stdout: true, stderr: true, tail: 20 })) as unknown as Buffer;
    // Multiplexed frames: an 8-byte header before each chunk.
    const out: string[] = [];
    for (let i = 0; i + 8 <= buf.length; ) {
      const len = buf.readUInt32BE(i + 4);
      out.push(buf.subarray(i + 8, i + 8 + len).toString());
      i += 8 + len;
    }
    return out.join("").trim();
  } catch {
    return "";
  }
}

function ignoreNotModified(err: { statusCode?: number }) {
  if (err.statusCode !== 304) throw err;
}

/** Reads the tokens the dispatcher wrote into its state folder and keeps them here, 0600. */
async function saveTokens(ctx: StepContext, s: DispatcherSettings, dataDir: string): Promise<void> {
  const state = dataFolders(dataDir).state;
  const [admin, join_] = await Promise.all([ctx.remote.readFile(`${state}/admin-token`), ctx.remote.readFile(`${state}/join-token`)]);
  if (!admin || !join_) throw new LabrigError(`on ${ctx.host.name}: ${state} holds no admin-token/join-token; is the dispatcher container running?`);
  const dir = savedDispatcherDir(ctx.inventory.lab.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const write = (name: string, content: string) => {
    writeFileSync(join(dir, name), content, { mode: 0o600 });
    chmodSync(join(dir, name), 0o600);
  };
  write("admin-token", `${admin.toString().trim()}\n`);
  write("join-token", `${join_.toString().trim()}\n`);
  write("dispatcher.json", dispatcherJson(ctx, s, dir));
  ctx.log(`saved the dispatcher's tokens in ${dir}`);
}
