// Turns a job YAML file plus command-line flags into the API's SubmitJobRequest. Pure: takes the
// file's text, never reads it, so every rule here is unit-testable. Errors name the file, line,
// column and field ("jobs/train.yaml:4:8: gpus: expected a whole number from 0 to 64, got 1.5"),
// or the flag a bad value came from.
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { z } from "zod";
import { MAX_JOB_TIMEOUT_S, priorities, submitJobRequestSchema, type SubmitJobRequest } from "../core/api.js";
import { LabrigError } from "../core/errors.js";

/** What `labrig submit` flags can set, already in the API's field names. */
export interface JobFlags {
  name?: string;
  project?: string;
  gpus?: number;
  cpus?: number;
  memoryGiB?: number;
  image?: string;
  timeoutS?: number;
  priority?: string;
  maxRetries?: number;
  workdir?: string;
  env?: Record<string, string>;
  hostId?: string;
  labels?: Record<string, string>;
}

export interface JobFileSource {
  /** The path as the user wrote it; used in error messages. */
  file: string;
  text: string;
}

export interface JobSpecProblem {
  /** file:line:col, a flag such as --gpus, or "command line". */
  where: string;
  /** The field as the user knows it: the file's key path, or the API field for flags. */
  field: string;
  message: string;
}

export class JobSpecError extends LabrigError {
  constructor(readonly problems: JobSpecProblem[]) {
    super(problems.map((p) => `${p.where}: ${p.field ? `${p.field}: ` : ""}${p.message}`).join("\n"));
  }
}

/** The file's keys and the API fields they become. */
const fileKeyToApi: Record<string, keyof SubmitJobRequest> = {
  name: "name",
  project: "project",
  command: "command",
  gpus: "gpus",
  cpus: "cpus",
  /** GiB. */
  memory: "memoryGiB",
  image: "image",
  env: "env",
  workdir: "workdir",
  timeout: "timeoutS",
  priority: "priority",
  retries: "maxRetries",
  constraints: "constraints",
  /** A CVLab-Kit experiment YAML's path (relative to the job file); the CLI sends its text. */
  cvlab: "config",
  /** true, or the folder (relative to the job file) to send with the job; the CLI sends its snapshot's id. */
  code: "code",
};
const apiToFileKey = Object.fromEntries(Object.entries(fileKeyToApi).map(([k, v]) => [v, k])) as Record<string, string>;
const constraintKeys = ["hostId", "labels", "gpuName", "minMemoryMiB"];
/** Names people reach for, and the key the file uses instead. */
const keyHints: Record<string, string> = { retry: "retries", retrys: "retries", timeoutS: "timeout", timeout_s: "timeout", maxRetries: "retries", max_retries: "retries", cmd: "command", gpu: "gpus" };

/** What a field expects, said the way a user reads it; keyed by API path with `*` for any key. */
const expectations: Record<string, string> = {
  name: "expected text of 1 to 200 characters",
  project: "expected letters, digits, '.', '_' or '-' (1 to 100 characters)",
  command: "expected a command: a string, or a list of strings with at least one item",
  "command.*": "expected a string",
  gpus: "expected a whole number from 0 to 64",
  cpus: "expected a number of CPU cores from 0.1 to 1024",
  memoryGiB: "expected GiB of memory from 0.1 to 16384",
  image: "expected an image name such as pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
  env: "expected a mapping of NAME: value",
  "env.*": "expected a string value",
  workdir: "expected a folder path",
  timeoutS: `expected a whole number of seconds from 1 to ${MAX_JOB_TIMEOUT_S} (30 days)`,
  priority: `expected one of ${priorities.join(", ")}`,
  maxRetries: "expected a whole number from 0 to 100",
  constraints: `expected a mapping with ${constraintKeys.join(", ")}`,
  "constraints.hostId": "expected a host id: letters, digits, '.', '_' or '-', at most 63",
  "constraints.labels": "expected a mapping of label: value",
  "constraints.labels.*": "expected a string value",
  "constraints.gpuName": "expected a GPU name (or part of one), e.g. A100",
  "constraints.minMemoryMiB": "expected a whole number of MiB >= 0",
  config: "expected the path of a CVLab-Kit experiment YAML",
  code: "expected true, false or a folder to send with the job (relative to the job file)",
};

type Provenance = Map<string, string>;

interface ParsedFile {
  fields: Partial<Record<keyof SubmitJobRequest, unknown>>;
  /** Unknown keys, reported together with the values' problems. */
  problems: JobSpecProblem[];
  doc: Document.Parsed;
  lines: LineCounter;
  file: string;
}

/**
 * Builds the request from an optional job file, the flags (which override the file) and the
 * command after `--` (which overrides the file's command). Throws JobSpecError listing every
 * problem found. Leaves out what neither gave, so the API's defaults apply and callers can tell.
 */
