// The base and firewall steps' plans as data: facts in (as the hosts print them), changes out, no host.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { parseDpkgQuery } from "../../provision/facts/packages.js";
import { parseUfwState } from "../../provision/facts/ufw.js";
import { type HostConfig, parseInventory } from "../../provision/inventory.js";
import { basePackages, planBase } from "../../provision/steps/base.js";
import { desiredUfwRules, planFirewall } from "../../provision/steps/firewall.js";

describe("planBase", () => {
  it("installs the base packages a bare host lacks, in one change", () => {
    const installed = parseDpkgQuery("curl\tii \t7.88.1-10\nca-certificates\tii \t20230311\n", basePackages);
    expect(planBase(installed).map(describeChange)).toEqual(["install gnupg, jq (not installed)"]);
  });

  it("plans nothing when all are installed, and treats a removed package (rc) as missing", () => {
    const all = parseDpkgQuery(basePackages.map((p) => `${p}\tii \t1.0`).join("\n"), basePackages);
    expect(planBase(all)).toEqual([]);
    const removed = parseDpkgQuery(basePackages.map((p) => `${p}\t${p === "jq" ? "rc " : "ii "}\t1.0`).join("\n"), basePackages);
    expect(planBase(removed).map(describeChange)).toEqual(["install jq (not installed)"]);
  });
});

describe("planFirewall", () => {
  const inv = parseInventory("hosts:\n  g: {address: h, port: 2222, roles: [gpu], firewall: {allowFrom: [10.0.0.0/8]}}\n", "i.yaml", {});
  const host = inv.hosts[0] as HostConfig;
  const desired = desiredUfwRules(host, inv.lab);
  const ufw = (status: string, policies: string, added: string) => parseUfwState(`${status}\n--labrig-section--\n${policies}\n--labrig-section--\n${added}`);
  const converged = ufw(
    "Status: active",
    'DEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"',
    "Added user rules (see 'ufw status' for running firewall):\nufw allow 2222/tcp comment 'labrig'\nufw allow from 10.0.0.0/8 to any port 8020 proto tcp comment 'labrig'\nufw allow 80\n",
  );

  it("plans nothing for a converged firewall, whatever rules the admin added", () => {
    expect(planFirewall(host.port, desired, converged)).toEqual([]);
  });

  it("on a host without ufw: installs it, adds SSH before the lab's ports, sets the defaults and enables it last", () => {
    expect(planFirewall(host.port, desired, parseUfwState("absent\n")).map(describeChange)).toEqual([
      "install ufw (not installed)",
      "ufw allow 2222/tcp (SSH, before enabling)",
      "ufw allow from 10.0.0.0/8 to any port 8020 proto tcp (from firewall.allowFrom)",
      "ufw default deny incoming (is unset)",
      "ufw default allow outgoing (is unset)",
      "ufw enable (ufw is inactive)",
    ]);
  });

  it("removes a labrig rule no longer wanted and keeps the admin's rule for the same port", () => {
    const state = ufw(
      "Status: active",
      'DEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"',
      "ufw allow 2222/tcp comment 'labrig'\nufw allow from 10.0.0.0/8 to any port 8020 proto tcp comment 'labrig'\nufw allow from 172.16.0.0/12 to any port 8020 proto tcp comment 'labrig'\nufw allow from 192.168.0.0/16 to any port 8020 proto tcp\n",
    );
    const changes = planFirewall(host.port, desired, state);
    expect(changes).toEqual([{ kind: "ufw-delete", rule: "allow from 172.16.0.0/12 to any port 8020 proto tcp", reason: "a labrig rule no longer wanted" }]);
  });

  it("sets only the default that is wrong", () => {
    const state = ufw("Status: active", 'DEFAULT_INPUT_POLICY="ACCEPT"\nDEFAULT_OUTPUT_POLICY="ACCEPT"', "ufw allow 2222/tcp comment 'labrig'\nufw allow from 10.0.0.0/8 to any port 8020 proto tcp comment 'labrig'\n");
    expect(planFirewall(host.port, desired, state)).toEqual([{ kind: "ufw-default", direction: "incoming", policy: "deny", reason: "is allow" }]);
  });
});
