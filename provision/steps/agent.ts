// Step `agent`: the labrig agent as a systemd service, on labrig's own Node.js
// (/opt/labrig/node/bin/node, npm's node-linux-<arch> at the pinned version, node-runtime.ts; the
// host's nodejs package is neither needed nor touched, and the new runtime is run once on the host
// before it replaces the old one), the bundled agent in /opt/labrig/agent/ (each uploaded only
// when its hash differs), /etc/labrig/agent.env (0600 root: dispatcher URL, host id, join token),
// labrig-agent.service (Restart=always, hardened, logs to journald), enabled and running, and
// restarted only when the runtime, the bundle, the env file or the unit changed. The join token is the one
// ctx.joinTokens grants the host (join-tokens.ts: a single-use one for a host not registered yet,
// the env file's own for a registered one), else the lab's shared one.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { InputError, LabrigError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { commandOutput } from "../facts/commands.js";
import { type FileState, fileStates } from "../facts/files.js";
import { type UnitState, unitStates } from "../facts/systemd.js";
import { dispatcherUrl, readJoinToken } from "../inventory.js";
import { joinTokenInEnv } from "../join-tokens.js";
import { glibcProblem, type NodeRuntime, nodeArchOf, resolveNodeRuntime } from "../node-runtime.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import { shq } from "../remote.js";
import type { Step, StepContext } from "../step.js";

export const agentBundleRemote = "/opt/labrig/agent/labrig-agent.mjs";
/** The agent's own Node.js on the host. */
export const agentNodeRemote = "/opt/labrig/node/bin/node";
export const agentEnvFile = "/etc/labrig/agent.env";
export const agentUnitFile = "/etc/systemd/system/labrig-agent.service";
export const agentUnit = "labrig-agent.service";
export const agentUser = "labrig-agent";
/** Where `pnpm build:agent` (esbuild) writes the bundle on the control machine. */
export const defaultAgentBundle = resolve(import.meta.dirname, "../../dist/agent/labrig-agent.mjs");
const createUser = `create the system user ${agentUser}`;

function agentDispatcherUrl(inventory: StepContext["inventory"]): string {
  const url = dispatcherUrl(inventory);
  if (!url) throw new InputError(`${inventory.file}: lab.dispatcher.url`, "the agent needs the dispatcher's URL: set lab.dispatcher.url, or give a host role dispatcher and provision it first");
  return url;
}

