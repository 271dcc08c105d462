// What the `dispatcher-firewall` and `gpu-firewall` steps share: ports Docker publishes reachable
// only from firewall.allowFrom. A published port is DNAT'ed and forwarded before ufw's INPUT rules
// ever see it, so a ufw rule neither opens nor closes it; Docker's documented place for such
// filtering is the DOCKER-USER chain. A step made here keeps a chain of labrig's own hooked into
// DOCKER-USER (allowFrom sources return, every other packet to the filtered ports drops) through a
// small script run by a oneshot unit after docker.service, so the rules come back after a reboot
// or an engine restart. On a Synology (no systemd units of its own there) the script is one DSM
// runs at boot, /usr/local/etc/rc.d/<name>.sh start, which waits for Container Manager's engine to
// hook DOCKER-USER and then applies the rules.
//
//   dockerUserFirewallStep({ id: "gpu-firewall", roles: ["gpu"], description, filter: () => ({ chain: "LABRIG-GPU", ..., guards: "every port" }) })
import type { Change } from "../change.js";
import { type FileState, fileStates } from "../facts/files.js";
import { hostSystemOf } from "../facts/host-system.js";
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

/** The shell lines that (re)build the chain and hook it into DOCKER-USER; safe to run again. */
function applyRulesLines(f: DockerUserFilter, allowFrom: string[]): string[] {
  const rules = desiredChainRules(f.chain, allowFrom)
    .slice(1)
    .map((r) => `iptables ${r}`);
  return ["iptables -N DOCKER-USER 2>/dev/null || true", `iptables -N ${f.chain} 2>/dev/null || iptables -F ${f.chain}`, ...rules, `iptables -C ${hookRule(f)} 2>/dev/null || iptables -I ${hookRule(f)}`];
}

export function renderFirewallScript(f: DockerUserFilter, allowFrom: string[]): string {
  return `#!/bin/sh
# Written by labrig provision: who may reach ${f.guards}
# (firewall.allowFrom in the inventory). Run by ${f.unit} after docker.service.
set -e
${applyRulesLines(f, allowFrom).join("\n")}
`;
}

/** On DSM: the boot script, in the folder whose *.sh DSM runs with `start` at boot. */
export const dsmBootScriptOf = (f: Pick<DockerUserFilter, "unit">) => `/usr/local/etc/rc.d/${f.unit.replace(/\.service$/, "")}.sh`;

/** How long the boot script waits for Container Manager's engine to hook DOCKER-USER into FORWARD. */
const bootWaitS = 600;

export function renderDsmBootScript(f: DockerUserFilter, allowFrom: string[]): string {
  return `#!/bin/sh
# Written by labrig provision: who may reach ${f.guards}
# (firewall.allowFrom in the inventory). DSM runs /usr/local/etc/rc.d/*.sh start at boot, before
# Container Manager's engine is up: "start" waits (in the background, up to ${bootWaitS} s) until the
# engine has hooked DOCKER-USER into FORWARD, then applies the rules; "apply" applies them now.
apply() {
  set -e
  ${applyRulesLines(f, allowFrom).join("\n  ")}
}
case "$1" in
  start)
    (
      waited=0
      until iptables -C FORWARD -j DOCKER-USER 2>/dev/null || [ "$waited" -ge ${bootWaitS} ]; do sleep 2; waited=$((waited + 2)); done
      apply
    ) </dev/null >/dev/null 2>&1 &
    ;;
  apply) apply ;;
  stop) ;;
  *) echo "usage: $0 start|apply|stop" >&2; exit 2 ;;
esac
`;
}

/** What the DSM flavour reads: as DockerUserFacts, with the boot script in place of the unit. */
export interface DsmDockerUserFacts {
  iptablesInstalled: boolean;
  bootScript: FileState | undefined;
  liveRules: string[];
  hooked: boolean;
}

