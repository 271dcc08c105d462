// Step `dispatcher-firewall` (role dispatcher): the dispatcher's port reachable only from
// firewall.allowFrom. A port Docker publishes is DNAT'ed and forwarded before ufw's INPUT rules
// ever see it, so a ufw rule neither opens nor closes it; Docker's documented place for such
// filtering is the DOCKER-USER chain. This step keeps a LABRIG-DISPATCHER chain there (allowFrom
// sources return, everything else to that published port drops) through a small script run by a
// oneshot unit after docker.service, so the rules come back after a reboot or an engine restart.
//
//   hosts: { nas: { roles: [dispatcher], firewall: { allowFrom: [192.168.1.0/24] } } }
import type { Change } from "../change.js";
import { fileStates } from "../facts/files.js";
import { installedPackages } from "../facts/packages.js";
import { unitStates } from "../facts/systemd.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import type { Step, StepContext } from "../step.js";
import { dispatcherSettings } from "./dispatcher-container.js";

export const firewallScript = "/usr/local/sbin/labrig-dispatcher-firewall";
export const firewallUnit = "labrig-dispatcher-firewall.service";
const unitFile = `/etc/systemd/system/${firewallUnit}`;
const chain = "LABRIG-DISPATCHER";

/** The chain's rules as `iptables -S` prints them, in order. */
export function desiredChainRules(allowFrom: string[]): string[] {
  return [
    `-N ${chain}`,
    ...allowFrom.map((src) => `-A ${chain} -s ${src.includes("/") ? src : src.includes(":") ? `${src}/128` : `${src}/32`} -j RETURN`),
    `-A ${chain} -j DROP`,
  ];
}

/**
 * Packets of connections Docker DNAT'ed to the published port, client to container only: the
 * replies (which match the same connection) and the container's own outgoing traffic pass.
 */
export function hookRule(port: number): string {
  return `DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport ${port} --ctdir ORIGINAL -j ${chain}`;
}

export function renderFirewallScript(allowFrom: string[], port: number): string {
  const rules = desiredChainRules(allowFrom)
    .slice(1)
    .map((r) => `iptables ${r}`)
    .join("\n");
  return `#!/bin/sh
# Written by labrig provision: who may reach the dispatcher container's port ${port}
# (firewall.allowFrom in the inventory). Run by ${firewallUnit} after docker.service.
set -e
iptables -N DOCKER-USER 2>/dev/null || true
iptables -N ${chain} 2>/dev/null || iptables -F ${chain}
${rules}
iptables -C ${hookRule(port)} 2>/dev/null || iptables -I ${hookRule(port)}
`;
}

export function renderFirewallUnit(): string {
  return `# Written by labrig provision.
[Unit]
Description=labrig: the dispatcher's port only from firewall.allowFrom (iptables DOCKER-USER)
After=docker.service
Requires=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${firewallScript}

[Install]
WantedBy=multi-user.target docker.service
`;
}

function desiredFiles(ctx: StepContext): DesiredFile[] {
  const { port } = dispatcherSettings(ctx.host);
  return [
    { path: firewallScript, content: renderFirewallScript(ctx.host.firewall.allowFrom, port), mode: 0o755 },
    { path: unitFile, content: renderFirewallUnit(), mode: 0o644 },
  ];
}

export const dispatcherFirewallStep: Step = {
  id: "dispatcher-firewall",
  description: "the dispatcher container's port only from firewall.allowFrom (DOCKER-USER chain)",
  roles: ["dispatcher"],
  async check(ctx) {
    if (!ctx.host.firewall.enabled) return { facts: {}, changes: [], skip: "firewall.enabled is false in the inventory" };
    const { port } = dispatcherSettings(ctx.host);
    const files = desiredFiles(ctx);
    const [installed, states, units, live, hooked] = await Promise.all([
      installedPackages(ctx.remote, ["iptables"]),
      fileStates(ctx.remote, files.map((f) => f.path)),
      unitStates(ctx.remote, [firewallUnit]),
      ctx.remote.exec(`iptables -S ${chain}`, { sudo: true }),
      ctx.remote.exec(`iptables -C ${hookRule(port)}`, { sudo: true }),
    ]);
    const changes: Change[] = [];
    if (!installed.get("iptables")) changes.push({ kind: "install-packages", packages: ["iptables"], reason: "not installed" });
    const fileChanges = files.map((f) => planFile(states.get(f.path), f, f.path === firewallScript ? "firewall script" : "unit")).filter((c) => c !== undefined);
    changes.push(...fileChanges);
    if (fileChanges.some((c) => c.kind === "write-file" && c.path === unitFile)) changes.push({ kind: "daemon-reload", reason: "the unit changed" });
    const unit = units.get(firewallUnit)!;
    if (unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: firewallUnit, reason: `is ${unit.enabled}` });
    const liveRules = live.exitCode === 0 ? live.stdout.trim().split("\n") : [];
    const rulesOk = JSON.stringify(liveRules) === JSON.stringify(desiredChainRules(ctx.host.firewall.allowFrom)) && hooked.exitCode === 0;
    if (!rulesOk || fileChanges.length > 0 || unit.active !== "active") {
      changes.push({ kind: "restart-unit", unit: firewallUnit, reason: rulesOk ? "the script changed" : "the live iptables rules differ from allowFrom" });
    }
    return { facts: { rules: liveRules, hooked: hooked.exitCode === 0, unit }, changes };
  },
  apply: (ctx, changes) => applyChanges(ctx, changes, { files: new Map(desiredFiles(ctx).map((f) => [f.path, f])) }),
};
