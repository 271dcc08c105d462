// Step `nvidia-toolkit`: on hosts whose NVIDIA driver works (`nvidia-smi -L`), NVIDIA's apt
// repository (URL and key from the inventory, so an offline mirror works), the
// nvidia-container-toolkit package, `nvidia-ctk runtime configure --runtime=docker`, the cgroupfs
// driver, Docker restarted only if daemon.json changed, and proof that `docker info` lists the
// nvidia runtime (plus a `--gpus all` smoke run when an image is configured).
//
// Why cgroupfs: under the systemd cgroup driver, `systemctl daemon-reload` can take the GPUs away
// from running containers ("Failed to initialize NVML: Unknown Error"); NVIDIA's documented
// remedy is `"exec-opts": ["native.cgroupdriver=cgroupfs"]`. labrig also never daemon-reloads
// unless a unit file it manages changed.
import { LabrigError } from "../../core/errors.js";
import type { Change } from "../change.js";
import { commandOutput } from "../facts/commands.js";
import { daemonConfig, daemonJsonPath, dockerRuntimes } from "../facts/docker.js";
import { type FileState, fileStates } from "../facts/files.js";
import { installedPackages } from "../facts/packages.js";
import { applyChanges, planFile, sha256 } from "../ops.js";
import { shq } from "../remote.js";
import type { HostConfig } from "../inventory.js";
import type { CheckResult, Step, StepContext } from "../step.js";
import { renderDaemonJson, withCgroupfsDriver } from "./daemon-json.js";

export const nvidiaKeyring = "/usr/share/keyrings/labrig-nvidia-container-toolkit.gpg";
export const nvidiaList = "/etc/apt/sources.list.d/labrig-nvidia-container-toolkit.list";
const configureRuntime = "nvidia-ctk runtime configure --runtime=docker";
const setCgroupfs = "set native.cgroupdriver=cgroupfs in daemon.json";

export function nvidiaSourceLine(repository: string, keyUrl: string | undefined): string {
  return keyUrl ? `deb [signed-by=${nvidiaKeyring}] ${repository} /\n` : `deb ${repository} /\n`;
}

/** What the nvidia-toolkit step's plan is made from (tests build it by hand). */
export interface NvidiaToolkitFacts {
  /** `nvidia-smi -L`'s lines; undefined when the driver is missing or fails */
  gpus?: string;
  toolkit?: string;
  aptSource?: FileState;
  keyringExists: boolean;
  daemonJson: Record<string, unknown>;
  /** what `docker info` lists; undefined when docker did not answer */
  dockerRuntimes?: string[];
}

/** The nvidia-toolkit step's plan (pure): skipped or refused without a driver; else key, source, package, runtime, cgroupfs, restart. */
export function planNvidiaToolkit(host: Pick<HostConfig, "gpu" | "nvidia">, facts: NvidiaToolkitFacts): Pick<CheckResult, "changes" | "skip" | "fail"> {
  if (facts.gpus === undefined) {
    const why = "no working NVIDIA driver (nvidia-smi is missing or fails)";
    if (host.gpu === "required") return { changes: [], fail: `${why}, and the inventory says gpu: required; install the driver, reboot, run again` };
    return { changes: [], skip: `${why}; install the driver and run again to set up the toolkit` };
  }
  const changes: Change[] = [];
  const list = planFile(facts.aptSource, { path: nvidiaList, content: nvidiaSourceLine(host.nvidia.repository, host.nvidia.keyUrl), mode: 0o644 }, "NVIDIA apt source");
  if (host.nvidia.keyUrl && !facts.keyringExists) changes.push({ kind: "run", what: `fetch the signing key from ${host.nvidia.keyUrl}`, reason: "for NVIDIA's repository" });
  if (list) changes.push(list);
  if (!facts.toolkit) changes.push({ kind: "install-packages", packages: ["nvidia-container-toolkit"], refresh: true, reason: "not installed" });
  const runtimes = (facts.daemonJson.runtimes ?? {}) as Record<string, unknown>;
  if (!runtimes.nvidia) changes.push({ kind: "run", what: configureRuntime, reason: "Docker has no nvidia runtime in daemon.json" });
  if (withCgroupfsDriver(facts.daemonJson).added.length) changes.push({ kind: "run", what: setCgroupfs, reason: "keeps GPUs in running containers across daemon-reload" });
  if (changes.some((c) => c.kind === "run" && (c.what === configureRuntime || c.what === setCgroupfs))) {
    changes.push({ kind: "restart-unit", unit: "docker.service", reason: "if daemon.json changed" });
  } else if (!facts.dockerRuntimes?.includes("nvidia")) {
    changes.push({ kind: "restart-unit", unit: "docker.service", reason: "docker info does not list the nvidia runtime yet" });
  }
  return { changes };
}

