// Step `docker`: the Docker engine (Debian's docker.io by default, or docker-ce from Docker's
// repository or a mirror of it), /etc/docker/daemon.json merged with log rotation (the admin's
// settings kept), the service enabled and running, and the login user in the docker group.
// Docker is restarted only when daemon.json changed under a running engine.
import type { Change } from "../change.js";
import { commandOutput } from "../facts/commands.js";
import { daemonConfig, daemonJsonPath } from "../facts/docker.js";
import { fileStates } from "../facts/files.js";
import { installedPackages, missingPackages } from "../facts/packages.js";
import { unitStates } from "../facts/systemd.js";
import { groupsOf } from "../facts/users.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import { shq } from "../remote.js";
import type { FileState } from "../facts/files.js";
import type { UnitState } from "../facts/systemd.js";
import type { HostConfig } from "../inventory.js";
import type { Step, StepContext } from "../step.js";
import { renderDaemonJson, withLogRotation } from "./daemon-json.js";

const dockerKey = "/etc/apt/keyrings/labrig-docker.asc";
const dockerList = "/etc/apt/sources.list.d/labrig-docker.list";

function packagesFor(ctx: StepContext): string[] {
  return ctx.host.docker.source === "distribution" ? ["docker.io"] : ["docker-ce", "docker-ce-cli", "containerd.io"];
}

/** What the docker step's plan is made from (tests build it by hand). */
export interface DockerFacts {
  /** package → version, undefined when not installed */
  installed: Map<string, string | undefined>;
  /** /etc/docker/daemon.json as parsed, undefined when absent */
  daemonJson?: Record<string, unknown>;
  unit: UnitState;
  /** the login user's groups */
  groups: string[];
  /** Docker's apt source, when the host takes docker-ce from Docker's repository */
  aptSource?: FileState;
  /** the release's codename (bookworm, noble), for that source */
  codename?: string;
}

/** The docker step's plan (pure): apt source, daemon.json, packages, the service, the docker group, in that order. */
export function planDocker(host: Pick<HostConfig, "user" | "docker">, facts: DockerFacts): Change[] {
  const missing = missingPackages(facts.installed);
  const files = desiredFiles(host, facts);
  const changes: Change[] = [];
  if (host.docker.source === "docker") {
    const list = planFile(facts.aptSource, files.get(dockerList)!, "Docker apt source");
    if (list) changes.push(list, { kind: "run", what: fetchKey(host), reason: "for its repository" });
  }
  // daemon.json first: a fresh install then starts with it, and needs no restart.
  const merged = withLogRotation(facts.daemonJson ?? {}, host.docker.logMaxSize, host.docker.logMaxFile);
  if (merged.added.length) changes.push({ ...planFile(undefined, files.get(daemonJsonPath)!)!, reason: `adds ${merged.added.join(", ")}` });
  if (missing.length) changes.push({ kind: "install-packages", packages: missing, refresh: host.docker.source === "docker", reason: "not installed" });
  const { unit } = facts;
  if (unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: "docker.service", reason: missing.length ? "after install" : `is ${unit.enabled}` });
  if (unit.active !== "active") changes.push({ kind: "start-unit", unit: "docker.service", reason: missing.length ? "after install" : `is ${unit.active}` });
  else if (merged.added.length) changes.push({ kind: "restart-unit", unit: "docker.service", reason: "daemon.json changed" });
  if (!facts.groups.includes("docker")) changes.push({ kind: "add-to-group", user: host.user, group: "docker", reason: "to use docker without sudo" });
  return changes;
}

const fetchKey = (host: Pick<HostConfig, "docker">) => `fetch Docker's signing key from ${host.docker.mirror}/gpg`;

async function readDockerFacts(ctx: StepContext): Promise<DockerFacts> {
  const { remote, host } = ctx;
  const fromDocker = host.docker.source === "docker";
  const [installed, daemon, units, groups, sources, codename] = await Promise.all([
    installedPackages(remote, packagesFor(ctx)),
    daemonConfig(remote),
    unitStates(remote, ["docker.service"]),
    groupsOf(remote, host.user),
    fromDocker ? fileStates(remote, [dockerList]) : undefined,
    fromDocker ? remote.run(". /etc/os-release && echo $VERSION_CODENAME").then((o) => o.trim()) : undefined,
  ]);
  return {
    installed,
    unit: units.get("docker.service")!,
    groups,
    ...(daemon.config ? { daemonJson: daemon.config } : {}),
    ...(sources ? { aptSource: sources.get(dockerList) } : {}),
    ...(codename ? { codename } : {}),
  };
}

export const dockerStep: Step = {
  id: "docker",
  description: "Docker engine, daemon.json with log rotation, service running, user in the docker group",
  roles: ["gpu", "dispatcher"],
  ownedByDsm: "Docker comes from Container Manager (Package Center); labrig uses its /usr/local/bin/docker through sudo",
  async check(ctx) {
    const facts = await readDockerFacts(ctx);
    const changes = planDocker(ctx.host, facts);
    const version = missingPackages(facts.installed).length ? undefined : await commandOutput(ctx.remote, "docker version --format '{{.Server.Version}}'", { sudo: true });
    return { facts: { installed: Object.fromEntries(facts.installed), serverVersion: version, daemonJson: facts.daemonJson ?? null }, changes };
  },
  async apply(ctx, changes) {
    // daemon.json is merged into what is there now, so an edit made since the check is kept.
    const facts = await readDockerFacts(ctx);
    await applyChanges(ctx, changes, {
      files: desiredFiles(ctx.host, facts),
      runs: {
        [fetchKey(ctx.host)]: async () => {
          await ctx.remote.run(`mkdir -p /etc/apt/keyrings && curl -fsSL ${shq(`${ctx.host.docker.mirror}/gpg`)} -o ${dockerKey}`, { sudo: true });
        },
      },
    });
  },
};

function desiredFiles(host: Pick<HostConfig, "docker">, facts: Pick<DockerFacts, "daemonJson" | "codename">): Map<string, DesiredFile> {
  const merged = withLogRotation(facts.daemonJson ?? {}, host.docker.logMaxSize, host.docker.logMaxFile);
  const files: DesiredFile[] = [{ path: daemonJsonPath, content: renderDaemonJson(merged.config), mode: 0o644 }];
  if (host.docker.source === "docker") {
    files.push({ path: dockerList, content: `deb [signed-by=${dockerKey}] ${host.docker.mirror} ${facts.codename ?? ""} stable\n`, mode: 0o644 });
  }
  return new Map(files.map((f) => [f.path, f]));
}
