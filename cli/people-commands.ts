// What the trust commands do: log in, manage people and join tokens, reset a host. Loaded lazily
// by people.ts. Tokens are printed once, when made, and read for login from stdin or a prompt.
import { createInterface } from "node:readline";
import { joinTokenListResponseSchema, personLimitsListResponseSchema, personListResponseSchema, type JoinToken, type Person, type PersonLimits, type WhoAmI } from "../core/api.js";
import { DispatcherClient } from "../core/client.js";
import { writeCredentials } from "../core/config.js";
import { clientFor } from "./dispatcher-client.js";
import { InputError } from "../core/errors.js";
import { visible } from "../core/visible.js";
import { formatTable } from "./format.js";
import type { TargetFlags } from "./jobs.js";

const out = (s: string): void => void process.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

/** The token from stdin (piped) or typed at a prompt that does not echo it. */
async function readToken(): Promise<string> {
  if (!process.stdin.isTTY) {
    let text = "";
    for await (const chunk of process.stdin) text += chunk;
    return text.trim();
  }
  process.stderr.write("token: ");
  const rl = createInterface({ input: process.stdin, output: undefined, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question("", (answer) => resolve(answer.trim())));
  } finally {
    rl.close();
    process.stderr.write("\n");
  }
}

export async function loginCommand(opts: { url: string }): Promise<void> {
  const token = await readToken();
  if (token === "") throw new InputError("token", "no token given: pipe it in (echo \"$TOKEN\" | labrig login --url URL) or type it at the prompt");
  const client = new DispatcherClient({ url: opts.url, token });
  const who = (await client.request<WhoAmI>("GET", "/api/whoami")).body;
  if (who.kind !== "person") throw new InputError("token", "that is an agent's token, not a person's; ask an admin for yours (labrig users add NAME)");
  const file = writeCredentials({ url: opts.url, token });
  out(`logged in to ${client.url} as ${visible(who.name)} (${who.role}); token kept in ${file} (mode 0600)`);
}

export async function usersAddCommand(name: string, opts: TargetFlags & { admin?: boolean; json?: boolean }): Promise<void> {
  const r = (await clientFor(opts).request<Person & { token: string }>("POST", "/api/users", { body: { name, role: opts.admin ? "admin" : "member" } })).body;
  if (opts.json) return json(r);
  out(`added ${r.name} (${r.role}). Their token, shown only now:\n\n  ${r.token}\n\nThey keep it with: labrig login --url <dispatcher URL>  (and paste it)`);
}

export async function usersListCommand(opts: TargetFlags & { json?: boolean }): Promise<void> {
  const { users } = (await clientFor(opts).request("GET", "/api/users", { schema: personListResponseSchema })).body;
  if (opts.json) return json(users);
  if (users.length === 0) return out("no people added yet; the state dir's admin token acts as 'admin'");
  out(formatTable(["NAME", "ROLE", "ADDED", "BY", "REVOKED"], users.map((u) => [u.name, u.role, u.createdAt, u.createdBy ?? "-", u.revokedAt ?? "-"])));
}

export async function usersLimitsCommand(name: string | undefined, opts: TargetFlags & { gpus?: number | null; queued?: number | null; high?: boolean; json?: boolean }): Promise<void> {
  const client = clientFor(opts);
  const change = { ...(opts.gpus !== undefined ? { maxGpus: opts.gpus } : {}), ...(opts.queued !== undefined ? { maxQueued: opts.queued } : {}), ...(opts.high !== undefined ? { high: opts.high } : {}) };
  const show = (n: number | null) => (n === null ? "no limit" : String(n));
  if (name === undefined || Object.keys(change).length === 0) {
    const { limits } = (await client.request("GET", "/api/users/limits", { schema: personLimitsListResponseSchema })).body;
    const shown = name === undefined ? limits : limits.filter((l) => l.name === name);
    if (opts.json) return json(shown);
    if (shown.length === 0) return out(name === undefined ? "no limits set: everyone may hold any GPUs and queue any jobs; only admins may ask for high priority" : `${visible(name)} has no limits of their own (everyone's default, '*', applies)`);
    return out(formatTable(["NAME", "GPUS AT ONCE", "QUEUED", "HIGH"], shown.map((l) => [l.name, show(l.maxGpus), show(l.maxQueued), l.high ? "yes" : "no"])));
  }
  const r = (await client.request<PersonLimits>("PUT", `/api/users/${encodeURIComponent(name)}/limits`, { body: change })).body;
  if (opts.json) return json(r);
  out(`${r.name === "*" ? "everyone (unless set per person)" : visible(r.name)}: ${show(r.maxGpus)} GPUs at once, ${show(r.maxQueued)} queued jobs, high priority ${r.high ? "allowed" : "not allowed"}`);
}

export async function usersRevokeCommand(name: string, opts: TargetFlags & { json?: boolean }): Promise<void> {
  const r = (await clientFor(opts).request<Person>("POST", `/api/users/${encodeURIComponent(name)}/revoke`)).body;
  if (opts.json) return json(r);
  out(`${visible(r.name)}: token revoked; it gets 401 from now on`);
}

export async function joinCreateCommand(opts: TargetFlags & { ttl?: number; uses?: number; note?: string; json?: boolean }): Promise<void> {
  const r = (await clientFor(opts).request<JoinToken & { token: string }>("POST", "/api/join-tokens", { body: { ttlS: opts.ttl, uses: opts.uses, note: opts.note } })).body;
  if (opts.json) return json(r);
  const limits = [r.expiresAt ? `until ${r.expiresAt}` : "no expiry", r.usesLeft !== null ? `${r.usesLeft} use(s)` : "unlimited uses"].join(", ");
  out(`join token ${r.id} (${limits}), shown only now:\n\n  ${r.token}\n\nIt registers only host ids that do not exist yet.`);
}

export async function joinListCommand(opts: TargetFlags & { json?: boolean }): Promise<void> {
  const { joinTokens } = (await clientFor(opts).request("GET", "/api/join-tokens", { schema: joinTokenListResponseSchema })).body;
  if (opts.json) return json(joinTokens);
  if (joinTokens.length === 0) return out("no join tokens made yet (the state dir's join-token file always works)");
  out(
    formatTable(
      ["ID", "USABLE", "EXPIRES", "USES LEFT", "USED", "NOTE"],
      joinTokens.map((t) => [t.id, t.revokedAt ? "revoked" : t.usable ? "yes" : "no", t.expiresAt ?? "never", t.usesLeft === null ? "unlimited" : String(t.usesLeft), String(t.uses), t.note ?? ""]),
    ),
  );
}

export async function joinRevokeCommand(id: string, opts: TargetFlags & { json?: boolean }): Promise<void> {
  const r = (await clientFor(opts).request<JoinToken>("POST", `/api/join-tokens/${encodeURIComponent(id)}/revoke`)).body;
  if (opts.json) return json(r);
  out(`join token ${visible(r.id)}: revoked`);
}

export async function hostsResetCommand(hostId: string, opts: TargetFlags): Promise<void> {
  const r = (await clientFor(opts).request<{ message: string }>("POST", `/api/hosts/${encodeURIComponent(hostId)}/reset`)).body;
  out(visible(r.message));
}
