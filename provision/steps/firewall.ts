// Step `firewall`: ufw denying incoming and allowing outgoing traffic, SSH allowed (added before
// ufw is enabled, so the provisioning connection is never locked out), each role's ports open
// only to firewall.allowFrom, enabled. Rules labrig adds carry the ufw comment 'labrig'; on each
// run the labrig rules are reconciled (missing ones added, stale ones removed) and the admin's
// own rules are left alone.
import type { Change } from "../change.js";
import { type UfwRule, type UfwState, ufwState } from "../facts/ufw.js";
import type { HostConfig, LabConfig } from "../inventory.js";
import { applyChanges } from "../ops.js";
import type { Role, Step } from "../step.js";
import { slurmctldPort, slurmdPort, srunPortRange } from "./slurm-conf.js";

export const labrigComment = "labrig";

/** A port (or a range, "60001:60100") open to firewall.allowFrom, spelt the way `ufw show added` prints it. */
export function allowFromRule(source: string, port: number | string): string {
  return `allow from ${source.replace(/\/(32|128)$/, "")} to any port ${port} proto tcp`;
}

/** The ports each role opens to firewall.allowFrom; another role adds its entry here. */
export const rulesByRole: Record<Role, (host: HostConfig, lab?: LabConfig) => (number | string)[]> = {
  // In slurm mode a GPU host is a compute node too: slurmctld and srun reach its slurmd.
  gpu: (host, lab) => [host.agent.port, ...(lab?.scheduler === "slurm" ? [slurmdPort] : [])],
  dispatcher: () => [],
  // slurmd reaches slurmctld, and calls back the srun people run on the controller.
  "slurm-controller": () => [slurmctldPort, `${srunPortRange.from}:${srunPortRange.to}`],
};

/** The rules labrig wants on a host, in the order they should be added (SSH first). */
export function desiredUfwRules(host: HostConfig, lab?: LabConfig): string[] {
  const ports = [...new Set(host.roles.flatMap((r) => rulesByRole[r](host, lab)))];
  return [`allow ${host.port}/tcp`, ...ports.flatMap((p) => host.firewall.allowFrom.map((src) => allowFromRule(src, p)))];
}

/** Rules to add and labrig rules to delete; the admin's rules (any other comment or none) are kept. */
export function reconcileUfwRules(desired: string[], current: UfwRule[]): { add: string[]; remove: string[] } {
  const present = new Set(current.map((r) => r.rule));
  const add = desired.filter((r) => !present.has(r));
  const remove = current.filter((r) => r.comment === labrigComment && !desired.includes(r.rule)).map((r) => r.rule);
  return { add, remove };
}

/** The changes that bring ufw from `state` to the wanted rules (SSH on `sshPort` added before ufw is enabled). */
export function planFirewall(sshPort: number, desired: string[], state: UfwState): Change[] {
  const changes: Change[] = [];
  if (!state.installed) changes.push({ kind: "install-packages", packages: ["ufw"], reason: "not installed" });
  const { add, remove } = reconcileUfwRules(desired, state.rules);
  for (const rule of add) changes.push({ kind: "ufw-add", rule, reason: rule.startsWith(`allow ${sshPort}/`) ? "SSH, before enabling" : "from firewall.allowFrom" });
  for (const rule of remove) changes.push({ kind: "ufw-delete", rule, reason: "a labrig rule no longer wanted" });
  if (state.defaults.incoming !== "deny") changes.push({ kind: "ufw-default", direction: "incoming", policy: "deny", reason: `is ${state.defaults.incoming ?? "unset"}` });
  if (state.defaults.outgoing !== "allow") changes.push({ kind: "ufw-default", direction: "outgoing", policy: "allow", reason: `is ${state.defaults.outgoing ?? "unset"}` });
  if (!state.active) changes.push({ kind: "ufw-enable", reason: "ufw is inactive" });
  return changes;
}

export const firewallStep: Step = {
  id: "firewall",
  description: "ufw: deny incoming, allow SSH and the lab's ports from allowFrom, enabled",
  roles: "all",
  ownedByDsm: "DSM has no ufw; the host's own ports are DSM's firewall's (Control Panel > Security > Firewall), the dispatcher's published port is dispatcher-firewall's",
  async check(ctx) {
    const { host } = ctx;
    if (!host.firewall.enabled) return { facts: {}, changes: [], skip: "firewall.enabled is false in the inventory" };
    const state = await ufwState(ctx.remote);
    const changes = planFirewall(host.port, desiredUfwRules(host, ctx.inventory.lab), state);
    return { facts: { active: state.active, defaults: state.defaults, rules: state.rules }, changes };
  },
  apply: (ctx, changes) => applyChanges(ctx, changes),
};
