// The stacks decide by the host's system as `labrig provision` does: the provider reads it first
// (provision/facts/host-system.ts). A bare Debian NAS (no Docker yet) previews its dispatcher
// container; on a Synology the steps DSM owns (base, docker, firewall) are skipped with the reason
// and deleting them touches nothing; on a system labrig does not provision the check fails before
// anything is planned. The host is a real systemd + sshd test host, bare, then made to look like
// DSM (/usr/syno, /volume1, /etc.defaults/VERSION), then like Rocky Linux; the provider runs
// serialised, in its own node process, as Pulumi runs it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventory } from "../../provision/inventory.js";
import { type StepInputs, stepInputs } from "../../stacks/graph.js";
import { startTestBed, type TestBed, type TestHost } from "../infra/index.js";
import { dsmVersionFile } from "../infra/dsm-host.js";
import { type ProviderMethod, type SerialisedProvider, serialisedProvider } from "./serialised-provider.js";

let bed: TestBed;
let dir: string;
let host: TestHost;
let provider: SerialisedProvider;

const call = <T>(method: ProviderMethod, ...args: unknown[]): Promise<T> => provider.call<T>(method, args, { env: { LABRIG_HOME: join(dir, "home") } });
type Checked = { inputs: StepInputs & { plan?: string[]; skipped?: string }; failures: { property: string; reason: string }[] };

function inputsFor(step: string): StepInputs {
  const file = join(dir, "inventory.yaml");
  writeFileSync(
    file,
    `lab: {name: sys}
hosts:
  nas: {address: ${host.ip}, identityFile: ${bed.key.privateKeyFile}, roles: [dispatcher], firewall: {allowFrom: [${bed.net.subnet}]}, dispatcher: {image: registry.lab.invalid/labrig/dispatcher:1}}
`,
  );
  const inventory = loadInventory(file);
  return stepInputs(inventory, inventory.hosts[0]!, step, { knownHostsFile: join(dir, "known_hosts") });
}

beforeAll(async () => {
  bed = await startTestBed("stack-system", [{ name: "nas" }]);
  ({ dir } = bed);
  host = bed.hosts[0]!;
  provider = await serialisedProvider(dir);
}, 600_000);

afterAll(() => bed?.stop());

describe("the stacks and the host's system", () => {
  it("preview a bare Debian NAS: the dispatcher container is planned for the engine the docker step installs", async () => {
    expect((await host.exec("command -v docker")).exitCode).not.toBe(0);
    const checked = await call<Checked>("check", {}, inputsFor("dispatcher-container"));
    expect(checked.failures).toEqual([]);
    expect(checked.inputs.plan).toEqual([
      expect.stringMatching(/^create folders under \/srv\/labrig/),
      expect.stringMatching(/^pull image registry\.lab\.invalid\/labrig\/dispatcher:1/),
      expect.stringMatching(/^create container labrig-dispatcher/),
      expect.stringMatching(/^save the dispatcher's tokens for lab sys/),
    ]);
  }, 120_000);

  it("skip the steps DSM owns on a Synology, saying why, and deleting them touches nothing", async () => {
    await host.sh(`mkdir -p /volume1 /usr/syno/bin /etc.defaults && cat > /etc.defaults/VERSION <<'V'\n${dsmVersionFile}V`);
    const before = await host.sh("dpkg -l | wc -l; ls /etc/ufw 2>/dev/null | wc -l");
    for (const step of ["base", "docker", "firewall"]) {
      const checked = await call<Checked>("check", {}, inputsFor(step));
      expect(checked.failures, step).toEqual([]);
      expect(checked.inputs.plan, step).toEqual([]);
      expect(checked.inputs.skipped, step).toMatch(/^on DSM: /);
      const created = await call<{ outs: { applied: string[]; skipped?: string } }>("create", checked.inputs);
      expect(created.outs.applied, step).toEqual([]);
      expect(created.outs.skipped, step).toMatch(/^on DSM: /);
      await call("delete", `nas/${step}`, created.outs);
    }
    expect(await host.sh("dpkg -l | wc -l; ls /etc/ufw 2>/dev/null | wc -l")).toBe(before);
  }, 180_000);

  it("fail the check on a system labrig does not provision, naming it and what is supported, before any plan", async () => {
    await host.sh("rm -rf /volume1 /usr/syno /etc.defaults && cp --remove-destination \"$(readlink -f /etc/os-release)\" /etc/os-release.debian && printf 'ID=rocky\\nVERSION_ID=\"9.3\"\\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\\n' > /etc/os-release.rocky && ln -sf /etc/os-release.rocky /etc/os-release");
    try {
      // Every step, not only base: docker would otherwise plan Debian's docker.io on Rocky.
      for (const step of ["base", "docker", "firewall"]) {
        const checked = await call<Checked>("check", {}, inputsFor(step));
        expect(checked.failures, step).toHaveLength(1);
        expect(checked.failures[0]!.reason).toMatch(new RegExp(`^nas/${step}: .*Rocky Linux 9\\.3.*labrig provisions Debian`));
        expect(checked.inputs.plan, step).toBeUndefined();
      }
    } finally {
      await host.sh("ln -sf /etc/os-release.debian /etc/os-release");
    }
  }, 120_000);
});
