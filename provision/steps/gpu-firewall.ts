// Step `gpu-firewall` (role gpu): every port a container publishes on a GPU host (a job's, or a
// notebook someone started with `docker run -p`) reachable only from firewall.allowFrom. ufw does
// not see those ports (docker-user.ts says why), so a LABRIG-GPU chain in Docker's DOCKER-USER
// chain drops what comes from elsewhere, put back by a oneshot unit after each engine start. The
// agent's own port is a host process, which the `firewall` step's ufw rules cover.
//
//   hosts: { gpu-a100: { roles: [gpu], firewall: { allowFrom: [192.168.1.0/24] } } }
import { type DockerUserFilter, dockerUserFirewallStep } from "./docker-user.js";

export const gpuFilter: DockerUserFilter = {
  chain: "LABRIG-GPU",
  script: "/usr/local/sbin/labrig-gpu-firewall",
  unit: "labrig-gpu-firewall.service",
  guards: "the ports containers publish on this GPU host",
  summary: "containers' published ports",
};

export const gpuFirewallStep = dockerUserFirewallStep({
  id: "gpu-firewall",
  description: "containers' published ports only from firewall.allowFrom (DOCKER-USER chain)",
  roles: ["gpu"],
  filter: () => gpuFilter,
});
