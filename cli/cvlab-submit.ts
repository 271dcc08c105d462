// `labrig submit --cvlab exp.yaml` and `--sweep`: reads the CVLab-Kit experiment (from the flag or
// a job file's `cvlab:` key), settles GPUs, project and name from it, and turns a sweep into a
// group of jobs. The YAML travels as text; the dispatcher runs it with the lab's queue command.
import { readFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { SubmitJobRequest } from "../core/api.js";
import { configProject, gpusForDevice, parseCvlabConfig } from "../core/cvlab-config.js";
import { InputError } from "../core/errors.js";
import { buildSweep, parseSweepAxis, type Sweep } from "../core/sweep.js";
import { buildSubmitRequest, type JobFileSource, type JobFlags, parseJobFile } from "./job-file.js";

export interface SubmissionInput {
  file?: JobFileSource;
  flags: JobFlags;
  command: string[];
  /** --cvlab's path. */
  cvlab?: string;
  /** --sweep values: "" for the config's own grid, KEY=V1,V2 for an axis. */
  sweep?: string[];
  /** The folder relative paths (the job file's) are read from. */
  baseDir?: string;
}

export type Submission = { kind: "job"; request: SubmitJobRequest } | { kind: "sweep"; sweep: Sweep };

/** Where the CVLab-Kit YAML is: --cvlab, else the job file's `cvlab:` (relative to the job file). */
function cvlabPath(input: SubmissionInput): string | undefined {
  if (input.cvlab) return input.cvlab;
  if (!input.file) return undefined;
  const named = parseJobFile(input.file).fields.config;
  return typeof named === "string" ? resolve(input.baseDir ?? ".", dirname(input.file.file), named) : undefined;
}

function readText(path: string, where: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new InputError(where, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/** The job (or sweep) a `labrig submit` command line asks for. */
export function buildSubmission(input: SubmissionInput): Submission {
  const path = cvlabPath(input);
  let request: SubmitJobRequest;
  if (path !== undefined) {
    const text = readText(path, input.cvlab ? "--cvlab" : (input.file?.file ?? "cvlab"));
    const cfg = parseCvlabConfig(text, path);
    request = buildSubmitRequest({ file: input.file, flags: input.flags, command: input.command, config: text });
    request.name ??= basename(path).replace(/\.ya?ml$/, "");
    request.project ??= configProject(cfg);
    if (!input.sweep?.length) request.gpus ??= gpusForDevice(cfg.data.device);
  } else {
    request = buildSubmitRequest({ file: input.file, flags: input.flags, command: input.command });
  }
  if (!input.sweep?.length) return { kind: "job", request };
  const fromConfig = input.sweep.includes("");
  const axes = input.sweep.filter((s) => s !== "").map(parseSweepAxis);
  return { kind: "sweep", sweep: buildSweep({ base: request, fromConfig, axes, configSource: path }) };
}
