// The lab's inventory (inventory.yaml): which hosts there are, how to reach them, their roles, and
// the settings the steps read. Parsed with `yaml`, validated with zod host by host after the
// host's values are laid over `defaults`, with `~` and `${ENV}` expanded. Every error names where:
// file:line:col for syntax, the host and field for the schema.
//
//   const inv = loadInventory("inventory.yaml");
//   const hosts = selectHosts(inv, "gpu-a100,gpu-b");   // or "all"
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { isMap, isScalar, LineCounter, parseDocument, type Document } from "yaml";
import { z } from "zod";
import { InputError } from "../core/errors.js";
import { parseProxyJump } from "./proxy-jump.js";
import { readSavedDispatcher, savedDispatcherDir } from "./saved-dispatcher.js";

const cidr = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, "expected an address or CIDR such as 192.168.1.0/24");

const firewallSchema = z.strictObject({
  /** Who may reach the agent port. */
  allowFrom: z.array(cidr).default([]),
  enabled: z.boolean().default(true),
});

const backupSchema = z.strictObject({
  repository: z.string().min(1),
  passwordFile: z.string().min(1),
  schedule: z.string().min(1).default("*-*-* 03:00:00"),
  paths: z.array(z.string().startsWith("/")).default(["/var/lib/labrig"]),
});

const dockerSchema = z.strictObject({
  /** "distribution": Debian's docker.io. "docker": Docker's own repository (docker-ce) at `mirror`. */
  source: z.enum(["distribution", "docker"]).default("distribution"),
  mirror: z.string().url().default("https://download.docker.com/linux/debian"),
  logMaxSize: z.string().default("50m"),
  logMaxFile: z.string().default("5"),
});

const nvidiaSchema = z.strictObject({
  /** The apt repository's URL (NVIDIA's, or an offline mirror of it). */
  repository: z.string().url().default("https://nvidia.github.io/libnvidia-container/stable/deb/amd64"),
  /** The repository's signing key (ASCII-armoured); without it the repository must be trusted otherwise. */
  keyUrl: z.string().url().optional().default("https://nvidia.github.io/libnvidia-container/gpgkey"),
  /** When set, a `docker run --gpus all IMAGE nvidia-smi` proves the runtime works. */
  smokeImage: z.string().optional(),
});

const agentSchema = z.strictObject({
  port: z.number().int().min(1).max(65535).default(8020),
  workdir: z.string().startsWith("/").default("/var/lib/labrig/agent"),
});

/** What one host may say (and `defaults` may say for all). */
const hostFields = {
  address: z.string().min(1),
  user: z.string().min(1).default("deploy"),
  port: z.number().int().min(1).max(65535).default(22),
  identityFile: z.string().optional(),
  /** Jump hosts, as SSH's ProxyJump: `[user@]host[:port]`, several separated by commas or as a list. */
  proxyJump: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .optional()
    .superRefine((v, ctx) => {
      if (v === undefined) return;
      try {
        parseProxyJump(v);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
  /** gpu: a GPU host (in slurm mode, a Slurm compute node too); slurm-controller: runs slurmctld (lab.scheduler: slurm). */
  roles: z.array(z.enum(["gpu", "dispatcher", "slurm-controller"])).default([]),
  labels: z.record(z.string(), z.string()).default({}),
  /** "auto": set up the NVIDIA toolkit when a driver is there. "required": fail without one. "none": never. */
  gpu: z.enum(["auto", "required", "none"]).default("auto"),
  firewall: firewallSchema.default({ allowFrom: [], enabled: true }),
  backup: backupSchema.optional(),
  docker: dockerSchema.default(dockerSchema.parse({})),
  nvidia: nvidiaSchema.default(nvidiaSchema.parse({})),
  agent: agentSchema.default(agentSchema.parse({})),
  /** Role dispatcher: the container's settings, checked by the dispatcher-container step itself. */
  dispatcher: z.record(z.string(), z.unknown()).optional(),
};
const hostSchema = z.strictObject(hostFields);

const slurmName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, "letters, digits, _ and -");

const slurmPartitionSchema = z.strictObject({
  /** The compute nodes in it: GPU hosts whose labels include all of these ({}: every compute node). */
  labels: z.record(z.string(), z.string()).default({}),
  /** Jobs that name no partition go here; with none marked, the first partition listed. */
  default: z.boolean().default(false),
  /** Slurm's MaxTime: INFINITE, minutes, or [days-]hours:minutes:seconds. */
  maxTime: z.string().regex(/^(INFINITE|UNLIMITED|\d+|(\d+-)?\d+(:\d+){0,2})$/, "INFINITE, minutes, or [days-]hours:minutes:seconds").default("INFINITE"),
});

/** lab.slurm: the cluster labrig provisions when lab.scheduler is slurm (docs/slurm.md). */
const slurmSchema = z.strictObject({
  /** Slurm's ClusterName; the lab's name (lower-cased) when absent. */
  clusterName: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "lower-case letters, digits, _ and -").max(40).optional(),
  partitions: z.record(slurmName, slurmPartitionSchema).default({ gpu: { labels: {}, default: true, maxTime: "INFINITE" } }),
  /** slurmdbd with Debian's MariaDB on the controller: Slurm accounts per labrig person, fair share between them (docs/slurm.md). */
  accounting: z.boolean().default(false),
});

const labSchema = z.strictObject({
  name: z.string().default("lab"),
  /** labrig: the dispatcher's own queue. slurm: labrig provisions a Slurm cluster (lab.slurm) on the hosts. */
  scheduler: z.enum(["labrig", "slurm"]).default("labrig"),
  slurm: slurmSchema.optional(),
  dispatcher: z
    .strictObject({
      host: z.string().optional(),
      url: z.string().url(),
      joinTokenFile: z.string().optional(),
    })
    .optional(),
});

const fileSchema = z.strictObject({
  lab: labSchema.default({ name: "lab", scheduler: "labrig" }),
  defaults: z.record(z.string(), z.unknown()).default({}),
  hosts: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "host names are letters, digits, . _ -"), z.unknown()),
});

