// Step `base`: the packages the other steps rely on (curl, ca-certificates, gnupg, jq), and a
// look at whether the clock is synchronised (reported, not changed: timekeeping is the admin's).
import type { Change } from "../change.js";
import { commandOutput } from "../facts/commands.js";
import { installedPackages, missingPackages } from "../facts/packages.js";
import { applyChanges } from "../ops.js";
import type { Step } from "../step.js";

export const basePackages = ["curl", "ca-certificates", "gnupg", "jq"];

export const baseStep: Step = {
  id: "base",
  description: "packages the other steps need; clock sync check",
  roles: "all",
  async check(ctx) {
    const [installed, ntp] = await Promise.all([
      installedPackages(ctx.remote, basePackages),
      commandOutput(ctx.remote, "timedatectl show -p NTPSynchronized --value"),
    ]);
    const missing = missingPackages(installed);
    const changes: Change[] = missing.length ? [{ kind: "install-packages", packages: missing, reason: "not installed" }] : [];
    if (ntp === "no") ctx.log("the clock is not NTP-synchronised (timedatectl); job times and TLS may be off");
    return { facts: { clockSynchronised: ntp === undefined ? "unknown" : ntp === "yes" }, changes };
  },
  apply: (ctx, changes) => applyChanges(ctx, changes),
};
