// Step `dispatcher-firewall` (role dispatcher): the dispatcher container's published port
// reachable only from firewall.allowFrom, through a LABRIG-DISPATCHER chain in Docker's
// DOCKER-USER chain that a oneshot unit puts back after each engine start (docker-user.ts says why
// ufw cannot do it).
//
//   hosts: { nas: { roles: [dispatcher], firewall: { allowFrom: [192.168.1.0/24] } } }
import type { HostConfig } from "../inventory.js";
import { dispatcherSettings } from "./dispatcher-container-settings.js";
import { type DockerUserFilter, dockerUserFirewallStep } from "./docker-user.js";

export const firewallScript = "/usr/local/sbin/labrig-dispatcher-firewall";
export const firewallUnit = "labrig-dispatcher-firewall.service";

/** The dispatcher host's filter: the TCP port its container publishes. */
export function dispatcherFilter(host: HostConfig): DockerUserFilter {
  const { port } = dispatcherSettings(host);
  return { chain: "LABRIG-DISPATCHER", script: firewallScript, unit: firewallUnit, port, guards: `the dispatcher container's port ${port}`, summary: "the dispatcher's port" };
}

export const dispatcherFirewallStep = dockerUserFirewallStep({
  id: "dispatcher-firewall",
  description: "the dispatcher container's port only from firewall.allowFrom (DOCKER-USER chain)",
  roles: ["dispatcher"],
  filter: dispatcherFilter,
});
