// Builds the one JavaScript file the step resources' dynamic provider loads (step-runtime.ts with
// provision/ and core/ inlined) at dist/stacks/step-runtime.mjs. A provider runs as text Pulumi
// serialised from a closure, in another process and folder: there it cannot import the project's
// TypeScript, only a file named by its absolute path. Libraries stay external and resolve from
// this checkout's node_modules, since the file lives inside it. Built afresh by each program run
// (under a second), written aside and renamed so parallel runs never see half a file.
import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
export const defaultStepRuntimePath = resolve(root, "dist/stacks/step-runtime.mjs");

/** Bundles the runtime and returns its file URL (what the provider imports). */
export async function bundleStepRuntime(outfile = defaultStepRuntimePath): Promise<string> {
  const result = await build({
    entryPoints: [resolve(root, "stacks/step-runtime.ts")],
    bundle: true,
    write: false,
    platform: "node",
    target: "node22",
    format: "esm",
    packages: "external",
    legalComments: "none",
    logLevel: "warning",
  });
  mkdirSync(dirname(outfile), { recursive: true });
  const staged = `${outfile}.${randomBytes(4).toString("hex")}`;
  writeFileSync(staged, result.outputFiles[0]!.contents);
  renameSync(staged, outfile);
  return pathToFileURL(outfile).href;
}
