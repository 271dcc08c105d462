// The Docker engine the container tests use: the private dockerd that `.ci/start-dockerd.sh`
// starts, reached through DOCKER_HOST. Tests that need it call `requireDocker()` first, which
// fails loudly (never skips) when the engine is missing, since CI always has one.
import { execa } from "execa";

export class DockerUnavailableError extends Error {
  constructor(detail: string) {
    super(
      `these tests need a Docker engine: ${detail}. Start one with: eval "$(.ci/start-dockerd.sh)" ` +
        `(installs nothing; needs Debian's docker.io, see .ci/apt-packages)`,
    );
    this.name = "DockerUnavailableError";
  }
}

let checked: Promise<void> | undefined;

/** Throws DockerUnavailableError unless DOCKER_HOST is set and its engine answers. */
export function requireDocker(): Promise<void> {
  checked ??= (async () => {
    if (!process.env.DOCKER_HOST) throw new DockerUnavailableError("DOCKER_HOST is not set");
    const res = await execa("docker", ["version", "--format", "{{.Server.Version}}"], { reject: false, timeout: 20_000 });
    if (res.exitCode !== 0) {
      throw new DockerUnavailableError(`the engine at ${process.env.DOCKER_HOST} does not answer (${res.stderr.trim() || res.exitCode})`);
    }
  })();
  return checked;
}

/** Runs the docker CLI and returns its trimmed stdout; a failure names the command and its stderr. */
export async function docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const res = await execa("docker", args, { reject: false, input: opts.input, timeout: opts.timeoutMs ?? 120_000 });
  if (res.exitCode !== 0 || res.timedOut) {
    throw new Error(`docker ${args.join(" ")} failed (${res.timedOut ? "timed out" : `exit ${res.exitCode}`}): ${res.stderr.trim().slice(-2000)}`);
  }
  return res.stdout.trim();
}
