// A CVLab-Kit job's config: the agent writes the YAML the dispatcher handed out (its `device`
// already mapped to the leased GPUs) next to the job's outputs, where it is synced like any output,
// and puts its path where the command says `{config_path}`.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { shq } from "../core/shell.js";

export const JOB_CONFIG_FILE = "config.yaml";

/** Writes the config into the job's output folder; returns its path there. */
export function writeJobConfig(outputDir: string, yaml: string): string {
  const path = join(outputDir, JOB_CONFIG_FILE);
  writeFileSync(path, yaml);
  return path;
}

/** The command with `{config_path}` replaced: quoted for a shell string, as one word in a list. */
export function withConfigPath(command: string | string[], path: string): string | string[] {
  if (Array.isArray(command)) return command.map((w) => w.replaceAll("{config_path}", path));
  return command.replaceAll("{config_path}", shq(path));
}
