// The agent's settings: flags first, then the environment (systemd's env file sets LABRIG_URL,
// LABRIG_HOST_ID, LABRIG_JOIN_TOKEN, LABRIG_WORKDIR, LABRIG_LISTEN, LABRIG_LABELS). Pure apart from
// reading --join-token-file, so every rule is tested without starting an agent.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { HOST_ID_PATTERN } from "../core/api.js";
import { InputError } from "../core/errors.js";

export interface AgentFlags {
  url?: string;
  hostId?: string;
  joinToken?: string;
  joinTokenFile?: string;
  workdir?: string;
  listen?: string;
  labels?: string;
  keepJobs?: boolean;
  nvidiaSmi?: string;
  killGrace?: string;
}

export interface AgentOptions {
  url: string;
  hostId: string;
  joinToken: string;
  workdir: string;
  /** Where the local HTTP server listens; null: no server. */
  listen: { host: string; port: number } | null;
  labels: Record<string, string>;
  keepJobs: boolean;
  nvidiaSmi: string;
  killGraceMs: number;
  syncIntervalMs: number;
  /** The bound on the code snapshot cache (LABRIG_CODE_CACHE_MB, default 4096). */
  codeCacheBytes: number;
  leaseWaitS: number;
  /** The local server's URL as the lab should reach it (sent at registration); derived when unset. */
  advertiseUrl?: string;
  /** Admin tokens the local server accepts without asking the dispatcher. */
  adminTokens: string[];
}

export const DEFAULT_LISTEN = "127.0.0.1:9400";

export function parseListen(v: string, where = "--listen"): AgentOptions["listen"] {
  const s = v.trim();
  if (s === "off" || s === "none") return null;
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InputError(where, `'${v}' is not HOST:PORT or PORT (0 picks a free port; 'off' runs no server)`);
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "127.0.0.1", port };
}

export function parseLabels(v: string, where = "--labels"): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of v.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new InputError(where, `'${part}' is not KEY=VALUE (labels are KEY=VALUE pairs separated by commas)`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}

function numberOf(unit: string) {
  return (v: string | undefined, where: string, fallback: number): number => {
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new InputError(where, `'${v}' is not a number of ${unit} >= 0`);
    return n;
  };
}
const seconds = numberOf("seconds");
const mebibytes = numberOf("MiB");

export function resolveAgentOptions(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const url = flags.url ?? env.LABRIG_URL;
  if (!url) throw new InputError("--url", "the dispatcher's URL is missing: pass --url http://HOST:8000 or set LABRIG_URL");
  if (!/^https?:\/\//.test(url)) throw new InputError("--url", `'${url}' is not an http:// or https:// URL`);

  const hostId = flags.hostId ?? env.LABRIG_HOST_ID ?? hostname().split(".")[0]!;
  if (!HOST_ID_PATTERN.test(hostId)) throw new InputError("--host-id", `'${hostId}' is not a host id (letters, digits, '.', '_' or '-', at most 63)`);

  const tokenFile = flags.joinTokenFile ?? env.LABRIG_JOIN_TOKEN_FILE;
  let joinToken = flags.joinToken;
  if (!joinToken && tokenFile) {
    try {
      joinToken = readFileSync(tokenFile, "utf8").trim();
    } catch (err) {
      throw new InputError("--join-token-file", `cannot read ${tokenFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  joinToken ??= env.LABRIG_JOIN_TOKEN;
  if (!joinToken) {
    throw new InputError("--join-token", "the join token is missing: pass --join-token T or --join-token-file F, or set LABRIG_JOIN_TOKEN (the dispatcher's state dir holds it in join-token)");
  }

  const workdir = flags.workdir ?? env.LABRIG_WORKDIR;
  if (!workdir) throw new InputError("--workdir", "the agent's folder is missing: pass --workdir DIR or set LABRIG_WORKDIR (job outputs and the agent's token live there)");

  const listenWhere = flags.listen !== undefined ? "--listen" : "LABRIG_LISTEN";
  return {
    url: url.replace(/\/+$/, ""),
    hostId,
    joinToken,
    workdir: resolve(workdir),
    listen: parseListen(flags.listen ?? env.LABRIG_LISTEN ?? DEFAULT_LISTEN, listenWhere),
    labels: parseLabels(flags.labels ?? env.LABRIG_LABELS ?? "", flags.labels !== undefined ? "--labels" : "LABRIG_LABELS"),
    keepJobs: flags.keepJobs ?? ["1", "true", "yes"].includes(env.LABRIG_KEEP_JOBS ?? ""),
    nvidiaSmi: flags.nvidiaSmi ?? env.LABRIG_NVIDIA_SMI ?? "nvidia-smi",
    killGraceMs: seconds(flags.killGrace ?? env.LABRIG_KILL_GRACE_S, flags.killGrace !== undefined ? "--kill-grace" : "LABRIG_KILL_GRACE_S", 10) * 1000,
    syncIntervalMs: seconds(env.LABRIG_SYNC_INTERVAL_S, "LABRIG_SYNC_INTERVAL_S", 1) * 1000,
    codeCacheBytes: Math.round(mebibytes(env.LABRIG_CODE_CACHE_MB, "LABRIG_CODE_CACHE_MB", 4096) * 1024 * 1024),
    leaseWaitS: Math.min(60, Math.max(1, Math.round(seconds(env.LABRIG_LEASE_WAIT_S, "LABRIG_LEASE_WAIT_S", 30)))),
    advertiseUrl: env.LABRIG_AGENT_URL?.replace(/\/+$/, "") || undefined,
    adminTokens: (env.LABRIG_AGENT_ADMIN_TOKENS ?? "").split(",").map((t) => t.trim()).filter(Boolean),
  };
}
