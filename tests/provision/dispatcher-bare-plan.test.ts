// A dry run for a NAS that has nothing yet: no Docker engine, so the dispatcher-container step has
// no engine to ask. It plans what an empty engine needs (folders, image, container, tokens) and
// says the engine is not installed yet, instead of failing to reach it; nothing on the host
// changes. The same check runs in a Pulumi preview of a bare lab. The image names a registry
// (pulled on the host), so nothing of this machine's Docker is needed, and a dry run pulls nothing.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBed, type TestBed, type TestHost } from "../infra/index.js";
import { provisionCli, statuses, stepOf } from "./helpers.js";

let bed: TestBed;
let dir: string;
let nas: TestHost;
let args: string[];

beforeAll(async () => {
  bed = await startTestBed("bare-nas", [{ name: "nas" }]);
  const { key, net } = bed;
  dir = bed.dir;
  nas = bed.hosts[0]!;
  const inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    `lab: {name: bare}
hosts:
  nas:
    address: ${nas.ip}
    identityFile: ${key.privateKeyFile}
    roles: [dispatcher]
    firewall: {allowFrom: [${net.subnet}]}
    dispatcher: {image: registry.lab.invalid/labrig/dispatcher:1}
`,
  );
  args = ["--dry-run", "--host", "nas", "--inventory", inventory, "--known-hosts", join(dir, "known_hosts")];
}, 600_000);

afterAll(() => bed?.stop());

describe("a dry run on a bare NAS", () => {
  it("plans the dispatcher container for an engine the docker step has yet to install, and changes nothing", async () => {
    expect((await nas.exec("command -v docker")).exitCode, "the test host has no Docker").not.toBe(0);
    const before = await nas.sh("dpkg-query -W -f='${Package}\\n' | sort | sha256sum; ls /srv 2>/dev/null | wc -l");
    const run = await provisionCli(args, { LABRIG_HOME: join(dir, "home") });
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(statuses(run, "nas")).toMatchObject({ docker: "changed", "dispatcher-container": "changed" });
    const step = stepOf(run, "nas", "dispatcher-container");
    expect(step.changes.map((c) => c.line)).toEqual([
      expect.stringMatching(/^create folders under \/srv\/labrig/),
      expect.stringMatching(/^pull image registry\.lab\.invalid\/labrig\/dispatcher:1/),
      expect.stringMatching(/^create container labrig-dispatcher/),
      expect.stringMatching(/^save the dispatcher's tokens for lab bare/),
    ]);
    expect(await nas.sh("dpkg-query -W -f='${Package}\\n' | sort | sha256sum; ls /srv 2>/dev/null | wc -l")).toBe(before);
  }, 300_000);
});
