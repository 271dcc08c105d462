// Where a labrig command finds its dispatcher: flags, then LABRIG_URL/LABRIG_TOKEN, then the
// credentials `labrig login` wrote, then the local lab that `pnpm start` keeps under LABRIG_HOME
// (default ~/.labrig), whose admin the person running it is.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
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
    credentialsFile: join(home, "credentials.json"),
  };
}

/** What `labrig login` keeps: one person's token for one dispatcher. */
export interface Credentials {
  url: string;
  token: string;
}

export function readCredentials(env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  const file = localLabPaths(labrigHome(env)).credentialsFile;
  if (!existsSync(file)) return undefined;
  try {
    const c = JSON.parse(readFileSync(file, "utf8")) as Partial<Credentials>;
    return typeof c.url === "string" && typeof c.token === "string" ? { url: stripSlash(c.url), token: c.token } : undefined;
  } catch (err) {
    throw new InputError(file, `cannot read the credentials (${(err as Error).message}); run labrig login again`, { cause: err });
  }
}

/** Writes the credentials file 0600 in a 0700 folder, whatever existed before; returns its path. */
export function writeCredentials(c: Credentials, env: NodeJS.ProcessEnv = process.env): string {
  const paths = localLabPaths(labrigHome(env));
  mkdirSync(paths.home, { recursive: true, mode: 0o700 });
  chmodSync(paths.home, 0o700);
  const tmp = `${paths.credentialsFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ url: stripSlash(c.url), token: c.token }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, paths.credentialsFile);
  return paths.credentialsFile;
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
  source: "flags" | "env" | "credentials" | "local-lab";
}

export function resolveDispatcher(
  flags: { url?: string; token?: string },
  env: NodeJS.ProcessEnv = process.env,
): DispatcherTarget {
  const saved = () => readCredentials(env);
  // A token from the credentials file goes only to the dispatcher it was made for.
  const savedFor = (url: string) => {
    const c = saved();
    return c && c.url === stripSlash(url) ? c.token : undefined;
  };
  if (flags.url) {
    const token = flags.token ?? env.LABRIG_TOKEN ?? savedFor(flags.url);
    if (!token) throw new InputError("--token", `--url was given without a token; run labrig login --url ${flags.url}, or set LABRIG_TOKEN`);
    return { url: stripSlash(flags.url), token, source: "flags" };
  }
  if (env.LABRIG_URL) {
    const token = flags.token ?? env.LABRIG_TOKEN ?? savedFor(env.LABRIG_URL);
    if (!token) throw new InputError("LABRIG_TOKEN", "LABRIG_URL is set but LABRIG_TOKEN is not (or run labrig login)");
    return { url: stripSlash(env.LABRIG_URL), token, source: "env" };
  }
  const creds = saved();
  if (creds) return { url: creds.url, token: flags.token ?? env.LABRIG_TOKEN ?? creds.token, source: "credentials" };
  const paths = localLabPaths(labrigHome(env));
  if (existsSync(paths.labFile)) {
    const lab = JSON.parse(readFileSync(paths.labFile, "utf8")) as LocalLabFile;
    const token = flags.token ?? env.LABRIG_TOKEN ?? readFileSync(lab.adminTokenFile, "utf8").trim();
    return { url: stripSlash(lab.url), token, source: "local-lab" };
  }
  throw new InputError(
    "dispatcher",
    `no dispatcher found: run labrig login --url URL, set LABRIG_URL and LABRIG_TOKEN, or start a local lab with 'pnpm start' (looked for ${paths.credentialsFile} and ${paths.labFile})`,
  );
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** A size in MiB from the environment (`name`), in bytes; `def` when unset. */
export function mibFromEnv(env: NodeJS.ProcessEnv, name: string, def: number): number {
  const v = env[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InputError(name, `expected a positive number of MiB, got '${v}'`);
  return Math.floor(n * 1024 * 1024);
}
