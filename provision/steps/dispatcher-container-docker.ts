// dockerode against a host's Docker engine over SSH, the way `docker -H ssh://` does it: each HTTP
// connection is an SSH exec channel running `docker system dial-stdio`, here through `sudo -n` so
// a NAS admin who is not in a docker group works too (Synology keeps docker.sock root-only).
// Also moves an image between engines as `docker save | docker load`, streamed, never on disk.
//
//   const conn = await connectDockerOverSsh(target, { knownHostsFile });
//   await conn.docker.ping();  ...  await conn.close();
import { spawn } from "node:child_process";
import { Agent } from "node:http";
import { Duplex } from "node:stream";
import Docker from "dockerode";
import { LabrigError } from "../../core/errors.js";
import { HostKeyChangedError } from "../known-hosts.js";
import { connectSsh, HostKeyNotPinnedError, type SshTarget } from "../ssh-remote.js";

/** Opens one byte stream to the engine's API (one HTTP connection). */
export type StreamOpener = () => Promise<Duplex>;

export interface DockerConnection {
  docker: Docker;
  close(): Promise<void>;
}

/**
 * The command that bridges stdin/stdout to the engine's socket: directly when the login user may
 * use the socket (the docker group), else through `sudo -n` (a Synology keeps docker.sock
 * root-only). Synology keeps its docker CLI in /usr/local/bin, which sudo's secure_path leaves out.
 */
export function dialStdioCommand(asRoot: boolean): string {
  const dial = `PATH="$PATH:/usr/local/bin:/usr/bin:/bin" exec docker system dial-stdio`;
  if (asRoot) return `sh -c '${dial}'`;
  return `sh -c 'if [ -w /var/run/docker.sock ]; then ${dial}; fi; exec sudo -n sh -c '"'"'${dial}'"'"''`;
}

/** dockerode whose every connection comes from `open` (no keep-alive: a channel per request). */
export function dockerOverStreams(open: StreamOpener): Docker {
  const agent = new Agent({ keepAlive: false });
  (agent as unknown as { createConnection: unknown }).createConnection = (_opts: unknown, done: (err: Error | null, s?: Duplex) => void) => {
    open().then(
      (s) => done(null, s),
      (err: Error) => done(err),
    );
  };
  return new Docker({ protocol: "http", host: "docker", port: 2375, agent } as Docker.DockerOptions);
}

export class DockerOverSshError extends LabrigError {}

/** One SSH connection (host keys pinned, jump hosts passed, like every provisioning connection), a channel per API connection. */
export async function connectDockerOverSsh(target: SshTarget, opts: { knownHostsFile: string; connectTimeoutMs?: number; pinNew?: boolean }): Promise<DockerConnection> {
  const client = await connectSsh(target, opts).catch((err: unknown) => {
    throw err instanceof HostKeyChangedError || err instanceof HostKeyNotPinnedError ? err : new DockerOverSshError(`cannot reach the Docker engine of ${target.host} over SSH: ${(err as Error).message}`, { cause: err });
  });
  const command = dialStdioCommand(target.user === "root");
  const open: StreamOpener = () =>
    new Promise((resolve, reject) =>
      client.exec(command, (err, channel) => {
        if (err) return reject(new DockerOverSshError(`on ${target.host}: cannot open an SSH channel for docker: ${err.message}`, { cause: err }));
        let stderr = "";
        channel.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        channel.on("exit", (code: number | null) => {
          if (code) channel.emit("error", new DockerOverSshError(dialFailure(target.host, code, stderr)));
        });
        resolve(channel);
      }),
    );
  const docker = dockerOverStreams(open);
  return {
    docker,
    close: async () => {
      client.end();
    },
  };
}

/** The control machine's own engine (DOCKER_HOST or the default socket). */
export function localDocker(): Docker {
  return new Docker();
}

/** A local process as the stream (for hosts reached without SSH, e.g. the control machine itself). */
export function localStreamOpener(command: string): StreamOpener {
  return async () => {
    const child = spawn("sh", ["-c", command], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
    child.on("exit", (code) => {
      if (code) stream.destroy(new DockerOverSshError(dialFailure("localhost", code, stderr)));
    });
    return stream;
  };
}

function dialFailure(host: string, code: number, stderr: string): string {
  if (/a password is required|a terminal is required/.test(stderr)) {
    return `on ${host}: sudo wants a password for docker; give the login user passwordless sudo, or log in as root`;
  }
  if (/not found/.test(stderr)) return `on ${host}: the docker command is missing; install Docker (or Container Manager on a Synology) first`;
  return `on ${host}: docker system dial-stdio exited ${code}: ${stderr.trim().split("\n").slice(-3).join(" ")}`;
}

/** The image's ID on an engine, or undefined when it lacks it. */
export async function imageId(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

/** `docker save REF | docker load`, streamed from one engine to the other; the ID survives the trip. */
export async function transferImage(from: Docker, to: Docker, ref: string): Promise<void> {
  const tar = await from.getImage(ref).get();
  const res = await to.loadImage(tar as unknown as NodeJS.ReadableStream, { quiet: true });
  await followOutput(to, res, `loading ${ref}`);
}

/** `docker pull REF` on the engine; throws with the registry's message when it cannot. */
export async function pullImage(docker: Docker, ref: string): Promise<void> {
  const res = await docker.pull(ref);
  await followOutput(docker, res, `pulling ${ref}`);
}

function followOutput(docker: Docker, stream: NodeJS.ReadableStream, what: string): Promise<void> {
  return new Promise((resolve, reject) =>
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = err?.message ?? output?.find((o) => o.error)?.error;
        if (failed) reject(new LabrigError(`${what} failed: ${failed}`));
        else resolve();
      },
    ),
  );
}
