// Registers the trust commands of `labrig`: login, users, join-tokens and hosts reset. Only flag
// parsing lives here; the work is loaded lazily from people-commands.ts.
import { type Command, InvalidArgumentError } from "commander";
import { SAFE_NAME_PATTERN } from "../core/api.js";
import { parseWholeNumber } from "./jobs.js";

const targetHelp = `
The dispatcher is found from --url/--token, then LABRIG_URL/LABRIG_TOKEN, then the credentials
'labrig login' wrote, then the local lab that 'pnpm start' runs under LABRIG_HOME.`;

const load = () => import("./people-commands.js");

/** 90s, 15m, 1h, 7d → seconds. */
export function parseTtl(v: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError("expected a duration like 90s, 15m, 1h or 7d");
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "s") as "s" | "m" | "h" | "d"];
}

/** A whole number, or none/off for no limit (null). */
function parseLimit(v: string): number | null {
  if (["none", "off", "unlimited"].includes(v.trim())) return null;
  return parseWholeNumber(0)(v);
}

function parseName(v: string): string {
  if (!SAFE_NAME_PATTERN.test(v)) throw new InvalidArgumentError("1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  return v;
}

function withTarget(cmd: Command): Command {
  return cmd
    .option("--url <url>", "dispatcher URL (else LABRIG_URL, else your login, else the local lab under LABRIG_HOME)")
    .option("--token <token>", "token (else LABRIG_TOKEN, else your login, else the local lab's admin token)");
}

export function registerPeopleCommands(program: Command): void {
  program
    .command("login")
    .description("keep your token for a dispatcher in LABRIG_HOME/credentials.json (mode 0600)")
    .requiredOption("--url <url>", "the dispatcher's URL")
    .addHelpText(
      "after",
      `
The token is read from stdin when it is not a terminal (echo "$TOKEN" | labrig login --url URL),
else asked for without echo; never from a flag, so it stays out of shell history and ps.
An admin makes your token with: labrig users add NAME`,
    )
    .action(async (opts: { url: string }) => (await load()).loginCommand(opts));

  const users = program.command("users").description("people who use the lab, and their roles (admins only)");
  withTarget(
    users
      .command("add")
      .description("add a person and print their token once (members submit and act on their own jobs; admins do everything)")
      .argument("<name>", "their name", parseName)
      .option("--admin", "make them an admin")
      .option("--json", "print JSON"),
  )
    .addHelpText("after", targetHelp)
    .action(async (name: string, opts) => (await load()).usersAddCommand(name, opts));
  withTarget(users.command("list").description("list people, their roles and whether their token was revoked").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (opts) => (await load()).usersListCommand(opts));
  withTarget(users.command("revoke").description("make a person's token stop working at once").argument("<name>", "their name").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (name: string, opts) => (await load()).usersRevokeCommand(name, opts));

  withTarget(
    users
      .command("limits")
      .description("set what a person may hold at once, queue, and whether they may ask for high priority; '*' is everyone's default; no flags: show them")
      .argument("[name]", "their name, or '*' for everyone's default")
      .option("--gpus <n|none>", "GPUs their jobs may hold at once (none: no limit)", parseLimit)
      .option("--queued <n|none>", "queued jobs they may have (none: no limit)", parseLimit)
      .option("--high", "may ask for high priority")
      .option("--no-high", "may not ask for high priority")
      .option("--json", "print JSON"),
  )
    .addHelpText("after", `\nExamples:\n  labrig users limits '*' --gpus 4 --queued 200     everyone: 4 GPUs at once, 200 queued jobs\n  labrig users limits ana --gpus 8 --high           ana: 8 GPUs and high priority\n  labrig users limits                               what is set\n${targetHelp}`)
    .action(async (name: string | undefined, opts) => (await load()).usersLimitsCommand(name, opts));

  const joins = program.command("join-tokens").description("tokens that let a new GPU host's agent register (admins only)");
  withTarget(
    joins
      .command("create")
      .description("make a join token and print it once")
      .option("--ttl <duration>", "stop working after this long (90s, 15m, 1h, 7d)", parseTtl)
      .option("--uses <n>", "stop working after this many registrations", parseWholeNumber(1))
      .option("--note <text>", "what it is for (shown by list)")
      .option("--json", "print JSON"),
  )
    .addHelpText("after", `\nExample:\n  labrig join-tokens create --ttl 1h --uses 1 --note gpu-new\n${targetHelp}`)
    .action(async (opts) => (await load()).joinCreateCommand(opts));
  withTarget(joins.command("list").description("list join tokens (never the tokens themselves)").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (opts) => (await load()).joinListCommand(opts));
  withTarget(joins.command("revoke").description("make a join token stop working").argument("<id>", "its id, from list").option("--json", "print JSON"))
    .addHelpText("after", targetHelp)
    .action(async (id: string, opts) => (await load()).joinRevokeCommand(id, opts));

  const hosts = program.command("hosts").description("GPU hosts' identities (admins only)");
  withTarget(
    hosts
      .command("reset")
      .description("forget a host's agent token, so its agent (which lost it) can register again with a join token")
      .argument("<hostId>", "host id"),
  )
    .addHelpText("after", targetHelp)
    .action(async (hostId: string, opts) => (await load()).hostsResetCommand(hostId, opts));
}