export const nvidiaToolkitStep: Step = {
  id: "nvidia-toolkit",
  description: "NVIDIA container toolkit and Docker's nvidia runtime, when a driver is present",
  roles: ["gpu"],
  async check(ctx) {
    const { remote, host } = ctx;
    if (host.gpu === "none") return { facts: {}, changes: [], skip: "gpu: none in the inventory" };
    const gpus = await commandOutput(remote, "nvidia-smi -L");
    if (gpus === undefined) return { facts: { driver: false }, ...planNvidiaToolkit(host, { gpus, keyringExists: false, daemonJson: {} }) };
    const [installed, files, daemon, runtimes] = await Promise.all([
      installedPackages(remote, ["nvidia-container-toolkit"]),
      fileStates(remote, [nvidiaList, nvidiaKeyring]),
      daemonConfig(remote),
      dockerRuntimes(remote),
    ]);
    const toolkit = installed.get("nvidia-container-toolkit");
    const plan = planNvidiaToolkit(host, {
      gpus,
      ...(toolkit ? { toolkit } : {}),
      aptSource: files.get(nvidiaList),
      keyringExists: !!files.get(nvidiaKeyring)?.exists,
      daemonJson: daemon.config ?? {},
      ...(runtimes ? { dockerRuntimes: runtimes } : {}),
    });
    return { facts: { driver: true, gpus: gpus.split("\n").length, toolkit: toolkit ?? null }, ...plan };
  },
  async apply(ctx, changes) {
    const { remote, host } = ctx;
    const before = sha256((await daemonConfig(remote)).raw ?? "");
    const restart = changes.find((c) => c.kind === "restart-unit");
    await applyChanges(ctx, changes.filter((c) => c !== restart), {
      files: new Map([[nvidiaList, { path: nvidiaList, content: nvidiaSourceLine(host.nvidia.repository, host.nvidia.keyUrl), mode: 0o644 }]]),
      runs: {
        [`fetch the signing key from ${host.nvidia.keyUrl}`]: async () => {
          await remote.run(`curl -fsSL ${shq(host.nvidia.keyUrl!)} | gpg --dearmor --yes -o ${nvidiaKeyring} && chmod 0644 ${nvidiaKeyring}`, { sudo: true });
        },
        [configureRuntime]: async () => {
          await remote.run(configureRuntime, { sudo: true });
        },
        [setCgroupfs]: async () => {
          const merged = withCgroupfsDriver((await daemonConfig(remote)).config ?? {});
          if (merged.added.length) await remote.writeFile(daemonJsonPath, renderDaemonJson(merged.config), { mode: 0o644 });
        },
      },
    });
    if (restart) {
      const after = sha256((await daemonConfig(remote)).raw ?? "");
      const needed = after !== before || restart.reason.startsWith("docker info");
      if (needed) await remote.run("systemctl restart docker.service", { sudo: true });
      else ctx.log("daemon.json did not change: Docker not restarted");
      ctx.applied(restart);
    }
    await verifyRuntime(ctx);
  },
};

async function verifyRuntime(ctx: StepContext): Promise<void> {
  const runtimes = await dockerRuntimes(ctx.remote);
  if (!runtimes?.includes("nvidia")) {
    throw new LabrigError(`on ${ctx.host.name}: docker info lists the runtimes ${runtimes?.join(", ") ?? "(docker did not answer)"} but not nvidia; see /etc/docker/daemon.json and journalctl -u docker`);
  }
  const image = ctx.host.nvidia.smokeImage;
  if (image) {
    ctx.log(`smoke run: docker run --rm --gpus all ${image} nvidia-smi -L`);
    await ctx.remote.run(`docker run --rm --gpus all ${shq(image)} nvidia-smi -L`, { sudo: true, timeoutMs: 300_000 });
  }
}
