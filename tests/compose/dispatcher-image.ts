// Builds the dispatcher image the way CI can (no registry): compose/build-app.mjs on this machine,
// then compose/Dockerfile with PREBUILT=1 on the node base image from tests/infra. Test files that
// need the image share one build through a lock; Docker's layer cache makes a repeat quick.
import { execa } from "execa";
import { repoRoot } from "../helpers/dispatcher-process.js";
import { requireDocker } from "../infra/docker.js";
import { ensureNodeBaseImage } from "../infra/node-base-image.js";

export const dispatcherTestImage = "labrig-dispatcher:test";
const lockFile = "/tmp/labrig-dispatcher-image.lock";

let built: Promise<string> | undefined;

export function ensureDispatcherImage(): Promise<string> {
  built ??= (async () => {
    await requireDocker();
    const base = await ensureNodeBaseImage();
    const script = [
      "node compose/build-app.mjs",
      `docker build -q -f compose/Dockerfile --build-arg BASE_IMAGE=${base} --build-arg PREBUILT=1 -t ${dispatcherTestImage} .`,
    ].join(" && ");
    const res = await execa("flock", [lockFile, "sh", "-c", script], {
      cwd: repoRoot,
      reject: false,
      all: true,
      env: { DOCKER_BUILDKIT: "0" },
      timeout: 300_000,
    });
    if (res.exitCode !== 0) throw new Error(`building ${dispatcherTestImage} failed:\n${res.all}`);
    return dispatcherTestImage;
  })();
  return built;
}
