// The dispatcher-container step's settings: the host's `dispatcher:` section, where its data lives
// on the host and in the container, and the container as it should be (with the hash a change
// must replace it for). Pure, but for dispatcherDataDir's reading of the host's system when the
// runner has not.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import { parseBackupSchedule } from "../../core/backup-schedule.js";
import { LabrigError } from "../../core/errors.js";
import { CONTAINER_LABELS } from "../../core/labels.js";
import { type HostSystem, hostSystemOf } from "../facts/host-system.js";
import type { HostConfig } from "../inventory.js";
import type { Remote } from "../remote.js";
import type { StepContext } from "../step.js";

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

/** What ~/.labrig/labs/<lab>/dispatcher.json says: the host, the URL agents use, the token files. */
export function dispatcherJson(ctx: Pick<StepContext, "host" | "inventory">, s: DispatcherSettings, dir: string): string {
  const url = ctx.inventory.lab.dispatcher?.url ?? `http://${ctx.host.address}:${s.port}`;
  return `${JSON.stringify({ host: ctx.host.name, url, adminTokenFile: join(dir, "admin-token"), joinTokenFile: join(dir, "join-token") }, null, 2)}\n`;
}