/** The change that applies the rules now on DSM (the boot script's `apply`). */
export const dsmApplyNow = (f: Pick<DockerUserFilter, "unit">) => `apply the rules now: sh ${dsmBootScriptOf(f)} apply`;

/** What to set by hand when the host cannot keep the rules: DSM's own firewall. */
export function dsmFirewallAdvice(f: DockerUserFilter, allowFrom: string[]): string {
  const port = f.port === undefined ? "the ports Docker publishes" : `TCP port ${f.port}`;
  return `in DSM, Control Panel > Security > Firewall: edit the profile's rules to allow ${port} from ${allowFrom.join(", ") || "(firewall.allowFrom is empty)"} and deny it from everyone else, with "Deny access" for traffic no rule matches`;
}

/** The changes the DSM flavour needs (pure), or why it cannot keep the rules and what to set instead. */
export function planDsmDockerUserFilter(f: DockerUserFilter, allowFrom: string[], facts: DsmDockerUserFacts): { changes: Change[]; fail?: string } {
  if (!facts.iptablesInstalled) {
    return { changes: [], fail: `the host has no iptables, so labrig cannot filter ${f.guards} through DOCKER-USER; set it ${dsmFirewallAdvice(f, allowFrom)}` };
  }
  const script = renderDsmBootScript(f, allowFrom);
  const changes: Change[] = [];
  const file = planFile(facts.bootScript, { path: dsmBootScriptOf(f), content: script, mode: 0o755 }, "boot script DSM runs");
  if (file) changes.push(file);
  const rulesOk = JSON.stringify(facts.liveRules) === JSON.stringify(desiredChainRules(f.chain, allowFrom)) && facts.hooked;
  if (!rulesOk || file?.kind === "write-file") {
    changes.push({ kind: "run", what: dsmApplyNow(f), reason: rulesOk ? "the script changed" : "the live iptables rules differ from allowFrom" });
  }
  return { changes };
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
      if ((await hostSystemOf(ctx)).kind === "dsm") return checkOnDsm(ctx, f);
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
    async apply(ctx, changes) {
      const f = spec.filter(ctx.host);
      const allowFrom = ctx.host.firewall.allowFrom;
      if ((await hostSystemOf(ctx)).kind === "dsm") {
        const script = { path: dsmBootScriptOf(f), content: renderDsmBootScript(f, allowFrom), mode: 0o755 };
        const runs = { [dsmApplyNow(f)]: async () => void (await ctx.remote.run(`sh ${dsmBootScriptOf(f)} apply`, { sudo: true })) };
        return applyChanges(ctx, changes, { files: new Map([[script.path, script]]), runs });
      }
      return applyChanges(ctx, changes, { files: new Map(desiredFilterFiles(f, allowFrom).map((d) => [d.path, d])) });
    },
  };
}

async function checkOnDsm(ctx: StepContext, f: DockerUserFilter) {
  const [iptables, files, live, hooked] = await Promise.all([
    ctx.remote.exec("command -v iptables", { sudo: true }),
    fileStates(ctx.remote, [dsmBootScriptOf(f)]),
    ctx.remote.exec(`iptables -S ${f.chain}`, { sudo: true }),
    ctx.remote.exec(`iptables -C ${hookRule(f)}`, { sudo: true }),
  ]);
  const facts: DsmDockerUserFacts = {
    iptablesInstalled: iptables.exitCode === 0,
    bootScript: files.get(dsmBootScriptOf(f)),
    liveRules: live.exitCode === 0 ? live.stdout.trim().split("\n") : [],
    hooked: hooked.exitCode === 0,
  };
  const plan = planDsmDockerUserFilter(f, ctx.host.firewall.allowFrom, facts);
  return { facts: { rules: facts.liveRules, hooked: facts.hooked, bootScript: dsmBootScriptOf(f) }, changes: plan.changes, ...(plan.fail ? { fail: plan.fail } : {}) };
}
