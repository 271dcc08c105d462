// A CVLab-Kit job's config: the agent writes the YAML the dispatcher handed out (its `device`
// already mapped to the leased GPUs) next to the job's outputs, where it is synced like any output,
// and puts its path where the command says `{config_path}`. CVLab-Kit's loggers write the run's
// CSVs and configs under `log_dir` (default ./logs) relative to where the trainer runs, which is
// not synced: a relative `log_dir` is pointed into the output folder instead.
import { writeFileSync } from "node:fs";
import { isAbsolute, join, normalize, posix } from "node:path";
import { parseCvlabConfig, writeConfigValues } from "../core/cvlab-config.js";
import { shq } from "../core/shell.js";

export const JOB_CONFIG_FILE = "config.yaml";
/** CVLab-Kit's own default for `log_dir` (cvlabkit/component/logger/csv.py). */
const CVLAB_DEFAULT_LOG_DIR = "./logs";

/** Writes the config into the job's output folder; returns its path there. */
export function writeJobConfig(outputDir: string, yaml: string): string {
  const path = join(outputDir, JOB_CONFIG_FILE);
  writeFileSync(path, yaml);
  return path;
}

/**
 * The config with a relative `log_dir` (or none, meaning ./logs) resolved inside `outputDir`, the
 * folder the job sees its outputs in (the host's, or /output in a container). An absolute one,
 * or one that climbs out, is the researcher's choice and stays as written.
 */
export function withLogDirIn(yaml: string, outputDir: string): string {
  const cfg = parseCvlabConfig(yaml);
  const given = cfg.data.log_dir ?? CVLAB_DEFAULT_LOG_DIR;
  if (typeof given !== "string" || isAbsolute(given)) return yaml;
  const inside = posix.normalize(given.replaceAll("\\", "/"));
  if (inside === ".." || inside.startsWith("../")) return yaml;
  return writeConfigValues(cfg, [{ path: ["log_dir"], value: normalize(join(outputDir, inside)) }]);
}

/** The command with `{config_path}` replaced: quoted for a shell string, as one word in a list. */
export function withConfigPath(command: string | string[], path: string): string | string[] {
  if (Array.isArray(command)) return command.map((w) => w.replaceAll("{config_path}", path));
  return command.replaceAll("{config_path}", shq(path));
}
