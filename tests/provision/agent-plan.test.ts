// The agent step's plan as data: facts in, changes out, no host. And the runtime refusals that
// come before anything is sent.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import type { FileState } from "../../provision/facts/files.js";
import { type DesiredFile, desiredSha256 } from "../../provision/ops.js";
import { type AgentFacts, type AgentWanted, agentBundleRemote, agentEnvFile, agentNodeRemote, agentUnitFile, planAgent, runtimeRefusal } from "../../provision/steps/agent.js";

const files: DesiredFile[] = [
  { path: agentNodeRemote, content: { localPath: "/cache/node", sha256: "ab".repeat(32) }, mode: 0o755 },
  { path: agentBundleRemote, content: "bundle", mode: 0o644 },
  { path: agentEnvFile, content: "LABRIG_URL=http://nas:8000\n", mode: 0o600 },
  { path: agentUnitFile, content: "[Unit]\n", mode: 0o644 },
];
const want: AgentWanted = { files, workdir: "/var/lib/labrig/agent", runtime: { version: "v24.21.0", arch: "x64", sizeBytes: 126_595_440 } };
const inPlace = (f: DesiredFile): FileState => ({ exists: true, mode: `0${f.mode.toString(8)}`, owner: "root", group: "root", sha256: desiredSha256(f) });
const converged = (): AgentFacts => ({
  files: new Map(files.map((f) => [f.path, inPlace(f)])),
  unit: { enabled: "enabled", active: "active" },
  userExists: true,
  workdirExists: true,
});

describe("planAgent", () => {
  it("plans nothing on a host that has it all", () => {
    expect(planAgent(converged(), want)).toEqual([]);
  });

  it("plans the whole agent on a bare host, the runtime first of the files", () => {
    const bare: AgentFacts = { files: new Map(), unit: { enabled: "not-found", active: "inactive" }, userExists: false, workdirExists: false };
    expect(planAgent(bare, want).map(describeChange)).toEqual([
      "create the system user labrig-agent (the agent runs as it)",
      "write /opt/labrig/node/bin/node (0755 root:root) (Node runtime missing: Node v24.21.0 for x64, 127 MB, run once there before it replaces the old one)",
      "write /opt/labrig/agent/labrig-agent.mjs (0644 root:root) (agent bundle missing)",
      "write /etc/labrig/agent.env (0600 root:root) (env file missing)",
      "write /etc/systemd/system/labrig-agent.service (0644 root:root) (unit missing)",
      "create /var/lib/labrig/agent (owned by labrig-agent)",
      "systemctl daemon-reload (the unit changed)",
      "enable labrig-agent.service (is not-found)",
      "start labrig-agent.service (is inactive)",
    ]);
  });

  it("sends a new runtime and restarts the running agent, nothing else", () => {
    const facts = converged();
    facts.files.set(agentNodeRemote, { ...facts.files.get(agentNodeRemote)!, sha256: "00".repeat(32) });
    expect(planAgent(facts, want).map(describeChange)).toEqual([
      "write /opt/labrig/node/bin/node (0755 root:root) (Node runtime differs: Node v24.21.0 for x64, 127 MB, run once there before it replaces the old one)",
      "restart labrig-agent.service (its runtime, bundle, env or unit changed)",
    ]);
  });

  it("says why the env file gets a new join token", () => {
    const facts = converged();
    facts.files.delete(agentEnvFile);
    const changes = planAgent(facts, { ...want, joinTokenWhy: "a single-use join token made for it: not registered yet" });
    expect(changes.map(describeChange)[0]).toBe("write /etc/labrig/agent.env (0600 root:root) (env file missing; join token: a single-use join token made for it: not registered yet)");
  });

  it("fixes a runtime's mode without sending it again", () => {
    const facts = converged();
    facts.files.set(agentNodeRemote, { ...facts.files.get(agentNodeRemote)!, mode: "0700" });
    expect(planAgent(facts, want).map(describeChange)).toEqual(["set /opt/labrig/node/bin/node to 0755 root:root (is 0700 root:root)"]);
  });

  it("starts a stopped agent without restarting anything", () => {
    expect(planAgent({ ...converged(), unit: { enabled: "enabled", active: "failed" } }, want).map(describeChange)).toEqual(["start labrig-agent.service (is failed)"]);
  });
});

describe("runtimeRefusal", () => {
  it("passes x86_64 and aarch64 with glibc 2.28 or later", () => {
    expect(runtimeRefusal({ machine: "x86_64", glibc: "glibc 2.35" })).toBeUndefined();
    expect(runtimeRefusal({ machine: "aarch64", glibc: "glibc 2.28" })).toBeUndefined();
  });

  it("refuses another architecture, an old glibc and a musl system, with the reason", () => {
    expect(runtimeRefusal({ machine: "riscv64", glibc: "glibc 2.36" })).toBe("the agent's Node runtime is built for x86_64 and aarch64 hosts; this host is riscv64");
    expect(runtimeRefusal({ machine: "x86_64", glibc: "glibc 2.27" })).toMatch(/needs glibc ≥ 2\.28, and this host has 2\.27/);
    expect(runtimeRefusal({ machine: "x86_64" })).toMatch(/this host has no glibc/);
  });
});
