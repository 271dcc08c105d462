// Fact: Docker's daemon configuration (/etc/docker/daemon.json), the runtimes `docker info` lists,
// and a container's state.
//   await daemonConfig(remote)   // { "log-driver": "json-file", ... } or undefined when absent
//   await dockerRuntimes(remote) // ["io.containerd.runc.v2", "nvidia", "runc"]
//   await containerState(remote, "labrig-dispatcher")  // "running", "exited", …, or "missing"
import { LabrigError } from "../../core/errors.js";
import { type Remote, shq } from "../remote.js";

export const daemonJsonPath = "/etc/docker/daemon.json";

/** The PATH the docker command is looked up in: also where a Synology keeps it (/usr/local/bin, which sudo's secure_path may leave out). */
const dockerPath = `PATH="$PATH:/usr/local/bin"`;
/** The docker command, found also where a Synology keeps it. */
export const dockerCli = `${dockerPath} docker`;

/** Whether the host has the docker command at all: not on a bare host before the docker step. */
export async function dockerInstalled(remote: Remote): Promise<boolean> {
  return (await remote.exec(`${dockerPath}; command -v docker >/dev/null 2>&1`)).exitCode === 0;
}

export async function daemonConfig(remote: Remote): Promise<{ raw?: string; config?: Record<string, unknown> }> {
  const buf = await remote.readFile(daemonJsonPath);
  if (!buf) return {};
  const raw = buf.toString("utf8");
  if (raw.trim() === "") return { raw, config: {} };
  try {
    return { raw, config: JSON.parse(raw) as Record<string, unknown> };
  } catch (err) {
    throw new LabrigError(`on ${remote.host}: ${daemonJsonPath} is not valid JSON (${(err as Error).message}); fix or remove it, then run again`);
  }
}

export async function dockerRuntimes(remote: Remote): Promise<string[] | undefined> {
  const res = await remote.exec("docker info --format '{{json .Runtimes}}'", { sudo: true, timeoutMs: 30_000 });
  if (res.exitCode !== 0) return undefined;
  return Object.keys(JSON.parse(res.stdout) as Record<string, unknown>).sort();
}

/** The container's state as `docker container inspect` has it (running, exited, …), or "missing" (also when the engine does not answer). */
export async function containerState(remote: Remote, name: string): Promise<string> {
  const res = await remote.exec(`${dockerCli} container inspect --format '{{.State.Status}}' ${shq(name)}`, { sudo: true, timeoutMs: 30_000 });
  return res.exitCode === 0 ? res.stdout.trim() : "missing";
}
