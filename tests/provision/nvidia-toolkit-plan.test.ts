// The nvidia-toolkit step's plan as data: facts in, changes out, no host and no GPU.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { type HostConfig, parseInventory } from "../../provision/inventory.js";
import { desiredSha256 } from "../../provision/ops.js";
import { type NvidiaToolkitFacts, nvidiaList, nvidiaSourceLine, planNvidiaToolkit } from "../../provision/steps/nvidia-toolkit.js";

const lab = parseInventory(
  `lab: {name: demo}
hosts:
  gpu-a: {address: a, roles: [gpu], nvidia: {repository: "http://mirror.lab/nvidia/deb/amd64", keyUrl: "http://mirror.lab/nvidia/gpgkey"}}
  gpu-b: {address: b, roles: [gpu], gpu: required}
`,
  "i.yaml",
  {},
);
const [host, required] = lab.hosts as [HostConfig, HostConfig];
const source = { path: nvidiaList, content: nvidiaSourceLine(host.nvidia.repository, host.nvidia.keyUrl), mode: 0o644 };
const configured: NvidiaToolkitFacts = {
  gpus: "GPU 0: NVIDIA H200 (UUID: GPU-0)",
  toolkit: "1.17.0-1",
  aptSource: { exists: true, mode: "0644", owner: "root", group: "root", sha256: desiredSha256(source) },
  keyringExists: true,
  daemonJson: { runtimes: { nvidia: { path: "nvidia-container-runtime" } }, "exec-opts": ["native.cgroupdriver=cgroupfs"] },
  dockerRuntimes: ["io.containerd.runc.v2", "nvidia", "runc"],
};
const lines = (facts: NvidiaToolkitFacts, h = host) => planNvidiaToolkit(h, facts).changes.map(describeChange);

describe("planNvidiaToolkit", () => {
  it("skips a host without a working driver, and fails one the inventory says must have it", () => {
    const none = { keyringExists: false, daemonJson: {} };
    expect(planNvidiaToolkit(host, none)).toEqual({ changes: [], skip: "no working NVIDIA driver (nvidia-smi is missing or fails); install the driver and run again to set up the toolkit" });
    expect(planNvidiaToolkit(required, none).fail).toMatch(/and the inventory says gpu: required; install the driver, reboot, run again$/);
  });

  it("plans nothing where the toolkit, the runtime and cgroupfs are in place", () => {
    expect(planNvidiaToolkit(host, configured)).toEqual({ changes: [] });
  });

  it("plans key, source, package, runtime and cgroupfs on a host with only the driver, then one Docker restart", () => {
    const driverOnly: NvidiaToolkitFacts = { gpus: configured.gpus, aptSource: { exists: false }, keyringExists: false, daemonJson: { "log-driver": "json-file" }, dockerRuntimes: ["runc"] };
    expect(lines(driverOnly)).toEqual([
      "fetch the signing key from http://mirror.lab/nvidia/gpgkey (for NVIDIA's repository)",
      "write /etc/apt/sources.list.d/labrig-nvidia-container-toolkit.list (0644 root:root) (NVIDIA apt source missing)",
      "install nvidia-container-toolkit (not installed)",
      "nvidia-ctk runtime configure --runtime=docker (Docker has no nvidia runtime in daemon.json)",
      "set native.cgroupdriver=cgroupfs in daemon.json (keeps GPUs in running containers across daemon-reload)",
      "restart docker.service (if daemon.json changed)",
    ]);
  });

  it("restarts Docker when daemon.json has the runtime but the running engine does not list it", () => {
    expect(lines({ ...configured, dockerRuntimes: ["runc"] })).toEqual(["restart docker.service (docker info does not list the nvidia runtime yet)"]);
  });

  it("adds cgroupfs alone to a daemon.json that has the runtime", () => {
    expect(lines({ ...configured, daemonJson: { runtimes: { nvidia: {} } } })).toEqual([
      "set native.cgroupdriver=cgroupfs in daemon.json (keeps GPUs in running containers across daemon-reload)",
      "restart docker.service (if daemon.json changed)",
    ]);
  });
});