export function buildSubmitRequest(input: { file?: JobFileSource; flags?: JobFlags; command?: string[]; config?: string }): SubmitJobRequest {
  const parsed = input.file ? parseJobFile(input.file) : undefined;
  const merged: Record<string, unknown> = { ...(parsed?.fields ?? {}) };
  const fromFlags: Provenance = new Map();
  const flags = input.flags ?? {};

  const setFlag = (field: keyof SubmitJobRequest, value: unknown, flag: string) => {
    if (value === undefined) return;
    merged[field] = value;
    fromFlags.set(field, flag);
  };
  setFlag("name", flags.name, "--name");
  setFlag("project", flags.project, "--project");
  setFlag("gpus", flags.gpus, "--gpus");
  setFlag("cpus", flags.cpus, "--cpus");
  setFlag("memoryGiB", flags.memoryGiB, "--memory-gib");
  setFlag("image", flags.image, "--image");
  setFlag("timeoutS", flags.timeoutS, "--timeout");
  setFlag("priority", flags.priority, "--priority");
  setFlag("maxRetries", flags.maxRetries, "--retries");
  setFlag("workdir", flags.workdir, "--workdir");
  if (input.command && input.command.length > 0) {
    merged.command = input.command;
    fromFlags.set("command", "command line");
  }
  if (flags.env && Object.keys(flags.env).length > 0) {
    merged.env = { ...asRecord(merged.env), ...flags.env };
    for (const k of Object.keys(flags.env)) fromFlags.set(`env.${k}`, "--env");
  }
  if (flags.hostId !== undefined || (flags.labels && Object.keys(flags.labels).length > 0)) {
    const c = { ...asRecord(merged.constraints) };
    if (flags.hostId !== undefined) {
      c.hostId = flags.hostId;
      fromFlags.set("constraints.hostId", "--host");
    }
    if (flags.labels && Object.keys(flags.labels).length > 0) {
      c.labels = { ...asRecord(c.labels), ...flags.labels };
      for (const k of Object.keys(flags.labels)) fromFlags.set(`constraints.labels.${k}`, "--label");
    }
    merged.constraints = c;
  }

  // Every problem at once: unknown keys, a missing command and bad values, so one edit fixes all.
  const problems: JobSpecProblem[] = [...(parsed?.problems ?? [])];
  // A CVLab-Kit config's text replaces the path the file named; it runs the lab's queue command.
  if (input.config !== undefined) merged.config = input.config;
  // The file's `code:` says what to send (jobFileCode); the CLI adds the id of the snapshot it sent.
  const fileCode = merged.code;
  if (fileCode !== undefined && fileCode !== null && typeof fileCode !== "boolean" && typeof fileCode !== "string") {
    problems.push({ where: parsed ? positionOf(parsed, ["code"], false) : "command line", field: "code", message: `${expectations.code}, got ${JSON.stringify(fileCode)}` });
  }
  delete merged.code;
  if (merged.command === undefined && merged.config === undefined) {
    problems.push({
      where: parsed ? `${parsed.file}:1:1` : "command line",
      field: "command",
      message: parsed ? "missing: give `command:` in the file or the command after --" : "missing: give the command after --, e.g. labrig submit -- python train.py",
    });
  }
  const result = submitJobRequestSchema.safeParse(merged);
  if (!result.success) {
    // A missing command is said above, in words that say where to give it.
    const issues = result.error.issues.filter((issue) => !(merged.command === undefined && issue.path[0] === "command"));
    problems.push(...issues.map((issue) => describeIssue(issue, merged, fromFlags, parsed)));
  }
  if (problems.length > 0) throw new JobSpecError(sortByPosition(problems));
  return merged as SubmitJobRequest;
}

/** What a job file's `code:` asks to send: true (the default tree), a folder relative to the file, or nothing. */
export function jobFileCode(source: JobFileSource): boolean | string | undefined {
  const v = parseJobFile(source).fields.code;
  return typeof v === "boolean" || typeof v === "string" ? v : undefined;
}

/** File problems in the order of the file's lines; flag and command-line problems after them. */
function sortByPosition(problems: JobSpecProblem[]): JobSpecProblem[] {
  const key = (p: JobSpecProblem) => {
    const m = /:(\d+):(\d+)$/.exec(p.where);
    return m ? Number(m[1]) * 1e6 + Number(m[2]) : Number.MAX_SAFE_INTEGER;
  };
  return problems.map((p, i) => ({ p, i })).sort((a, b) => key(a.p) - key(b.p) || a.i - b.i).map(({ p }) => p);
}

/**
 * Parses a job file into API fields. Syntax errors throw at once (nothing else can be read);
 * unknown keys are left out of the fields and returned as problems, so the values are still judged.
 */
