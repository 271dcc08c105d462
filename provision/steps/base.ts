// Step `base`: first, the host's system (one labrig does not provision is refused here too, for a
// step run on its own; the runner refuses it before any step); then the packages the other steps rely on (curl, ca-certificates,
// gnupg, jq), and a look at whether the clock is synchronised (reported, not changed).
import type { Change } from "../change.js";
import { commandOutput } from "../facts/commands.js";
import { hostSupport, hostSystemOf } from "../facts/host-system.js";
import { installedPackages, missingPackages } from "../facts/packages.js";
import { applyChanges } from "../ops.js";
import type { Step } from "../step.js";

export const basePackages = ["curl", "ca-certificates", "gnupg", "jq"];

/** The base packages to install, from each one's installed version or undefined (`installedPackages`). */
export function planBase(installed: Map<string, string | undefined>): Change[] {
  const missing = missingPackages(installed);
  return missing.length ? [{ kind: "install-packages", packages: missing, reason: "not installed" }] : [];
}

export const baseStep: Step = {
  id: "base",
  description: "packages the other steps need; clock sync check",
  roles: "all",
  ownedByDsm: "DSM has no apt; its packages come from Package Center",
  async check(ctx) {
    const os = hostSupport(await hostSystemOf(ctx), ctx.host.roles);
    if (!os.supported) return { facts: { os: os.name }, changes: [], fail: `refused before any change: ${os.reason}` };
    const [installed, ntp] = await Promise.all([
      installedPackages(ctx.remote, basePackages),
      commandOutput(ctx.remote, "timedatectl show -p NTPSynchronized --value"),
    ]);
    const changes = planBase(installed);
    if (ntp === "no") ctx.log("the clock is not NTP-synchronised (timedatectl); job times and TLS may be off");
    return { facts: { os: os.name, clockSynchronised: ntp === undefined ? "unknown" : ntp === "yes" }, changes };
  },
  apply: (ctx, changes) => applyChanges(ctx, changes),
};
