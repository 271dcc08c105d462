// What the `dispatcher-firewall` and `gpu-firewall` steps share: ports Docker publishes reachable
// only from firewall.allowFrom. A published port is DNAT'ed and forwarded before ufw's INPUT rules
// ever see it, so a ufw rule neither opens nor closes it; Docker's documented place for such
// filtering is the DOCKER-USER chain. A step made here keeps a chain of labrig's own hooked into
// DOCKER-USER (allowFrom sources return, every other packet to the filtered ports drops) through a
// small script run by a oneshot unit after docker.service, so the rules come back after a reboot
// or an engine restart.
//
//   dockerUserFirewallStep({ id: "gpu-firewall", roles: ["gpu"], description, filter: () => ({ chain: "LABRIG-GPU", ..., guards: "every port" }) })
import type { Change } from "../change.js";
import { type FileState, fileStates } from "../facts/files.js";
import { installedPackages } from "../facts/packages.js";
import { type UnitState, unitStates } from "../facts/systemd.js";
import { applyChanges, type DesiredFile, planFile } from "../ops.js";
import type { Role, Step, StepContext } from "../step.js";

/** One labrig chain in DOCKER-USER and the script and unit that put it back. */
export interface DockerUserFilter {
  /** The chain labrig keeps, e.g. LABRIG-DISPATCHER. */
  chain: string;
  script: string;
  /** The oneshot unit that runs the script, e.g. labrig-dispatcher-firewall.service. */
  unit: string;
  /** The TCP port filtered; absent: every port Docker publishes on the host, any protocol. */
  port?: number;
  /** What the chain guards, for the script's comment: "the dispatcher container's port 8000". */
  guards: string;
  /** The same, short, for the unit's Description: "the dispatcher's port". */
  summary: string;
}

export const unitFileOf = (f: Pick<DockerUserFilter, "unit">) => `/etc/systemd/system/${f.unit}`;

/**
 * The chain's rules as `iptables -S` prints them, in order. iptables is IPv4: an IPv6 source in
 * allowFrom has no rule here (an IPv4 packet never comes from it).
 */
export function desiredChainRules(chain: string, allowFrom: string[]): string[] {
  const v4 = allowFrom.filter((src) => !src.includes(":"));
  return [`-N ${chain}`, ...v4.map((src) => `-A ${chain} -s ${src.includes("/") ? src : `${src}/32`} -j RETURN`), `-A ${chain} -j DROP`];
}

/**
 * The DOCKER-USER rule that sends packets to the chain: those of connections Docker DNAT'ed to a
 * published port (to the filtered one, when it is one port), client to container only, so the
 * replies (which match the same connection) and the containers' own outgoing traffic pass.
 */
export function hookRule(f: Pick<DockerUserFilter, "chain" | "port">): string {
  const match = f.port === undefined ? "-m conntrack --ctstate DNAT --ctdir ORIGINAL" : `-p tcp -m conntrack --ctstate DNAT --ctorigdstport ${f.port} --ctdir ORIGINAL`;
  return `DOCKER-USER ${match} -j ${f.chain}`;
}

export function renderFirewallScript(f: DockerUserFilter, allowFrom: string[]): string {
  const rules = desiredChainRules(f.chain, allowFrom)
    .slice(1)
    .map((r) => `iptables ${r}`)
    .join("\n");
  return `#!/bin/sh
# Written by labrig provision: who may reach ${f.guards}
# (firewall.allowFrom in the inventory). Run by ${f.unit} after docker.service.
set -e
iptables -N DOCKER-USER 2>/dev/null || true
iptables -N ${f.chain} 2>/dev/null || iptables -F ${f.chain}
${rules}
iptables -C ${hookRule(f)} 2>/dev/null || iptables -I ${hookRule(f)}
`;
}

export function renderFirewallUnit(f: DockerUserFilter): string {
  return `# Written by labrig provision.
[Unit]
Description=labrig: ${f.summary} only from firewall.allowFrom (iptables DOCKER-USER)
After=docker.service
Requires=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${f.script}

[Install]
WantedBy=multi-user.target docker.service
`;
}