export function renderAgentEnv(ctx: Pick<StepContext, "host" | "inventory">, joinToken: string): string {
  const { host, inventory } = ctx;
  const url = agentDispatcherUrl(inventory);
  const lines = {
    LABRIG_URL: url,
    LABRIG_HOST_ID: host.name,
    LABRIG_JOIN_TOKEN: joinToken,
    LABRIG_WORKDIR: host.agent.workdir,
    LABRIG_LISTEN: `0.0.0.0:${host.agent.port}`,
    LABRIG_LABELS: Object.entries(host.labels).map(([k, v]) => `${k}=${v}`).join(","),
  };
  return "# Written by labrig provision; changes here are replaced on the next run.\n" + Object.entries(lines).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

export function renderAgentUnit(opts: { workdir: string; dockerGroup: boolean }): string {
  return `# Written by labrig provision.
[Unit]
Description=labrig agent (runs the dispatcher's jobs on this host)
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=simple
User=${agentUser}
Group=${agentUser}
${opts.dockerGroup ? "SupplementaryGroups=docker\n" : ""}EnvironmentFile=${agentEnvFile}
ExecStart=${agentNodeRemote} ${agentBundleRemote}
WorkingDirectory=${opts.workdir}
Restart=always
RestartSec=5
# Hardening that leaves jobs their GPUs, /home and Docker.
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ReadWritePaths=${opts.workdir}
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
`;
}

/** The join token for the env file, and why that one when ctx.joinTokens chose another than the file holds. */
async function joinTokenFor(ctx: StepContext): Promise<{ token: string; why?: string }> {
  if (!ctx.joinTokens) return { token: readJoinToken(ctx.inventory) };
  const current = joinTokenInEnv((await ctx.remote.readFile(agentEnvFile))?.toString("utf8") ?? "");
  const grant = await ctx.joinTokens.forHost(ctx.host.name, { current });
  if (grant.kind === "shared") ctx.log(`join token: ${grant.why}`);
  return grant.kind === "current" ? { token: grant.token } : { token: grant.token, why: grant.why };
}

/** What the host is, as far as the runtime goes: its architecture, its glibc, the runtime it has. */
async function runtimeFacts(ctx: StepContext): Promise<{ machine: string; glibc?: string; installed?: string }> {
  const [machine, glibc, installed] = await Promise.all([
    commandOutput(ctx.remote, "uname -m"),
    commandOutput(ctx.remote, "getconf GNU_LIBC_VERSION"),
    commandOutput(ctx.remote, `${agentNodeRemote} --version`),
  ]);
  return { machine: machine ?? "unknown", ...(glibc ? { glibc } : {}), ...(installed ? { installed } : {}) };
}

/** Why the host cannot run the agent's runtime (pure), or undefined. */
export function runtimeRefusal(facts: { machine: string; glibc?: string }): string | undefined {
  if (!nodeArchOf(facts.machine)) return `the agent's Node runtime is built for x86_64 and aarch64 hosts; this host is ${facts.machine}`;
  return glibcProblem(facts.glibc);
}

/** The runtime for the host, or why it cannot have one. */
async function runtimeFor(ctx: StepContext, facts: { machine: string; glibc?: string }): Promise<{ runtime: NodeRuntime } | { fail: string }> {
  const fail = runtimeRefusal(facts);
  if (fail) return { fail };
  return { runtime: await resolveNodeRuntime(nodeArchOf(facts.machine)!, { flag: ctx.assets.nodeRuntime, onLine: ctx.log }) };
}

/** What the plan is made from, besides the files wanted (tests build it by hand). */
export interface AgentFacts {
  files: Map<string, FileState>;
  unit: UnitState;
  userExists: boolean;
  workdirExists: boolean;
}

export interface AgentWanted {
  files: DesiredFile[];
  workdir: string;
  joinTokenWhy?: string;
  runtime: Pick<NodeRuntime, "version" | "arch" | "sizeBytes">;
}

/** The agent step's plan (pure): the user, each file, the work folder, then the unit, in the order apply makes them. */
export function planAgent(facts: AgentFacts, want: AgentWanted): Change[] {
  const { runtime } = want;
  const changes: Change[] = [];
  if (!facts.userExists) changes.push({ kind: "run", what: createUser, reason: "the agent runs as it" });
  const fileChanges = want.files
    .map((f) => planFile(facts.files.get(f.path), f, fileWhat.get(f.path)))
    .filter((c) => c !== undefined)
    .map((c) => (c.kind === "write-file" && c.path === agentNodeRemote ? { ...c, reason: `${c.reason}: Node ${runtime.version || "from --node-runtime"} for ${runtime.arch}, ${Math.round(runtime.sizeBytes / 1e6)} MB, run once there before it replaces the old one` } : c))
    .map((c) => (c.kind === "write-file" && c.path === agentEnvFile && want.joinTokenWhy ? { ...c, reason: `${c.reason}; join token: ${want.joinTokenWhy}` } : c));
  changes.push(...fileChanges);
  if (!facts.workdirExists) changes.push({ kind: "run", what: `create ${want.workdir}`, reason: `owned by ${agentUser}` });
  if (fileChanges.some((c) => c.kind === "write-file" && c.path === agentUnitFile)) changes.push({ kind: "daemon-reload", reason: "the unit changed" });
  const { unit } = facts;
  if (unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: agentUnit, reason: `is ${unit.enabled}` });
  if (unit.active !== "active") changes.push({ kind: "start-unit", unit: agentUnit, reason: `is ${unit.active}` });
  else if (fileChanges.some((c) => c.kind === "write-file")) changes.push({ kind: "restart-unit", unit: agentUnit, reason: "its runtime, bundle, env or unit changed" });
  return changes;
}

