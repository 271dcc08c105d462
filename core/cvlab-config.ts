// CVLab-Kit experiment YAMLs: parsing them as CVLab-Kit's own loader does (a mapping at the top,
// `!!python/tuple` allowed, other Python tags refused), reading the keys labrig needs (project,
// device), finding the list values CVLab-Kit treats as a grid search, and writing values back into
// the text. Pure: takes text, returns text; nothing outside the changed values moves, so comments,
// tags and layout survive byte for byte.
import { type Document, isMap, isScalar, isSeq, type Node, parseDocument, stringify, type YAMLMap, type YAMLSeq } from "yaml";
import { LabrigError } from "./errors.js";

export class CvlabYamlError extends LabrigError {
  constructor(
    readonly source: string,
    readonly line: number,
    readonly column: number,
    readonly detail: string,
  ) {
    super(`${source}:${line}:${column}: ${detail}`);
  }
}

/** CVLab-Kit loads configs with PyYAML's FullLoader, which builds `!!python/tuple` as a tuple. */
const pythonTuple = {
  tag: "tag:yaml.org,2002:python/tuple",
  collection: "seq" as const,
  resolve: (seq: YAMLSeq) => seq,
};

export interface CvlabConfig {
  /** The text exactly as given. */
  text: string;
  doc: Document.Parsed;
  /** The config as plain data (tuples become arrays). */
  data: Record<string, unknown>;
}

export function parseCvlabConfig(text: string, source = "config"): CvlabConfig {
  const doc = parseDocument(text, { customTags: [pythonTuple], prettyErrors: true, uniqueKeys: true });
  // An unknown tag (`!!python/object:...`) is a warning to the yaml package; CVLab-Kit's loader refuses it.
  const problem = doc.errors[0] ?? doc.warnings.find((w) => w.code === "TAG_RESOLVE_FAILED");
  if (problem) {
    const at = problem.linePos?.[0] ?? { line: 1, col: 1 };
    throw new CvlabYamlError(source, at.line, at.col, `invalid YAML: ${problem.message.split(" at line ")[0]}`);
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    const at = lineCol(text, doc.contents.range?.[0] ?? 0);
    throw new CvlabYamlError(source, at.line, at.col, "a CVLab-Kit config is a mapping of keys (model:, optimizer:, ...) at the top level");
  }
  const data = (doc.toJS() ?? {}) as Record<string, unknown>;
  return { text, doc, data };
}

function lineCol(text: string, offset: number): { line: number; column: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const col = offset - before.lastIndexOf("\n");
  return { line, column: col, col };
}

/** The YAML's `project` key, when it is a non-empty string (CVLab-Kit's fallback for a job's project). */
export function configProject(cfg: CvlabConfig): string | undefined {
  const p = cfg.data.project;
  return typeof p === "string" && p.trim() !== "" ? p.trim() : typeof p === "number" ? String(p) : undefined;
}

/**
 * How many GPUs a config's `device` asks for: a GPU index (`0`, `"cuda:1"`, `"2"`) is one, a list
 * (`[0, 1]`, `"0,1"`) is as many as it names, `cpu` or a negative index is none, no `device` is one.
 */
export function gpusForDevice(device: unknown): number {
  if (device === undefined || device === null) return 1;
  if (Array.isArray(device)) return device.length;
  if (typeof device === "number") return device < 0 ? 0 : 1;
  if (typeof device === "string") {
    const d = device.trim().toLowerCase();
    if (d === "cpu" || d === "mps" || /^-\d+$/.test(d)) return 0;
    if (d.includes(",")) return d.split(",").filter((p) => p.trim() !== "").length;
    return 1;
  }
  return 1;
}

/**
 * The `device` value a job sees once its leased GPUs are all that CUDA_VISIBLE_DEVICES shows: the
 * first `n` visible indices in the form the config used. Undefined when the config names no GPU.
 */
export function deviceForVisibleGpus(device: unknown, n: number): unknown {
  if (n === 0) return undefined;
  const first = Array.from({ length: n }, (_, i) => i);
  if (Array.isArray(device)) return first;
  if (typeof device === "number") return device >= 0 ? 0 : undefined;
  if (typeof device === "string") {
    const d = device.trim();
    if (/^cuda:\d+$/i.test(d)) return "cuda:0";
    if (/^\d+$/.test(d)) return "0";
    if (/^\d+(\s*,\s*\d+)+$/.test(d)) return first.join(",");
  }
  return undefined;
}