export type HostConfig = z.infer<typeof hostSchema> & { name: string };
export type LabConfig = z.infer<typeof labSchema>;

export interface Inventory {
  file: string;
  lab: LabConfig;
  hosts: HostConfig[];
}

/** Fields holding local paths, where `~` means the home folder. */
const pathFields = new Set(["identityFile", "joinTokenFile", "passwordFile"]);

export function loadInventory(file: string, env: NodeJS.ProcessEnv = process.env): Inventory {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(file, `cannot read the inventory (${(err as NodeJS.ErrnoException).code ?? err}); pass --inventory PATH`, { cause: err });
  }
  return parseInventory(text, file, env);
}

export function parseInventory(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = lines.linePos(syntax.pos[0]);
    throw new InputError(`${file}:${pos.line}:${pos.col}`, `YAML syntax error: ${firstLine(syntax.message)}`);
  }
  const where = (path: (string | number)[]) => locate(doc, lines, file, path);
  const raw = expand(doc.toJS() ?? {}, [], env, where);

  const top = fileSchema.safeParse(raw);
  if (!top.success) throw schemaError(top.error, [], where);

  const hosts: HostConfig[] = [];
  for (const [name, value] of Object.entries(top.data.hosts)) {
    const merged = mergeDeep(top.data.defaults, (value ?? {}) as Record<string, unknown>);
    const parsed = hostSchema.safeParse(merged);
    if (!parsed.success) throw schemaError(parsed.error, ["hosts", name], where, name, value);
    hosts.push({ name, ...parsed.data });
  }
  if (hosts.length === 0) throw new InputError(where(["hosts"]), "the inventory lists no hosts");
  const dispatcherHost = top.data.lab.dispatcher?.host;
  if (dispatcherHost && !hosts.some((h) => h.name === dispatcherHost)) {
    throw new InputError(where(["lab", "dispatcher", "host"]), `lab.dispatcher.host '${dispatcherHost}' is not among the hosts (${hosts.map((h) => h.name).join(", ")})`);
  }
  checkScheduler(top.data.lab, hosts, where);
  return { file, lab: top.data.lab, hosts };
}

/** The roles and sections lab.scheduler asks for; a mismatch is an error naming the field. */
function checkScheduler(lab: LabConfig, hosts: HostConfig[], where: (p: (string | number)[]) => string): void {
  const controllers = hosts.filter((h) => h.roles.includes("slurm-controller"));
  if (lab.scheduler !== "slurm") {
    if (lab.slurm) throw new InputError(where(["lab", "slurm"]), "field 'lab.slurm': set lab.scheduler: slurm to use it (lab.scheduler is labrig)");
    const c = controllers[0];
    if (c) throw new InputError(where(["hosts", c.name, "roles"]), `host '${c.name}', field 'roles': role slurm-controller needs lab.scheduler: slurm (lab.scheduler is labrig)`);
    return;
  }
  if (controllers.length === 0) throw new InputError(where(["lab", "scheduler"]), "field 'lab.scheduler': slurm needs exactly one host with role slurm-controller (none has it)");
  if (controllers.length > 1) {
    const [first, second] = controllers as [HostConfig, HostConfig];
    throw new InputError(where(["hosts", second.name, "roles"]), `host '${second.name}', field 'roles': ${first.name} is the slurm-controller already; labrig provisions one controller (no backup controller yet)`);
  }
  const nodes = hosts.filter((h) => h.roles.includes("gpu"));
  if (nodes.length === 0) throw new InputError(where(["lab", "scheduler"]), "field 'lab.scheduler': slurm needs compute nodes: give the GPU hosts role gpu");
  for (const h of [...controllers, ...nodes]) {
    // slurmd finds its NodeName by -N; Slurm's host lists treat '.' as a domain and '_' badly.
    if (!/^[A-Za-z0-9-]+$/.test(h.name)) throw new InputError(where(["hosts", h.name]), `host '${h.name}': a Slurm host's name is letters, digits and - (it becomes its NodeName)`);
  }
  lab.slurm ??= slurmSchema.parse({});
  for (const [name, p] of Object.entries(lab.slurm.partitions)) {
    if (!nodes.some((n) => labelsMatch(n, p.labels))) {
      throw new InputError(where(["lab", "slurm", "partitions", name, "labels"]), `field 'lab.slurm.partitions.${name}.labels': no compute node (role gpu) has labels ${JSON.stringify(p.labels)}`);
    }
  }
}