async function desired(ctx: StepContext, runtime: NodeRuntime): Promise<AgentWanted> {
  const bundlePath = ctx.assets.agentBundle ?? defaultAgentBundle;
  let bundle: Buffer;
  try {
    bundle = readFileSync(bundlePath);
  } catch {
    throw new LabrigError(`the agent bundle ${bundlePath} is missing: build it first (pnpm build:agent), or pass --agent-bundle PATH`);
  }
  const dockerGroup = (await ctx.remote.exec("getent group docker")).exitCode === 0;
  const workdir = ctx.host.agent.workdir;
  agentDispatcherUrl(ctx.inventory); // without one, say so before asking for a join token
  const joinToken = await joinTokenFor(ctx);
  return {
    workdir,
    runtime,
    ...(joinToken.why !== undefined ? { joinTokenWhy: joinToken.why } : {}),
    files: [
      { path: agentNodeRemote, content: { localPath: runtime.path, sha256: runtime.sha256 }, mode: 0o755, validate: runtimeStarts(runtime) },
      { path: agentBundleRemote, content: bundle, mode: 0o644 },
      { path: agentEnvFile, content: renderAgentEnv(ctx, joinToken.token), mode: 0o600 },
      { path: agentUnitFile, content: renderAgentUnit({ workdir, dockerGroup }), mode: 0o644 },
    ],
  };
}

const fileWhat = new Map([
  [agentNodeRemote, `Node runtime`],
  [agentEnvFile, "env file"],
  [agentUnitFile, "unit"],
  [agentBundleRemote, "agent bundle"],
]);

/** The check a sent runtime passes before it replaces the one there: it starts on this host and is the version planned. */
function runtimeStarts(runtime: NodeRuntime): string {
  const fail = (why: string) => `{ echo "the agent's Node runtime ${why}; pass --node-runtime PATH with a Node binary for this host" >&2; exit 1; }`;
  const said = `v=$(%s --version 2>&1) || ${fail("does not start on this host: $v")}`;
  return runtime.version ? `${said}; [ "$v" = ${shq(runtime.version)} ] || ${fail(`says $v, not ${runtime.version}`)}` : said;
}

export const agentStep: Step = {
  id: "agent",
  description: "labrig agent: its own Node.js, bundle, env file, systemd unit enabled and running",
  roles: ["gpu"],
  async check(ctx) {
    const { remote } = ctx;
    const host = await runtimeFacts(ctx);
    const facts = { machine: host.machine, glibc: host.glibc ?? null, node: host.installed ?? null };
    const chosen = await runtimeFor(ctx, host);
    if ("fail" in chosen) return { facts, changes: [], fail: chosen.fail };
    const { runtime } = chosen;
    const want = await desired(ctx, runtime);
    const [states, units, userExists, workdirExists] = await Promise.all([
      fileStates(remote, want.files.map((f) => f.path)),
      unitStates(remote, [agentUnit]),
      remote.exec(`id -u ${agentUser}`).then((r) => r.exitCode === 0),
      remote.exec(`test -d ${want.workdir}`).then((r) => r.exitCode === 0),
    ]);
    const unit = units.get(agentUnit)!;
    const changes = planAgent({ files: states, unit, userExists, workdirExists }, want);
    return { facts: { ...facts, runtime: `${runtime.version || runtime.path} ${runtime.arch} (${runtime.source})`, unit }, changes };
  },
  async apply(ctx, changes) {
    const chosen = await runtimeFor(ctx, await runtimeFacts(ctx));
    if ("fail" in chosen) throw new LabrigError(`on ${ctx.host.name}: ${chosen.fail}`);
    const { runtime } = chosen;
    const want = await desired(ctx, runtime);
    await applyChanges(ctx, changes, {
      files: new Map(want.files.map((f) => [f.path, f])),
      runs: {
        [createUser]: async () => {
          await ctx.remote.run(`useradd --system --home-dir /var/lib/labrig --no-create-home --shell /usr/sbin/nologin ${agentUser}`, { sudo: true });
        },
        [`create ${want.workdir}`]: async () => {
          await ctx.remote.run(`install -d -m 0750 -o ${agentUser} -g ${agentUser} ${want.workdir}`, { sudo: true });
        },
      },
    });
  },
};
