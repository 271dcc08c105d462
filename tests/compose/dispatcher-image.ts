// Builds the dispatcher image the way CI can (no registry), with the command a user runs:
// `labrig image build --base <node base from tests/infra> --tag labrig-dispatcher:test` (the app
// assembled here by compose/build-app.mjs, then compose/Dockerfile with PREBUILT=1). Test files
// that need the image share one build through a lock; Docker's layer cache makes a repeat quick.
import { execa } from "execa";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import { requireDocker } from "../infra/docker.js";
import { ensureNodeBaseImage } from "../infra/node-base-image.js";

export const dispatcherTestImage = "labrig-dispatcher:test";
const lockFile = "/tmp/labrig-dispatcher-image.lock";

let built: Promise<string> | undefined;
/** What `labrig image build` printed on stdout the last time this process built the image. */
export let lastImageBuildOutput = "";

export function ensureDispatcherImage(): Promise<string> {
  built ??= (async () => {
    await requireDocker();
    const base = await ensureNodeBaseImage();
    const res = await execa("flock", [lockFile, ...nodeWithTsx, "cli/main.ts", "image", "build", "--base", base, "--tag", dispatcherTestImage], {
      cwd: repoRoot,
      reject: false,
      env: { DOCKER_BUILDKIT: "0" },
      timeout: 600_000,
    });
    if (res.exitCode !== 0) throw new Error(`labrig image build of ${dispatcherTestImage} failed:\n${res.stderr}\n${res.stdout}`);
    lastImageBuildOutput = res.stdout;
    return dispatcherTestImage;
  })();
  return built;
}
