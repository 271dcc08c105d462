// `labrig image build` for real on this machine's engine: it builds the dispatcher image on a local
// base (as an air-gapped lab would), says what it built and how big it is, and refuses a base it
// cannot use before building anything; provisioning names the command when the image is missing.
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { nodeIsRecentEnough } from "../../provision/dispatcher-image.js";
import { planDispatcherContainer } from "../../provision/steps/dispatcher-container-plan.js";
import { dispatcherSettingsSchema } from "../../provision/steps/dispatcher-container-settings.js";
import { nodeWithTsx, repoRoot } from "../helpers/dispatcher-process.js";
import { docker, ensureTestHostImage } from "../infra/index.js";
import { ensureNodeBaseImage } from "../infra/node-base-image.js";
import { dispatcherTestImage, ensureDispatcherImage, lastImageBuildOutput } from "./dispatcher-image.js";

const labrig = (args: string[]) => execa(nodeWithTsx[0], [...nodeWithTsx.slice(1), "cli/main.ts", ...args], { cwd: repoRoot, reject: false, env: { DOCKER_BUILDKIT: "0" } });

describe("labrig image build", () => {
  it("builds the dispatcher image on a local base and prints its name, ID and size", async () => {
    await ensureDispatcherImage();
    const base = await ensureNodeBaseImage();
    const [id, size] = (await docker(["image", "inspect", "--format", "{{.Id}} {{.Size}}", dispatcherTestImage])).split(" ");
    expect(lastImageBuildOutput).toBe(
      `built ${dispatcherTestImage} (${id!.replace("sha256:", "").slice(0, 12)}, ${(Number(size) / 1e6).toFixed(1)} MB) from compose/Dockerfile on ${base}, app assembled on this machine`,
    );
    // What it built runs the dispatcher and carries restic and the agent bundle.
    const inside = await docker(["run", "--rm", "--entrypoint", "sh", dispatcherTestImage, "-c", "labrig --help | head -3; restic version; ls /opt/labrig/agent"]);
    expect(inside).toContain("dispatcher");
    expect(inside).toMatch(/restic \d+\.\d+/);
    expect(inside).toContain("labrig-agent.mjs");
  }, 600_000);

  it("refuses a base image that is not on this engine, or has no Node, before building anything", async () => {
    const missing = await labrig(["image", "build", "--base", "labrig-test-no-such-base:1", "--tag", "labrig-test-never:1"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain("the base image labrig-test-no-such-base:1 is not on this machine's Docker engine");
    const noNode = (await ensureTestHostImage()).replace("labrig-test-host", "labrig-test-debian-base");
    const res = await labrig(["image", "build", "--base", noNode, "--tag", "labrig-test-never:1"]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain(`the base image ${noNode} has no working node command`);
    expect(await docker(["image", "ls", "-q", "labrig-test-never:1"])).toBe("");
  }, 120_000);

  it("wants Node >= 22.13 in a base (the database is node:sqlite)", () => {
    expect(["v20.20.2", "v22.12.0", "v22.13.0", "v24.21.0", "v30.0.1"].map(nodeIsRecentEnough)).toEqual([false, false, true, true, true]);
  });

  it("is what provisioning asks for when the image is not on this machine", () => {
    const s = dispatcherSettingsSchema.parse({});
    const facts = { dataDir: "/srv/labrig", foldersOk: true, tokensThere: {}, tokensSaved: false };
    expect(planDispatcherContainer(facts, s, false, "lab").fail).toBe(
      "image labrig/dispatcher:latest is not on this machine's Docker engine, and the host does not pull it: build it here with `labrig image build --tag labrig/dispatcher:latest` (--base IMAGE for an air-gapped lab), or set dispatcher.pull: true for an image in a registry",
    );
  });
});
