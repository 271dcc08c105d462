// The join token the agent step writes into a GPU host's env file. When this machine can ask the
// lab's dispatcher with an admin token, a host that is not registered yet gets a join token of its
// own: one use, an hour, a note naming the host (`POST /api/join-tokens`). A registered host keeps
// the join token its env file holds (its agent registers with its own agent token), so a re-run
// changes nothing there. Without an admin token, or when the dispatcher does not answer or
// refuses, the lab's shared join token is used, as before, and the change's reason says why.
//
//   const joinTokens = dispatcherJoinTokens({ inventory, dryRun: false });
//   const grant = await joinTokens.forHost("gpu-a100", { current: undefined });  // {kind: "minted", token: "lrj_…", why: "a single-use join token made for it: not registered yet (id …, until …)"}
import { existsSync, readFileSync } from "node:fs";
import type { Device, JoinToken } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { errorMessage } from "../core/errors.js";
import { dispatcherUrl, type Inventory, readJoinToken } from "./inventory.js";
import { readSavedDispatcher } from "./saved-dispatcher.js";

/** How long a join token made for one host stays usable: the agent registers seconds after its step. */
export const hostJoinTokenTtlS = 3600;

export type JoinTokenDecision = { use: "current" | "mint" | "shared"; why: string };

/**
 * Which join token a host's env file gets. Pure. In: what the dispatcher said (or why it could not
 * be asked) and whether the env file holds a join token; out: the decision and why, in words.
 */
export function decideJoinToken(f: {
  host: string;
  /** Why no admin token is known for the dispatcher; undefined when one is. */
  noAdmin?: string;
  /** The dispatcher's devices, or why listing them failed. */
  devices?: Pick<Device, "hostId" | "status">[] | { error: string };
  /** The host's env file holds a join token now. */
  hasCurrent: boolean;
}): JoinTokenDecision {
  if (f.noAdmin !== undefined) return { use: "shared", why: `the lab's shared join token: ${f.noAdmin}` };
  if (f.devices === undefined || !Array.isArray(f.devices)) return { use: "shared", why: `the lab's shared join token: the dispatcher could not be asked (${f.devices?.error ?? "no answer"})` };
  const device = f.devices.find((d) => d.hostId === f.host);
  if (!device) return { use: "mint", why: "a single-use join token made for it: not registered yet" };
  // A reset host (labrig hosts reset) is listed too; its agent, unable to register, goes silent.
  if (device.status === "disconnected") return { use: "mint", why: "a single-use join token made for it: registered, but disconnected (after labrig hosts reset it needs a join token again)" };
  if (!f.hasCurrent) return { use: "mint", why: "a single-use join token made for it: registered, but its env file holds no join token" };
  return { use: "current", why: "the join token the env file holds: registered already, its agent uses its own agent token" };
}

/** The admin token to ask the lab's dispatcher with: LABRIG_ADMIN_TOKEN, the one read back into LABRIG_HOME, else LABRIG_TOKEN. */
export function adminTokenFor(inv: Inventory, env: NodeJS.ProcessEnv = process.env): { token: string; from: string } | { none: string } {
  if (env.LABRIG_ADMIN_TOKEN?.trim()) return { token: env.LABRIG_ADMIN_TOKEN.trim(), from: "LABRIG_ADMIN_TOKEN" };
  const saved = readSavedDispatcher(inv.lab.name, env);
  if (saved && existsSync(saved.adminTokenFile)) {
    const token = readFileSync(saved.adminTokenFile, "utf8").trim();
    if (token) return { token, from: saved.adminTokenFile };
  }
  if (env.LABRIG_TOKEN?.trim()) return { token: env.LABRIG_TOKEN.trim(), from: "LABRIG_TOKEN" };
  return { none: `no admin token for lab ${inv.lab.name}'s dispatcher (none read back from its host, LABRIG_ADMIN_TOKEN and LABRIG_TOKEN unset)` };
}

export interface JoinTokenGrant {
  /** current: the env file's own; minted: made for this host now; would-mint: a dry run's stand-in; shared: the lab's. */
  kind: "current" | "minted" | "would-mint" | "shared";
  token: string;
  why: string;
}

export interface JoinTokens {
  /**
   * The join token for a host's env file, decided once per run and host: a later call (the check
   * after apply) gets the same grant, so a minted token is not replaced by another.
   */
  forHost(host: string, facts: { current?: string }): Promise<JoinTokenGrant>;
}

/** A dry run plans with this in place of a token it does not make. */
export const wouldMintToken = "(a single-use join token, made when applied)";

/** Join tokens from the lab's dispatcher, as `labrig provision` asks for them. */
export function dispatcherJoinTokens(opts: { inventory: Inventory; dryRun: boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number }): JoinTokens {
  const env = opts.env ?? process.env;
  const granted = new Map<string, Promise<JoinTokenGrant>>();
  const shared = (why: string): JoinTokenGrant => ({ kind: "shared", token: readJoinToken(opts.inventory, env), why });

  async function grant(host: string, current: string | undefined): Promise<JoinTokenGrant> {
    const url = dispatcherUrl(opts.inventory, env);
    const admin = adminTokenFor(opts.inventory, env);
    let devices: Device[] | { error: string } | undefined;
    let client: DispatcherClient | undefined;
    if (url && "token" in admin) {
      client = new DispatcherClient({ url, token: admin.token, timeoutMs: opts.timeoutMs ?? 10_000, via: "labrig provision" });
      devices = await client.devices().catch((err: unknown) => ({ error: `GET ${url}/api/devices with the token from ${admin.from}: ${errorMessage(err)}` }));
    }
    const noAdmin = "none" in admin ? admin.none : url ? undefined : "no dispatcher URL (lab.dispatcher.url, or one read back from its host)";
    const decision = decideJoinToken({ host, noAdmin, devices, hasCurrent: current !== undefined });
    if (decision.use === "current") return { kind: "current", token: current!, why: decision.why };
    if (decision.use === "shared") return shared(decision.why);
    if (opts.dryRun) return { kind: "would-mint", token: wouldMintToken, why: decision.why };
    try {
      const made = await client!.request<JoinToken & { token: string }>("POST", "/api/join-tokens", { body: { ttlS: hostJoinTokenTtlS, uses: 1, note: `labrig provision: ${host}` } });
      return { kind: "minted", token: made.body.token, why: `${decision.why} (id ${made.body.id}, until ${made.body.expiresAt})` };
    } catch (err) {
      return shared(`the lab's shared join token: the dispatcher at ${url} made none (${errorMessage(err)})`);
    }
  }

  return {
    forHost(host, facts) {
      let g = granted.get(host);
      if (!g) {
        g = grant(host, facts.current);
        granted.set(host, g);
        // A failure (no shared token either) is not kept: the next call tries again.
        g.catch(() => granted.delete(host));
      }
      return g;
    },
  };
}

/** LABRIG_JOIN_TOKEN in an agent env file's text, if it has one. */
export function joinTokenInEnv(text: string): string | undefined {
  const line = text.split("\n").find((l) => l.startsWith("LABRIG_JOIN_TOKEN="));
  const token = line?.slice("LABRIG_JOIN_TOKEN=".length).trim();
  return token ? token : undefined;
}
