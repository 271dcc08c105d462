// Where a labrig command finds its dispatcher: flags, then LABRIG_URL/LABRIG_TOKEN, then the local
// lab that `pnpm start` keeps under LABRIG_HOME (default ~/.labrig).
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { InputError } from "./errors.js";

export function labrigHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.LABRIG_HOME && env.LABRIG_HOME !== "" ? env.LABRIG_HOME : join(homedir(), ".labrig");
}

/** The local lab's files under LABRIG_HOME. */
export function localLabPaths(home = labrigHome()) {
  return {
    home,
    stateDir: join(home, "dispatcher"),
    agentDir: join(home, "agent"),
    labFile: join(home, "lab.json"),
  };
}

/** What `pnpm start` writes so other commands can find the running local lab. */
export interface LocalLabFile {
  url: string;
  adminTokenFile: string;
  joinTokenFile: string;
  agentUrl?: string;
  pid: number;
  startedAt: string;
}

export interface DispatcherTarget {
  url: string;
  token: string;
  source: "flags" | "env" | "local-lab";
}

export function resolveDispatcher(
  flags: { url?: string; token?: string },
  env: NodeJS.ProcessEnv = process.env,
): DispatcherTarget {
  if (flags.url) {
    const token = flags.token ?? env.LABRIG_TOKEN;
    if (!token) throw new InputError("--token", "--url was given without a token; pass --token or set LABRIG_TOKEN");
    return { url: stripSlash(flags.url), token, source: "flags" };
  }
  if (env.LABRIG_URL) {
    const token = flags.token ?? env.LABRIG_TOKEN;
    if (!token) throw new InputError("LABRIG_TOKEN", "LABRIG_URL is set but LABRIG_TOKEN is not");
    return { url: stripSlash(env.LABRIG_URL), token, source: "env" };
  }
  const paths = localLabPaths(labrigHome(env));
  if (existsSync(paths.labFile)) {
    const lab = JSON.parse(readFileSync(paths.labFile, "utf8")) as LocalLabFile;
    const token = flags.token ?? readFileSync(lab.adminTokenFile, "utf8").trim();
    return { url: stripSlash(lab.url), token, source: "local-lab" };
  }
  throw new InputError(
    "dispatcher",
    `no dispatcher found: pass --url and --token, set LABRIG_URL and LABRIG_TOKEN, or start a local lab with 'pnpm start' (looked for ${paths.labFile})`,
  );
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
