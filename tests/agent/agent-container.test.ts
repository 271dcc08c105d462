// A job that names an image runs as a container on the test engine (DOCKER_HOST, the private
// dockerd CI starts): output dir mounted at /output, stdout and stderr in job.log, labels the
// dashboard finds, exit codes, cancel stopping and removing the container. No registry is
// reachable, so the image is made here from this machine's sh and sleep. No GPU here either:
// the jobs ask for 0 GPUs (the GPU device requests are unit-tested in agent-units.test.ts).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { docker, requireDocker } from "../infra/docker.js";
import { type AgentProcess, startAgent } from "../helpers/agent-process.js";
import { type DispatcherProcess, startDispatcher } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";
import { steadyDispatcherEnv, waitForState } from "./agent-helpers.js";

const image = "labrig-test-agent-sh:1";

/** An image holding only /bin/sh (dash), sleep and the libraries they load. */
async function buildShImage(): Promise<void> {
  if ((await execa("docker", ["image", "inspect", image], { reject: false })).exitCode === 0) return;
  const root = mkdtempSync(join(tmpdir(), "labrig-sh-rootfs-"));
  try {
    const files = new Set(["/bin/dash", "/bin/sleep"]);
    for (const bin of ["/bin/dash", "/bin/sleep"]) {
      const { stdout } = await execa("ldd", [bin]);
      for (const m of stdout.matchAll(/(\/\S+\.so[.\d]*)/g)) files.add(m[1]!);
    }
    for (const f of files) {
      const dest = join(root, f === "/bin/dash" ? "/bin/sh" : f);
      mkdirSync(join(dest, ".."), { recursive: true });
      copyFileSync(f, dest);
    }
    mkdirSync(join(root, "tmp"));
    await execa("sh", ["-c", `tar -C '${root}' -c . | docker import - ${image}`]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

let d: DispatcherProcess;
let a: AgentProcess;

beforeAll(async () => {
  await requireDocker();
  await buildShImage();
  d = await startDispatcher({ env: steadyDispatcherEnv });
  a = await startAgent({ url: d.url, joinToken: d.joinToken, hostId: "gpu-docker" });
});

afterAll(async () => {
  await a?.stop();
  a?.cleanup();
  await d?.stop();
  d?.cleanup();
});

const containersOf = async (jobId: string) => (await docker(["ps", "-a", "--filter", `label=labrig.job=${jobId}`, "--format", "{{.ID}} {{.Label \"labrig.attempt\"}} {{.Status}}"])).split("\n").filter(Boolean);

describe("container jobs (on the test Docker engine)", () => {
  it("runs the command in the image with the output dir at /output, syncs job.log and files, and removes the container", async () => {
    const admin = d.admin();
    const job = await admin.submit({
      image,
      command: 'echo "out dir=$LABRIG_OUTPUT_DIR id=$LABRIG_JOB_ID attempt=$LABRIG_ATTEMPT gpus=[$CUDA_VISIBLE_DEVICES] nv=$NVIDIA_VISIBLE_DEVICES pwd=$PWD"; echo oops >&2; echo 1,2 > /output/m.csv; echo 3,4 >> /output/m.csv',
      gpus: 0,
      env: { API_TOKEN: "tok" },
    });
    await waitForState(admin, job.id, "succeeded", 60_000);
    const log = (await admin.syncGet(job.id, "job.log")).toString();
    expect(log).toBe(`out dir=/output id=${job.id} attempt=1 gpus=[] nv=void pwd=/output\noops\n`);
    expect((await admin.syncGet(job.id, "m.csv")).toString()).toBe("1,2\n3,4\n");
    const run = JSON.parse((await admin.syncGet(job.id, "run.json")).toString());
    expect(run).toMatchObject({ image, workdir: "/output", env: { API_TOKEN: "<redacted>", LABRIG_OUTPUT_DIR: "/output" } });
    expect(await containersOf(job.id)).toEqual([]);
  }, 90_000);

  it("reports the container's exit code", async () => {
    const admin = d.admin();
    const job = await admin.submit({ image, command: "exit 7", gpus: 0 });
    expect(await waitForState(admin, job.id, "failed", 60_000)).toMatchObject({ exitCode: 7 });
  }, 90_000);

  it("labels the running container with its job and attempt, holds it to the job's cores and memory, and stops and removes it on cancel", async () => {
    const admin = d.admin();
    const job = await admin.submit({ image, command: "echo waiting; sleep 300", gpus: 0, cpus: 0.5, memoryGiB: 0.25 });
    await waitForState(admin, job.id, "running", 60_000);
    const running = await waitFor("the job's container", () => containersOf(job.id), (c) => c.length === 1 && c[0]!.includes(" Up "));
    expect(running[0]!.split(" ")[1]).toBe("1");
    const id = running[0]!.split(" ")[0]!;
    expect(JSON.parse(await docker(["inspect", "--format", "{{json .HostConfig}}", id]))).toMatchObject({ NanoCpus: 500_000_000, Memory: 256 * 1024 * 1024, MemorySwap: 256 * 1024 * 1024 });
    const run = await waitFor("run.json synced", () => admin.syncGet(job.id, "run.json").then((b) => JSON.parse(b.toString()), () => null), (r) => r !== null);
    expect(run.limits).toEqual({ cpus: 0.5, memoryMiB: 256, applied: "container" });
    await admin.cancel(job.id);
    await waitForState(admin, job.id, "cancelled", 30_000);
    expect(await containersOf(job.id)).toEqual([]);
    expect((await admin.syncGet(job.id, "job.log")).toString()).toBe("waiting\n");
  }, 90_000);
});
