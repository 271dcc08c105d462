// The DOCKER-USER filters of the dispatcher-firewall and gpu-firewall steps as data (no host):
// the rules each wants, the script and unit that put them back, and the changes planned from
// what a host has — bare, converged, after a reboot took the rules, with allowFrom widened.
import { describe, expect, it } from "vitest";
import type { FileState } from "../../provision/facts/files.js";
import { parseInventory } from "../../provision/inventory.js";
import { desiredSha256 } from "../../provision/ops.js";
import { stepAppliesTo } from "../../provision/runner.js";
import { dispatcherFilter, dispatcherFirewallStep } from "../../provision/steps/dispatcher-firewall.js";
import {
  desiredChainRules,
  desiredFilterFiles,
  type DockerUserFacts,
  type DockerUserFilter,
  hookRule,
  planDockerUserFilter,
  renderFirewallScript,
  unitFileOf,
} from "../../provision/steps/docker-user.js";
import { gpuFilter, gpuFirewallStep } from "../../provision/steps/gpu-firewall.js";

const inventory = parseInventory(
  `hosts:
  nas: {address: 10.0.0.2, roles: [dispatcher], dispatcher: {port: 8100}}
  gpu: {address: 10.0.0.3, roles: [gpu]}
  open: {address: 10.0.0.4, roles: [gpu], firewall: {enabled: false}}
`,
  "inventory.yaml",
);
const [nas, gpu, open] = inventory.hosts as [(typeof inventory.hosts)[0], (typeof inventory.hosts)[0], (typeof inventory.hosts)[0]];
const allowFrom = ["192.168.1.0/24", "10.0.0.7"];

const bare: DockerUserFacts = { iptablesInstalled: false, files: new Map(), unit: { enabled: "not-found", active: "inactive" }, liveRules: [], hooked: false };

/** What a host has once the filter is in place for allowFrom. */
function converged(f: DockerUserFilter, from: string[]): DockerUserFacts {
  const files = new Map<string, FileState>(desiredFilterFiles(f, from).map((d) => [d.path, { exists: true, mode: `0${d.mode.toString(8)}`, owner: "root", group: "root", sha256: desiredSha256(d) }]));
  return { iptablesInstalled: true, files, unit: { enabled: "enabled", active: "active" }, liveRules: desiredChainRules(f.chain, from), hooked: true };
}

