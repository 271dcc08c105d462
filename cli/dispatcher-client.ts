// The one way a CLI command reaches the dispatcher: the target from --url/--token, the
// environment, the login file or the local lab (core/config.ts), and a client that records its
// cancels and retries as made by "the CLI".
import { DispatcherClient } from "../core/client.js";
import { type DispatcherTarget, resolveDispatcher } from "../core/config.js";
import type { TargetFlags } from "./jobs.js";

export function targetClient(flags: TargetFlags): { client: DispatcherClient; target: DispatcherTarget } {
  const target = resolveDispatcher(flags);
  return { client: new DispatcherClient({ url: target.url, token: target.token, via: "the CLI" }), target };
}

export function clientFor(flags: TargetFlags): DispatcherClient {
  return targetClient(flags).client;
}
