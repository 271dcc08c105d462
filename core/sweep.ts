// Sweeps: one submitted job becomes a group with one job per point of a grid. The grid comes from
// a CVLab-Kit config's list values (which CVLab-Kit itself runs one trial after another) and from
// `--sweep key=a,b` axes. Each point is written into its job's YAML, or into the `{key}`
// placeholders of a plain command. Pure: request in, requests out.
import { parse as parseYamlScalar } from "yaml";
import type { SubmitJobRequest } from "./api.js";
import { type CvlabConfig, expandGrid, gpusForDevice, gridAxes, parseCvlabConfig, pointLabel, writeConfigValues } from "./cvlab-config.js";
import { InputError } from "./errors.js";
import { shq } from "./shell.js";

export const MAX_SWEEP_POINTS = 1000;

export interface SweepAxis {
  key: string;
  values: unknown[];
}

/** `lr=0.1,0.01` → {key: "lr", values: [0.1, 0.01]}; values read as YAML scalars (numbers stay numbers). */
export function parseSweepAxis(arg: string): SweepAxis {
  const eq = arg.indexOf("=");
  const key = arg.slice(0, eq).trim();
  if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) throw new InputError("--sweep", `expected KEY=V1,V2,... (KEY letters, digits, '_', '.', '-'), got '${arg}'`);
  const words = arg.slice(eq + 1).split(",").map((v) => v.trim());
  if (words.some((v) => v === "")) throw new InputError("--sweep", `${key}: expected values separated by commas, got '${arg.slice(eq + 1)}'`);
  return { key, values: words.map((w) => parseYamlScalar(w) as unknown) };
}

export interface SweepInput {
  /** The job as it would be submitted alone. */
  base: SubmitJobRequest;
  /** Expand the config's own list values (bare `--sweep`). */
  fromConfig: boolean;
  /** `--sweep key=a,b` axes; on a config they set (or override) that key. */
  axes: SweepAxis[];
  /** Where the config came from, for error messages. */
  configSource?: string;
}

export interface Sweep {
  name: string;
  axes: SweepAxis[];
  jobs: SubmitJobRequest[];
}

/**
 * The group a sweep submits. A config's `device` is never an axis here: labrig places GPUs, and a
 * device list means that many GPUs for every point.
 */
export function buildSweep(input: SweepInput): Sweep {
  const { base } = input;
  const name = base.name ?? "sweep";
  if (base.config !== undefined) {
    const cfg = parseCvlabConfig(base.config, input.configSource);
    const fromConfig = input.fromConfig ? gridAxes(cfg).filter((a) => a.key !== "device") : [];
    const explicit = new Set(input.axes.map((a) => a.key));
    const axes: SweepAxis[] = [...fromConfig.filter((a) => !explicit.has(a.key)), ...input.axes];
    if (axes.length === 0) throw new InputError("--sweep", `${input.configSource ?? "the config"} has no list values to sweep over; give --sweep KEY=V1,V2`);
    const points = checkedPoints(axes);
    return { name, axes, jobs: points.map((p) => configJob(base, cfg, p, input.configSource)) };
  }
  if (input.fromConfig && input.axes.length === 0) throw new InputError("--sweep", "a plain command has no grid of its own; give --sweep KEY=V1,V2 and use {KEY} in the command");
  if (base.command === undefined) throw new InputError("command", "missing: give the command after --");
  for (const a of input.axes) {
    const text = Array.isArray(base.command) ? base.command.join(" ") : base.command;
    if (!text.includes(`{${a.key}}`)) throw new InputError("--sweep", `${a.key}: the command has no {${a.key}} to put its values in`);
  }
  const points = checkedPoints(input.axes);
  return {
    name,
    axes: input.axes,
    jobs: points.map((p) => ({ ...base, name: `${name} [${pointLabel(p)}]`, command: fillPlaceholders(base.command!, p) })),
  };
}

function checkedPoints(axes: SweepAxis[]): Record<string, unknown>[] {
  const n = axes.reduce((acc, a) => acc * a.values.length, 1);
  if (n > MAX_SWEEP_POINTS) throw new InputError("--sweep", `${n} points (${axes.map((a) => `${a.key}: ${a.values.length}`).join(" × ")}) is more than ${MAX_SWEEP_POINTS}`);
  return expandGrid(axes);
}

function configJob(base: SubmitJobRequest, cfg: CvlabConfig, point: Record<string, unknown>, source?: string): SubmitJobRequest {
  const config = writeConfigValues(
    cfg,
    Object.entries(point).map(([key, value]) => ({ path: key.split("."), value })),
    source,
  );
  const gpus = base.gpus ?? gpusForDevice(parseCvlabConfig(config, source).data.device);
  return { ...base, name: `${base.name ?? "sweep"} [${pointLabel(point)}]`, config, gpus };
}

function fillPlaceholders(command: string | string[], point: Record<string, unknown>): string | string[] {
  const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  const fill = (s: string, quote: boolean) => Object.entries(point).reduce((acc, [k, v]) => acc.replaceAll(`{${k}}`, quote ? shq(text(v)) : text(v)), s);
  return Array.isArray(command) ? command.map((w) => fill(w, false)) : fill(command, true);
}