/** Whether a host's labels include all of these. */
export function labelsMatch(host: HostConfig, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => host.labels[k] === v);
}

/** `--host NAME`, `a,b`, or `all`; an unknown name is an error that lists the known ones. */
export function selectHosts(inv: Inventory, spec: string): HostConfig[] {
  if (spec.trim() === "all") return inv.hosts;
  const names = spec.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new InputError("--host", "give a host name, several separated by commas, or 'all'");
  return names.map((name) => {
    const host = inv.hosts.find((h) => h.name === name);
    if (!host) throw new InputError("--host", `unknown host '${name}' in ${inv.file}; known hosts: ${inv.hosts.map((h) => h.name).join(", ")}`);
    return host;
  });
}

/**
 * Reads the join token agents register with: LABRIG_JOIN_TOKEN, else lab.dispatcher.joinTokenFile,
 * else the one the dispatcher-container step read back from the lab's dispatcher host.
 */
export function readJoinToken(inv: Inventory, env: NodeJS.ProcessEnv = process.env): string {
  if (env.LABRIG_JOIN_TOKEN) return env.LABRIG_JOIN_TOKEN.trim();
  const file = inv.lab.dispatcher?.joinTokenFile;
  if (file) {
    try {
      return readFileSync(file, "utf8").trim();
    } catch (err) {
      throw new InputError(`${inv.file}: lab.dispatcher.joinTokenFile`, `cannot read the join token from ${file}; the dispatcher writes it to its state folder as join-token`, { cause: err });
    }
  }
  const saved = readSavedDispatcher(inv.lab.name, env);
  if (saved && existsSync(saved.joinTokenFile)) return readFileSync(saved.joinTokenFile, "utf8").trim();
  const deployer = inv.hosts.find((h) => h.roles.includes("dispatcher"));
  throw new InputError(
    `${inv.file}: lab.dispatcher`,
    `no join token: ${deployer ? `provision the dispatcher host first (labrig provision --host ${deployer.name}; --host all does it first), or ` : ""}set lab.dispatcher.joinTokenFile or LABRIG_JOIN_TOKEN (looked in ${savedDispatcherDir(inv.lab.name, env)} too)`,
  );
}

/** The URL agents reach the dispatcher at: lab.dispatcher.url, else the one saved when its container was deployed. */
export function dispatcherUrl(inv: Inventory, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return inv.lab.dispatcher?.url ?? readSavedDispatcher(inv.lab.name, env)?.url;
}

function schemaError(err: z.ZodError, prefix: (string | number)[], where: (p: (string | number)[]) => string, host?: string, hostValue?: unknown): InputError {
  const issue = err.issues[0]!;
  const field = issue.path.map(String).join(".") || "(top level)";
  // A field inherited from defaults is reported where it is written.
  const inHost = host !== undefined && hasPath(hostValue, issue.path as (string | number)[]);
  const at = host === undefined ? where(issue.path as (string | number)[]) : where(inHost ? [...prefix, ...(issue.path as (string | number)[])] : ["defaults", ...(issue.path as (string | number)[])]);
  const subject = host === undefined ? `field '${field}'` : `host '${host}', field '${field}'${inHost || issue.path.length === 0 ? "" : " (from defaults)"}`;
  const detail = issue.code === "unrecognized_keys" ? `unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(", ")}` : issue.message;
  return new InputError(at, `${subject}: ${detail}`);
}

function hasPath(value: unknown, path: (string | number)[]): boolean {
  let cur = value;
  for (const key of path) {
    if (cur === null || typeof cur !== "object" || !(key in (cur as object))) return false;
    cur = (cur as Record<string | number, unknown>)[key];
  }
  return true;
}

/** file:line:col of the deepest node on `path` that exists (the file alone if none). */
function locate(doc: Document, lines: LineCounter, file: string, path: (string | number)[]): string {
  for (let n = path.length; n > 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    // For a missing key, the map that should hold it is the best place to point.
    if (node && (isScalar(node) || isMap(node) || node.range)) {
      const pos = lines.linePos(node.range![0]);
      return `${file}:${pos.line}:${pos.col}`;
    }
  }
  return file;
}

function expand(value: unknown, path: (string | number)[], env: NodeJS.ProcessEnv, where: (p: (string | number)[]) => string): unknown {
  if (typeof value === "string") {
    let out = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new InputError(where(path), `\${${name}} is not set in the environment`);
      return v;
    });
    if (pathFields.has(String(path[path.length - 1]))) out = expandHome(out);
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => expand(v, [...path, i], env, where));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, [...path, k], env, where)]));
  }
  return value;
}

export function expandHome(p: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return resolve(homedir(), p.slice(2));
  return p;
}

/** Host values over defaults: objects merge key by key, anything else (arrays too) replaces. */
export function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeDeep(b, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.trim();
}