describe("the GPU hosts' filter for containers' published ports", () => {
  it("runs on GPU hosts only, with its own chain, script and unit", () => {
    expect(gpuFirewallStep.id).toBe("gpu-firewall");
    expect([nas, gpu].map((h) => stepAppliesTo(gpuFirewallStep, h))).toEqual([false, true]);
    expect([nas, gpu].map((h) => stepAppliesTo(dispatcherFirewallStep, h))).toEqual([true, false]);
    expect(gpuFilter).toMatchObject({ chain: "LABRIG-GPU", script: "/usr/local/sbin/labrig-gpu-firewall", unit: "labrig-gpu-firewall.service" });
    expect(unitFileOf(gpuFilter)).toBe("/etc/systemd/system/labrig-gpu-firewall.service");
  });

  it("sends every DNAT'ed connection to a published port through its chain, any port and protocol, client to container only", () => {
    expect(hookRule(gpuFilter)).toBe("DOCKER-USER -m conntrack --ctstate DNAT --ctdir ORIGINAL -j LABRIG-GPU");
    expect(desiredChainRules("LABRIG-GPU", allowFrom)).toEqual(["-N LABRIG-GPU", "-A LABRIG-GPU -s 192.168.1.0/24 -j RETURN", "-A LABRIG-GPU -s 10.0.0.7/32 -j RETURN", "-A LABRIG-GPU -j DROP"]);
  });

  it("drops everything published when allowFrom is empty, and leaves IPv6 sources out of the IPv4 chain", () => {
    expect(desiredChainRules("LABRIG-GPU", [])).toEqual(["-N LABRIG-GPU", "-A LABRIG-GPU -j DROP"]);
    expect(desiredChainRules("LABRIG-GPU", ["fd00::/64", "10.1.0.0/16"])).toEqual(["-N LABRIG-GPU", "-A LABRIG-GPU -s 10.1.0.0/16 -j RETURN", "-A LABRIG-GPU -j DROP"]);
  });

  it("writes a script that rebuilds the chain and hooks it once", () => {
    expect(renderFirewallScript(gpuFilter, allowFrom)).toBe(`#!/bin/sh
# Written by labrig provision: who may reach the ports containers publish on this GPU host
# (firewall.allowFrom in the inventory). Run by labrig-gpu-firewall.service after docker.service.
set -e
iptables -N DOCKER-USER 2>/dev/null || true
iptables -N LABRIG-GPU 2>/dev/null || iptables -F LABRIG-GPU
iptables -A LABRIG-GPU -s 192.168.1.0/24 -j RETURN
iptables -A LABRIG-GPU -s 10.0.0.7/32 -j RETURN
iptables -A LABRIG-GPU -j DROP
iptables -C DOCKER-USER -m conntrack --ctstate DNAT --ctdir ORIGINAL -j LABRIG-GPU 2>/dev/null || iptables -I DOCKER-USER -m conntrack --ctstate DNAT --ctdir ORIGINAL -j LABRIG-GPU
`);
    const unit = String(desiredFilterFiles(gpuFilter, allowFrom)[1]!.content);
    expect(unit).toContain("Description=labrig: containers' published ports only from firewall.allowFrom (iptables DOCKER-USER)");
    // Restarted with the engine (PartOf), and started by it (WantedBy), so an engine restart puts the rules back.
    expect(unit).toMatch(/^PartOf=docker\.service$/m);
    expect(unit).toMatch(/^WantedBy=multi-user\.target docker\.service$/m);
  });

  it("plans iptables, the script, the unit, a reload, enabling and a start on a bare host", () => {
    const changes = planDockerUserFilter(gpuFilter, allowFrom, bare);
    expect(changes.map((c) => (c.kind === "write-file" ? `write ${c.path} ${c.mode}` : c.kind))).toEqual([
      "install-packages",
      "write /usr/local/sbin/labrig-gpu-firewall 0755",
      "write /etc/systemd/system/labrig-gpu-firewall.service 0644",
      "daemon-reload",
      "enable-unit",
      "restart-unit",
    ]);
  });

  it("plans nothing once in place, only a rerun of the script when the rules are gone, and the script and a rerun when allowFrom widens", () => {
    const done = converged(gpuFilter, allowFrom);
    expect(planDockerUserFilter(gpuFilter, allowFrom, done)).toEqual([]);
    expect(planDockerUserFilter(gpuFilter, allowFrom, { ...done, liveRules: [], hooked: false })).toEqual([{ kind: "restart-unit", unit: "labrig-gpu-firewall.service", reason: "the live iptables rules differ from allowFrom" }]);
    expect(planDockerUserFilter(gpuFilter, allowFrom, { ...done, hooked: false }).map((c) => c.kind)).toEqual(["restart-unit"]);
    const wider = planDockerUserFilter(gpuFilter, [...allowFrom, "172.16.0.0/12"], done);
    expect(wider.map((c) => (c.kind === "write-file" ? `write ${c.path}` : `${c.kind}: ${c.reason}`))).toEqual(["write /usr/local/sbin/labrig-gpu-firewall", "restart-unit: the live iptables rules differ from allowFrom"]);
  });

  it("is skipped where the inventory turns the firewall off, without reading the host", async () => {
    const untouchable = new Proxy({}, { get: (_t, p) => { throw new Error(`read remote.${String(p)}`); } });
    const r = await gpuFirewallStep.check({ host: open, inventory, remote: untouchable as never, assets: {}, applied: () => undefined, log: () => undefined });
    expect(r).toEqual({ facts: {}, changes: [], skip: "firewall.enabled is false in the inventory" });
  });
});

describe("the dispatcher host's filter, on the same code", () => {
  it("filters only the dispatcher's TCP port", () => {
    const f = dispatcherFilter(nas);
    expect(f).toMatchObject({ chain: "LABRIG-DISPATCHER", port: 8100, unit: "labrig-dispatcher-firewall.service", script: "/usr/local/sbin/labrig-dispatcher-firewall" });
    expect(hookRule(f)).toBe("DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8100 --ctdir ORIGINAL -j LABRIG-DISPATCHER");
    expect(String(desiredFilterFiles(f, allowFrom)[1]!.content)).toContain("Description=labrig: the dispatcher's port only from firewall.allowFrom (iptables DOCKER-USER)");
    expect(renderFirewallScript(f, allowFrom).split("\n")[1]).toBe("# Written by labrig provision: who may reach the dispatcher container's port 8100");
    expect(planDockerUserFilter(f, allowFrom, converged(f, allowFrom))).toEqual([]);
  });
});