export function parseJobFile(source: JobFileSource): ParsedFile {
  const lines = new LineCounter();
  const doc = parseDocument(source.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    const p = lines.linePos(offset ?? 0);
    return `${source.file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length > 0) {
    throw new JobSpecError(doc.errors.map((e) => ({ where: at(e.pos[0]), field: "", message: `YAML syntax: ${e.message}` })));
  }
  const root = doc.contents;
  if (!isMap(root)) {
    throw new JobSpecError([{ where: at(root?.range?.[0]), field: "", message: `expected a mapping of job fields (${Object.keys(fileKeyToApi).join(", ")})` }]);
  }

  const problems: JobSpecProblem[] = [];
  const fields: ParsedFile["fields"] = {};
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const keyAt = at((pair.key as Node | null)?.range?.[0]);
    const api = fileKeyToApi[key];
    if (!api) {
      const hint = keyHints[key] ? ` (did you mean '${keyHints[key]}'?)` : "";
      problems.push({ where: keyAt, field: key, message: `unknown key${hint}; known keys: ${Object.keys(fileKeyToApi).join(", ")}` });
      continue;
    }
    const value = pair.value as Node | null;
    fields[api] = api === "env" || api === "command" ? toJsKeepingScalarText(value) : value === null ? null : value.toJSON();
    if (api === "constraints" && isMap(value)) {
      for (const cp of value.items) {
        const ck = isScalar(cp.key) ? String(cp.key.value) : String(cp.key);
        if (!constraintKeys.includes(ck)) {
          problems.push({ where: at((cp.key as Node | null)?.range?.[0]), field: `constraints.${ck}`, message: `unknown key; known keys: ${constraintKeys.join(", ")}` });
          delete (fields.constraints as Record<string, unknown>)[ck];
        }
      }
    }
  }
  return { fields, problems, doc, lines, file: source.file };
}

/**
 * env values and command words are strings to the job, so `SEED: 42` or `[--lr, 0.10]` mean the
 * text as written ("0.10", not 0.1); other node kinds pass through for the schema to judge.
 */
function toJsKeepingScalarText(node: Node | null): unknown {
  if (node === null) return null;
  if (isScalar(node)) {
    if (typeof node.value === "string" || node.value === null) return node.value;
    return typeof node.source === "string" ? node.source : String(node.value);
  }
  if (isSeq(node)) return node.items.map((n) => toJsKeepingScalarText(n as Node));
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const p of node.items) out[isScalar(p.key) ? String(p.key.value) : String(p.key)] = toJsKeepingScalarText(p.value as Node);
    return out;
  }
  return node.toJSON();
}

function describeIssue(issue: z.core.$ZodIssue, merged: Record<string, unknown>, fromFlags: Provenance, parsed: ParsedFile | undefined): JobSpecProblem {
  const path = issue.path.map(String);
  const apiPath = path.join(".");
  const flag = provenanceOf(path, fromFlags);
  const message = messageFor(issue, path, merged);
  if (flag || !parsed) return { where: flag ?? "command line", field: apiPath, message };
  const filePath = [apiToFileKey[path[0]] ?? path[0], ...path.slice(1)];
  return { where: positionOf(parsed, filePath, issue.code === "invalid_key"), field: filePath.join("."), message };
}

function provenanceOf(path: string[], fromFlags: Provenance): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const hit = fromFlags.get(path.slice(0, n).join("."));
    if (hit) return hit;
  }
  return undefined;
}

function messageFor(issue: z.core.$ZodIssue, path: string[], merged: Record<string, unknown>): string {
  if (issue.code === "invalid_key") {
    const inner = (issue as { issues?: { message: string }[] }).issues?.[0]?.message;
    return `'${path[path.length - 1]}' is not a valid name${inner ? ` (${inner})` : ""}`;
  }
  const wildcard = [...path.slice(0, -1), "*"].join(".");
  const expected = expectations[path.join(".")] ?? expectations[wildcard] ?? issue.message;
  const value = valueAt(merged, path);
  return value === undefined ? `${expected}, but it is missing` : `${expected}, got ${JSON.stringify(value)}`;
}

function positionOf(parsed: ParsedFile, filePath: string[], atKey: boolean): string {
  for (let n = filePath.length; n > 0; n--) {
    const parentPath = filePath.slice(0, n - 1);
    const last = filePath[n - 1];
    const parent = parentPath.length === 0 ? parsed.doc.contents : parsed.doc.getIn(parentPath, true);
    let offset: number | undefined;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === last);
      const node = (atKey || pair?.value == null ? pair?.key : pair?.value) as Node | null | undefined;
      offset = node?.range?.[0];
    } else if (isSeq(parent)) {
      offset = (parent.items[Number(last)] as Node | undefined)?.range?.[0];
    }
    if (offset !== undefined) {
      const p = parsed.lines.linePos(offset);
      return `${parsed.file}:${p.line}:${p.col}`;
    }
  }
  return `${parsed.file}:1:1`;
}

function valueAt(obj: unknown, path: string[]): unknown {
  let v: unknown = obj;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