/** One value to write into a config: its key path (`["optimizer", "lr"]`) and the value. */
export interface ConfigChange {
  path: string[];
  value: unknown;
}

/**
 * Writes values into the config's text, replacing only each value's own characters. A top-level
 * key the text lacks is appended at the end; a missing nested key is an error.
 */
export function writeConfigValues(cfg: CvlabConfig, changes: ConfigChange[], source = "config"): string {
  const edits: { start: number; end: number; text: string }[] = [];
  const appended: string[] = [];
  for (const change of changes) {
    const parent = change.path.length > 1 ? cfg.doc.getIn(change.path.slice(0, -1), true) : cfg.doc.contents;
    const key = change.path[change.path.length - 1]!;
    if (parent !== null && parent !== undefined && !isMap(parent)) {
      throw new CvlabYamlError(source, 1, 1, `${change.path.slice(0, -1).join(".")} is not a mapping, so ${change.path.join(".")} cannot be set`);
    }
    const pair = parent ? (parent as YAMLMap).items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === key) : undefined;
    const node = pair?.value as Node | null | undefined;
    if (!pair || !node || !node.range) {
      if (change.path.length > 1 && !pair) throw new CvlabYamlError(source, 1, 1, `${change.path.join(".")}: no such key to set`);
      if (pair) throw new CvlabYamlError(source, 1, 1, `${change.path.join(".")}: has no value to replace`);
      appended.push(`${key}: ${flowText(change.value)}`);
      continue;
    }
    let start = node.range[0];
    // A tag written before the value (`!!python/tuple [..]`) belongs to the old value.
    const tagged = node.tag ? /(?:^|\s)(!\S*)\s*$/.exec(cfg.text.slice(0, start)) : null;
    if (tagged) start -= tagged[0].trimStart().length;
    // A block collection's range runs through its last line break, which stays.
    let end = node.range[1];
    while (end > start && /\s/.test(cfg.text[end - 1]!)) end--;
    edits.push({ start, end, text: flowText(change.value) });
  }
  let text = cfg.text;
  for (const e of edits.sort((a, b) => b.start - a.start)) text = text.slice(0, e.start) + e.text + text.slice(e.end);
  if (appended.length) text = `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${appended.join("\n")}\n`;
  return text;
}

/** A value as one line of YAML (flow style), quoted only where YAML needs it. */
function flowText(value: unknown): string {
  return stringify(value, { collectionStyle: "flow", lineWidth: 0 }).trimEnd();
}

/** A list value CVLab-Kit expands as a grid search: its dotted key, path and values. */
export interface GridAxis {
  key: string;
  path: string[];
  values: unknown[];
}

/**
 * The config's grid: every non-empty list value in nested mappings (a `!!python/tuple` is a value,
 * not a grid, as in CVLab-Kit), in the order the keys appear.
 */
export function gridAxes(cfg: CvlabConfig): GridAxis[] {
  const axes: GridAxis[] = [];
  const walk = (node: unknown, path: string[]) => {
    if (!isMap(node)) return;
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const value = pair.value;
      if (isMap(value)) walk(value, [...path, key]);
      else if (isSeq(value) && value.tag !== pythonTuple.tag && value.items.length > 0) {
        axes.push({ key: [...path, key].join("."), path: [...path, key], values: value.toJSON() as unknown[] });
      }
    }
  };
  walk(cfg.doc.contents, []);
  return axes;
}

/** Every point of a grid, the first axis varying slowest (as itertools.product does). */
export function expandGrid(axes: { key: string; values: unknown[] }[]): Record<string, unknown>[] {
  let points: Record<string, unknown>[] = [{}];
  for (const axis of axes) points = points.flatMap((p) => axis.values.map((v) => ({ ...p, [axis.key]: v })));
  return points;
}

/** `lr=0.01,batch_size=64`: a point as a job-name suffix. */
export function pointLabel(point: Record<string, unknown>): string {
  return Object.entries(point)
    .map(([k, v]) => `${k.split(".").pop()}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(",");
}
