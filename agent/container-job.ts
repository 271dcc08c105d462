// Runs a job as a container on the host's Docker engine (dockerode, loaded only when a job names
// an image): created from buildContainerSpec, its stdout and stderr appended to job.log as the
// engine hands them over, stopped with `docker stop -t grace` on cancel or timeout, removed after.
import { createWriteStream } from "node:fs";
import type Dockerode from "dockerode";
import { LabrigError } from "../core/errors.js";
import { buildContainerSpec, type ContainerJob } from "./container-spec.js";
import type { JobExit, JobHandle } from "./job-handle.js";

export class ContainerJobError extends LabrigError {}

let docker: Dockerode | undefined;
/** The engine at DOCKER_HOST, else /var/run/docker.sock. */
export async function dockerEngine(): Promise<Dockerode> {
  if (!docker) {
    const { default: Docker } = await import("dockerode");
    docker = new Docker();
  }
  return docker;
}

async function ensureImage(engine: Dockerode, image: string, log: NodeJS.WritableStream): Promise<void> {
  try {
    await engine.getImage(image).inspect();
    return;
  } catch {
    /* not here: pull it */
  }
  log.write(`labrig: pulling ${image}\n`);
  const stream = await engine.pull(image);
  await new Promise<void>((resolve, reject) => engine.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
}

export async function startContainerJob(job: ContainerJob, logFile: string): Promise<JobHandle> {
  const engine = await dockerEngine();
  const log = createWriteStream(logFile, { flags: "a" });
  let container: Dockerode.Container;
  try {
    await ensureImage(engine, job.image, log);
    container = await engine.createContainer(buildContainerSpec(job));
    const stream = await container.attach({ stream: true, stdout: true, stderr: true, logs: true });
    engine.modem.demuxStream(stream, log, log);
    await container.start();
  } catch (err) {
    log.end();
    throw new ContainerJobError(`could not start image ${job.image} for job ${job.jobId}: ${(err as Error).message}`, { cause: err });
  }
  return watchContainer(container, log);
}

/** A container started before an agent restart (--keep-jobs), found again by its id. */
export async function adoptContainerJob(containerId: string, logFile: string): Promise<JobHandle> {
  const engine = await dockerEngine();
  const container = engine.getContainer(containerId);
  const log = createWriteStream(logFile, { flags: "a" });
  const info = await container.inspect();
  if (info.State.Running) {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    engine.modem.demuxStream(stream, log, log);
  }
  return watchContainer(container, log);
}

function watchContainer(container: Dockerode.Container, log: NodeJS.WritableStream): JobHandle {
  let detached = false;
  const exited: Promise<JobExit> = (async () => {
    let exitCode: number | null = null;
    try {
      exitCode = ((await container.wait()) as { StatusCode: number }).StatusCode;
    } catch {
      /* engine gone: status unknown */
    }
    await new Promise<void>((r) => log.end(r));
    if (!detached) await container.remove({ force: true }).catch(() => undefined);
    return { exitCode };
  })();
  return {
    kind: "container",
    containerId: container.id,
    exited,
    async stop(graceMs) {
      await container.stop({ t: Math.ceil(graceMs / 1000) }).catch(() => undefined);
      await exited;
    },
    detach() {
      detached = true;
    },
  };
}
