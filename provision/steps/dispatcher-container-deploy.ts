// The dispatcher-container step's deploy: a new container replaces the old one only once it is
// healthy (the old one kept aside, stopped, and brought back if not), and the tokens it writes
// are read back to this machine.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type Docker from "dockerode";
import { LabrigError } from "../../core/errors.js";
import { savedDispatcherDir } from "../saved-dispatcher.js";
import type { StepContext } from "../step.js";
import { imageId } from "./dispatcher-container-docker.js";
import { type DispatcherSettings, dataFolders, desiredContainer, dispatcherJson } from "./dispatcher-container-settings.js";

/** Creates the new container; with a previous one, keeps it aside until the new one is healthy, and brings it back if not. */
export async function deployContainer(
  ctx: StepContext,
  docker: Docker,
  s: DispatcherSettings,
  where: { dataDir: string; backupEnv?: Record<string, string>; lab: string },
  previousId: string | undefined,
) {
  const imageIdNow = await imageId(docker, s.image);
  if (!imageIdNow) throw new LabrigError(`on ${ctx.host.name}: image ${s.image} is missing after it was fetched`);
  const { spec } = desiredContainer(s, where.dataDir, s.image, imageIdNow, where.lab, where.backupEnv);
  const asidename = `${s.containerName}-previous`;
  let old: Docker.Container | undefined;
  if (previousId) {
    old = docker.getContainer(previousId);
    await docker.getContainer(asidename).remove({ force: true }).catch(() => undefined);
    ctx.log(`stopping the previous ${s.containerName} (kept as ${asidename} until the new one is healthy)`);
    await old.stop({ t: 15 }).catch(ignoreNotModified);
    await old.rename({ name: asidename });
  }
  let created: Docker.Container | undefined;
  try {
    created = await docker.createContainer(spec);
    await created.start();
    await waitHealthy(docker, created.id, s.healthTimeoutS);
  } catch (err) {
    const logs = created ? await containerLogs(created) : "";
    await created?.remove({ force: true }).catch(() => undefined);
    let rolledBack = "";
    if (old) {
      await old.rename({ name: s.containerName });
      await old.start().catch(ignoreNotModified);
      rolledBack = `; the previous container is running again`;
    }
    throw new LabrigError(`on ${ctx.host.name}: the new ${s.containerName} did not become healthy (${(err as Error).message})${rolledBack}${logs ? `. Its last output:\n${logs}` : ""}`, { cause: err });
  }
  if (old) await old.remove({ force: true });
}

export async function waitHealthy(docker: Docker, id: string, timeoutS: number): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  let last = "";
  while (Date.now() < deadline) {
    const info = await docker.getContainer(id).inspect();
    // With restart: unless-stopped a crashing dispatcher is restarted over and over; once is enough to know.
    if (!info.State.Running) throw new LabrigError(`it exited with code ${info.State.ExitCode}`);
    if (info.State.Restarting || info.RestartCount > 0) throw new LabrigError(`it exited and was restarted ${info.RestartCount} time(s)`);
    last = info.State.Health?.Status ?? "running (no health check)";
    if (last === "healthy" || (!info.State.Health && Date.now() - Date.parse(info.State.StartedAt) > 5000)) return;
    if (last === "unhealthy") throw new LabrigError("its health check failed");
    await sleep(500);
  }
  throw new LabrigError(`still '${last}' after ${timeoutS} s`);
}

async function containerLogs(c: Docker.Container): Promise<string> {
  try {
    const buf = (await c.logs({ stdout: true, stderr: true, tail: 20 })) as unknown as Buffer;
    // Multiplexed frames: an 8-byte header before each chunk.
    const out: string[] = [];
    for (let i = 0; i + 8 <= buf.length; ) {
      const len = buf.readUInt32BE(i + 4);
      out.push(buf.subarray(i + 8, i + 8 + len).toString());
      i += 8 + len;
    }
    return out.join("").trim();
  } catch {
    return "";
  }
}

function ignoreNotModified(err: { statusCode?: number }) {
  if (err.statusCode !== 304) throw err;
}

/** Reads the tokens the dispatcher wrote into its state folder and keeps them here, 0600. */
export async function saveTokens(ctx: StepContext, s: DispatcherSettings, dataDir: string): Promise<void> {
  const state = dataFolders(dataDir).state;
  const [admin, join_] = await Promise.all([ctx.remote.readFile(`${state}/admin-token`), ctx.remote.readFile(`${state}/join-token`)]);
  if (!admin || !join_) throw new LabrigError(`on ${ctx.host.name}: ${state} holds no admin-token/join-token; is the dispatcher container running?`);
  const dir = savedDispatcherDir(ctx.inventory.lab.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const write = (name: string, content: string) => {
    writeFileSync(join(dir, name), content, { mode: 0o600 });
    chmodSync(join(dir, name), 0o600);
  };
  write("admin-token", `${admin.toString().trim()}\n`);
  write("join-token", `${join_.toString().trim()}\n`);
  write("dispatcher.json", dispatcherJson(ctx, s, dir));
  ctx.log(`saved the dispatcher's tokens in ${dir}`);
}
