// Merging labrig's wishes into /etc/docker/daemon.json without overwriting the admin's: only keys
// that are missing are added, values already set are kept. Pure, so it is tested without a host.
//   mergeDaemonJson({"log-driver":"journald"}, logRotation("50m","5"))  // unchanged: journald rotates itself

export type DaemonConfig = Record<string, unknown>;

export interface MergeResult {
  config: DaemonConfig;
  /** Dotted keys added, e.g. ["log-opts.max-size"]; empty when nothing changed. */
  added: string[];
}

/** Log rotation for the json-file driver (the default, and Docker's own recommendation to bound logs). */
export function withLogRotation(current: DaemonConfig, maxSize: string, maxFile: string): MergeResult {
  const driver = current["log-driver"];
  if (driver !== undefined && driver !== "json-file" && driver !== "local") return { config: current, added: [] };
  return mergeMissing(current, { "log-driver": "json-file", "log-opts": { "max-size": maxSize, "max-file": maxFile } });
}

/**
 * The cgroupfs driver, NVIDIA's documented remedy for containers losing their GPUs after
 * `systemctl daemon-reload` under the systemd cgroup driver. An admin's explicit choice is kept.
 */
export function withCgroupfsDriver(current: DaemonConfig): MergeResult {
  const opts = Array.isArray(current["exec-opts"]) ? (current["exec-opts"] as unknown[]).map(String) : [];
  if (opts.some((o) => o.startsWith("native.cgroupdriver="))) return { config: current, added: [] };
  return { config: { ...current, "exec-opts": [...opts, "native.cgroupdriver=cgroupfs"] }, added: ["exec-opts.native.cgroupdriver"] };
}

export function mergeMissing(current: DaemonConfig, wanted: DaemonConfig, prefix = ""): MergeResult {
  const config: DaemonConfig = { ...current };
  const added: string[] = [];
  for (const [key, value] of Object.entries(wanted)) {
    const have = config[key];
    if (have === undefined) {
      config[key] = value;
      added.push(prefix + key);
    } else if (isObject(have) && isObject(value)) {
      const inner = mergeMissing(have, value, `${prefix}${key}.`);
      config[key] = inner.config;
      added.push(...inner.added);
    }
  }
  return { config, added };
}

export function renderDaemonJson(config: DaemonConfig): string {
  return JSON.stringify(config, null, 2) + "\n";
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
