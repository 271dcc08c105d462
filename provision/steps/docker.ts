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
import type { Step, StepContext } from "../step.js";
import { renderDaemonJson, withLogRotation } from "./daemon-json.js";

const dockerKey = "/etc/apt/keyrings/labrig-docker.asc";
const dockerList = "/etc/apt/sources.list.d/labrig-docker.list";

function packagesFor(ctx: StepContext): string[] {
  return ctx.host.docker.source === "distribution" ? ["docker.io"] : ["docker-ce", "docker-ce-cli", "containerd.io"];
}

export const dockerStep: Step = {
  id: "docker",
  description: "Docker engine, daemon.json with log rotation, service running, user in the docker group",
  roles: ["gpu", "dispatcher"],
  ownedByDsm: "Docker comes from Container Manager (Package Center); labrig uses its /usr/local/bin/docker through sudo",
  async check(ctx) {
    const { remote, host } = ctx;
    const packages = packagesFor(ctx);
    const [installed, daemon, units, groups] = await Promise.all([
      installedPackages(remote, packages),
      daemonConfig(remote),
      unitStates(remote, ["docker.service"]),
      groupsOf(remote, host.user),
    ]);
    const missing = missingPackages(installed);
    const unit = units.get("docker.service")!;
    const changes: Change[] = [];
    const files = await desiredFiles(ctx, daemon.config ?? {});

    if (host.docker.source === "docker") {
      const states = await fileStates(remote, [dockerList]);
      const list = planFile(states.get(dockerList), files.get(dockerList)!, "Docker apt source");
      if (list) changes.push(list, { kind: "run", what: `fetch Docker's signing key from ${host.docker.mirror}/gpg`, reason: "for its repository" });
    }
    // daemon.json first: a fresh install then starts with it, and needs no restart.
    const merged = withLogRotation(daemon.config ?? {}, host.docker.logMaxSize, host.docker.logMaxFile);
    if (merged.added.length) {
      changes.push({ ...planFile(undefined, files.get(daemonJsonPath)!)!, reason: `adds ${merged.added.join(", ")}` });
    }
    if (missing.length) changes.push({ kind: "install-packages", packages: missing, refresh: host.docker.source === "docker", reason: "not installed" });
    if (unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: "docker.service", reason: missing.length ? "after install" : `is ${unit.enabled}` });
    if (unit.active !== "active") changes.push({ kind: "start-unit", unit: "docker.service", reason: missing.length ? "after install" : `is ${unit.active}` });
    else if (merged.added.length) changes.push({ kind: "restart-unit", unit: "docker.service", reason: "daemon.json changed" });
    if (!groups.includes("docker")) changes.push({ kind: "add-to-group", user: host.user, group: "docker", reason: "to use docker without sudo" });

    const version = missing.length ? undefined : await commandOutput(remote, "docker version --format '{{.Server.Version}}'", { sudo: true });
    return { facts: { installed: Object.fromEntries(installed), serverVersion: version, daemonJson: daemon.config ?? null }, changes };
  },
  async apply(ctx, changes) {
    const daemon = await daemonConfig(ctx.remote);
    const files = await desiredFiles(ctx, daemon.config ?? {});
    await applyChanges(ctx, changes, {
      files,
      runs: {
        [`fetch Docker's signing key from ${ctx.host.docker.mirror}/gpg`]: async () => {
          await ctx.remote.run(`mkdir -p /etc/apt/keyrings && curl -fsSL ${shq(`${ctx.host.docker.mirror}/gpg`)} -o ${dockerKey}`, { sudo: true });
        },
      },
    });
  },
};

async function desiredFiles(ctx: StepContext, current: Record<string, unknown>): Promise<Map<string, DesiredFile>> {
  const { host } = ctx;
  const merged = withLogRotation(current, host.docker.logMaxSize, host.docker.logMaxFile);
  const files: DesiredFile[] = [{ path: daemonJsonPath, content: renderDaemonJson(merged.config), mode: 0o644 }];
  if (host.docker.source === "docker") {
    const codename = (await ctx.remote.run(". /etc/os-release && echo $VERSION_CODENAME")).trim();
    files.push({ path: dockerList, content: `deb [signed-by=${dockerKey}] ${host.docker.mirror} ${codename} stable\n`, mode: 0o644 });
  }
  return new Map(files.map((f) => [f.path, f]));
}
