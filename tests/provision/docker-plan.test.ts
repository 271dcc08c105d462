// The docker step's plan as data: facts in, changes out, no host.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { type HostConfig, parseInventory } from "../../provision/inventory.js";
import { desiredSha256 } from "../../provision/ops.js";
import { type DockerFacts, planDocker } from "../../provision/steps/docker.js";

const lab = parseInventory(
  `lab: {name: demo}
hosts:
  gpu-a: {address: a, roles: [gpu]}
  gpu-b: {address: b, roles: [gpu], docker: {source: docker, mirror: "http://mirror.lab/docker/debian"}}
`,
  "i.yaml",
  {},
);
const [distro, fromDocker] = lab.hosts as [HostConfig, HostConfig];
const rotated = { "log-driver": "json-file", "log-opts": { "max-size": "50m", "max-file": "5" } };
const running: DockerFacts = { installed: new Map([["docker.io", "24.0.9"]]), daemonJson: rotated, unit: { enabled: "enabled", active: "active" }, groups: ["deploy", "docker"] };
const lines = (host: HostConfig, facts: DockerFacts) => planDocker(host, facts).map(describeChange);

describe("planDocker", () => {
  it("plans nothing for a running engine with log rotation and the user in the group", () => {
    expect(planDocker(distro, running)).toEqual([]);
  });

  it("installs Debian's docker.io on a bare host, daemon.json first so the engine starts with it", () => {
    const bare: DockerFacts = { installed: new Map([["docker.io", undefined]]), unit: { enabled: "not-found", active: "inactive" }, groups: ["deploy"] };
    expect(lines(distro, bare)).toEqual([
      "write /etc/docker/daemon.json (0644 root:root) (adds log-driver, log-opts)",
      "install docker.io (not installed)",
      "enable docker.service (after install)",
      "start docker.service (after install)",
      "add deploy to group docker (to use docker without sudo)",
    ]);
  });

  it("adds the missing setting to the admin's daemon.json and restarts a running engine for it", () => {
    const facts: DockerFacts = { ...running, daemonJson: { debug: true, "log-driver": "json-file", "log-opts": { "max-size": "50m" } } };
    expect(lines(distro, facts)).toEqual(["write /etc/docker/daemon.json (0644 root:root) (adds log-opts.max-file)", "restart docker.service (daemon.json changed)"]);
  });

  it("starts a stopped engine without rewriting anything", () => {
    expect(lines(distro, { ...running, unit: { enabled: "enabled", active: "inactive" } })).toEqual(["start docker.service (is inactive)"]);
  });

  it("takes docker-ce from the mirror named, with its apt source for the host's release and the signing key", () => {
    const bare: DockerFacts = {
      installed: new Map([["docker-ce", undefined], ["docker-ce-cli", undefined], ["containerd.io", undefined]]),
      unit: { enabled: "not-found", active: "inactive" },
      groups: ["deploy", "docker"],
      aptSource: { exists: false },
      codename: "bookworm",
    };
    const changes = planDocker(fromDocker, bare);
    expect(changes.map(describeChange).slice(0, 4)).toEqual([
      "write /etc/apt/sources.list.d/labrig-docker.list (0644 root:root) (Docker apt source missing)",
      "fetch Docker's signing key from http://mirror.lab/docker/debian/gpg (for its repository)",
      "write /etc/docker/daemon.json (0644 root:root) (adds log-driver, log-opts)",
      "install docker-ce, docker-ce-cli, containerd.io (not installed)",
    ]);
    expect(changes.find((c) => c.kind === "install-packages")).toMatchObject({ refresh: true });
    // The source line it plans is for the host's release.
    const source = { path: "", mode: 0o644, content: "deb [signed-by=/etc/apt/keyrings/labrig-docker.asc] http://mirror.lab/docker/debian bookworm stable\n" };
    expect(changes[0]).toMatchObject({ kind: "write-file", sha256: desiredSha256(source) });
  });
});