export function desiredFilterFiles(f: DockerUserFilter, allowFrom: string[]): DesiredFile[] {
  return [
    { path: f.script, content: renderFirewallScript(f, allowFrom), mode: 0o755 },
    { path: unitFileOf(f), content: renderFirewallUnit(f), mode: 0o644 },
  ];
}

/** What the host has of a filter, as the check reads it. */
export interface DockerUserFacts {
  iptablesInstalled: boolean;
  files: Map<string, FileState>;
  unit: UnitState;
  /** `iptables -S CHAIN` lines, empty when the chain is missing. */
  liveRules: string[];
  hooked: boolean;
}

/** The changes a filter needs, from what the host has: pure, so a plan test needs no host. */
export function planDockerUserFilter(f: DockerUserFilter, allowFrom: string[], facts: DockerUserFacts): Change[] {
  const files = desiredFilterFiles(f, allowFrom);
  const changes: Change[] = [];
  if (!facts.iptablesInstalled) changes.push({ kind: "install-packages", packages: ["iptables"], reason: "not installed" });
  const fileChanges = files.map((d) => planFile(facts.files.get(d.path), d, d.path === f.script ? "firewall script" : "unit")).filter((c) => c !== undefined);
  changes.push(...fileChanges);
  if (fileChanges.some((c) => c.kind === "write-file" && c.path === unitFileOf(f))) changes.push({ kind: "daemon-reload", reason: "the unit changed" });
  if (facts.unit.enabled !== "enabled") changes.push({ kind: "enable-unit", unit: f.unit, reason: `is ${facts.unit.enabled}` });
  const rulesOk = JSON.stringify(facts.liveRules) === JSON.stringify(desiredChainRules(f.chain, allowFrom)) && facts.hooked;
  if (!rulesOk || fileChanges.length > 0 || facts.unit.active !== "active") {
    changes.push({ kind: "restart-unit", unit: f.unit, reason: rulesOk ? "the script changed" : "the live iptables rules differ from allowFrom" });
  }
  return changes;
}

/** The shell command that takes a filter off the host's live rules (harmless when it is gone). */
export function removeFilterCommand(f: Pick<DockerUserFilter, "chain" | "port">): string {
  const hook = hookRule(f);
  return `while iptables -C ${hook} 2>/dev/null; do iptables -D ${hook}; done; iptables -F ${f.chain} 2>/dev/null; iptables -X ${f.chain} 2>/dev/null; true`;
}

/** A step that keeps one filter on the hosts of its roles, skipped where firewall.enabled is false. */
export function dockerUserFirewallStep(spec: { id: string; description: string; roles: Role[]; filter(host: StepContext["host"]): DockerUserFilter }): Step {
  return {
    id: spec.id,
    description: spec.description,
    roles: spec.roles,
    async check(ctx) {
      if (!ctx.host.firewall.enabled) return { facts: {}, changes: [], skip: "firewall.enabled is false in the inventory" };
      const f = spec.filter(ctx.host);
      const [installed, files, units, live, hooked] = await Promise.all([
        installedPackages(ctx.remote, ["iptables"]),
        fileStates(ctx.remote, [f.script, unitFileOf(f)]),
        unitStates(ctx.remote, [f.unit]),
        ctx.remote.exec(`iptables -S ${f.chain}`, { sudo: true }),
        ctx.remote.exec(`iptables -C ${hookRule(f)}`, { sudo: true }),
      ]);
      const facts: DockerUserFacts = {
        iptablesInstalled: !!installed.get("iptables"),
        files,
        unit: units.get(f.unit)!,
        liveRules: live.exitCode === 0 ? live.stdout.trim().split("\n") : [],
        hooked: hooked.exitCode === 0,
      };
      return { facts: { rules: facts.liveRules, hooked: facts.hooked, unit: facts.unit }, changes: planDockerUserFilter(f, ctx.host.firewall.allowFrom, facts) };
    },
    apply: (ctx, changes) => applyChanges(ctx, changes, { files: new Map(desiredFilterFiles(spec.filter(ctx.host), ctx.host.firewall.allowFrom).map((f) => [f.path, f])) }),
  };
}
