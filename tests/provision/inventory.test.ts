import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InputError } from "../../core/errors.js";
import { dispatcherUrl, loadInventory, parseInventory, readJoinToken, selectHosts } from "../../provision/inventory.js";
import { savedDispatcherDir } from "../../provision/saved-dispatcher.js";

const dir = mkdtempSync(join(tmpdir(), "labrig-inv-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good = `lab:
  dispatcher: {url: http://10.0.0.1:8000, joinTokenFile: ~/jt}
defaults:
  user: deploy
  identityFile: ~/.ssh/id_ed25519
  firewall: {allowFrom: [10.0.0.0/24]}
  agent: {port: 8020}
hosts:
  a: {address: 10.0.0.2, roles: [gpu]}
  b: {address: "\${B_ADDR}", roles: [gpu], user: admin, agent: {port: 9000}}
`;

function errorOf(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error("expected an InputError");
}

describe("inventory", () => {
  it("merges defaults under host values and expands ~ and ${ENV}", () => {
    const inv = parseInventory(good, "inv.yaml", { B_ADDR: "10.0.0.3" });
    const [a, b] = inv.hosts;
    expect(a).toMatchObject({ name: "a", user: "deploy", port: 22, identityFile: join(homedir(), ".ssh/id_ed25519"), agent: { port: 8020 } });
    expect(b).toMatchObject({ name: "b", address: "10.0.0.3", user: "admin", agent: { port: 9000, workdir: "/var/lib/labrig/agent" } });
    expect(b!.firewall.allowFrom).toEqual(["10.0.0.0/24"]);
    expect(inv.lab.dispatcher!.joinTokenFile).toBe(join(homedir(), "jt"));
  });

  it("names the variable and where it is used when ${ENV} is not set", () => {
    const err = errorOf(() => parseInventory(good, "inv.yaml", {}));
    expect(err.message).toBe("inv.yaml:10:16: ${B_ADDR} is not set in the environment");
  });

  it("reports a YAML syntax error with file, line and column", () => {
    const file = join(dir, "broken.yaml");
    writeFileSync(file, "hosts:\n  a: {address: 10.0.0.2\n  b: [\n");
    const err = errorOf(() => loadInventory(file));
    expect(err.where).toMatch(new RegExp(`^${file}:\\d+:\\d+$`));
    expect(err.message).toContain("YAML syntax error");
  });

  it("reports a schema error with the host and the field, at its line", () => {
    const text = "hosts:\n  a: {address: 10.0.0.2}\n  gpu-x:\n    address: 10.0.0.9\n    port: twenty-two\n";
    const err = errorOf(() => parseInventory(text, "inv.yaml", {}));
    expect(err.where).toBe("inv.yaml:5:11");
    expect(err.message).toContain("host 'gpu-x', field 'port'");
  });

  it("points at defaults when the bad value is inherited from there", () => {
    const text = "defaults:\n  firewall: {allowFrom: [not-a-cidr!]}\nhosts:\n  a: {address: 10.0.0.2}\n";
    const err = errorOf(() => parseInventory(text, "inv.yaml", {}));
    expect(err.message).toMatch(/^inv\.yaml:2:\d+: host 'a', field 'firewall\.allowFrom\.0' \(from defaults\)/);
  });

  it("names unknown fields, so typos do not pass silently", () => {
    const err = errorOf(() => parseInventory("hosts:\n  a: {address: 10.0.0.2, rolse: [gpu]}\n", "inv.yaml", {}));
    expect(err.message).toContain("host 'a', field '(top level)'");
    expect(err.message).toContain("'rolse'");
  });

  it("requires an address for each host", () => {
    const err = errorOf(() => parseInventory("hosts:\n  a: {roles: [gpu]}\n", "inv.yaml", {}));
    expect(err.message).toContain("host 'a', field 'address'");
  });

  it("selects one host, several, or all, and lists the known hosts for an unknown name", () => {
    const inv = parseInventory(good, "inv.yaml", { B_ADDR: "10.0.0.3" });
    expect(selectHosts(inv, "b").map((h) => h.name)).toEqual(["b"]);
    expect(selectHosts(inv, "a, b").map((h) => h.name)).toEqual(["a", "b"]);
    expect(selectHosts(inv, "all").map((h) => h.name)).toEqual(["a", "b"]);
    expect(errorOf(() => selectHosts(inv, "a,gpu-z")).message).toBe("--host: unknown host 'gpu-z' in inv.yaml; known hosts: a, b");
  });

  it("joins agents to the dispatcher the dispatcher host's provisioning saved, with nothing copied by hand", () => {
    const lab = `lab: {name: l1}\nhosts:\n  nas: {address: 10.0.0.9, roles: [dispatcher]}\n  g: {address: 10.0.0.2, roles: [gpu]}\n`;
    const home = join(dir, "home-saved");
    const env = { LABRIG_HOME: home };
    const inv = parseInventory(lab, "inv.yaml", env);
    expect(errorOf(() => readJoinToken(inv, env)).message).toBe(
      `inv.yaml: lab.dispatcher: no join token: provision the dispatcher host first (labrig provision --host nas; --host all does it first), or set lab.dispatcher.joinTokenFile or LABRIG_JOIN_TOKEN (looked in ${join(home, "labs", "l1")} too)`,
    );
    expect(dispatcherUrl(inv, env)).toBeUndefined();
    const saved = savedDispatcherDir("l1", env);
    mkdirSync(saved, { recursive: true });
    writeFileSync(join(saved, "join-token"), "jt-from-nas\n");
    writeFileSync(join(saved, "dispatcher.json"), JSON.stringify({ host: "nas", url: "http://10.0.0.9:8000", adminTokenFile: join(saved, "admin-token"), joinTokenFile: join(saved, "join-token") }));
    expect(readJoinToken(inv, env)).toBe("jt-from-nas");
    expect(dispatcherUrl(inv, env)).toBe("http://10.0.0.9:8000");
    // What the inventory or the environment says still wins.
    expect(readJoinToken(inv, { ...env, LABRIG_JOIN_TOKEN: "from-env" })).toBe("from-env");
    expect(dispatcherUrl(parseInventory(`lab: {name: l1, dispatcher: {url: "http://nas.lab:8000"}}\nhosts: {g: {address: x}}\n`, "i.yaml", env), env)).toBe("http://nas.lab:8000");
  });

  it("loads the worked example at the repository root", () => {
    const inv = loadInventory(join(import.meta.dirname, "../../inventory.yaml"), {});
    expect(inv.hosts.map((h) => h.name)).toEqual(["nas", "gpu-a100", "gpu-3090"]);
    expect(inv.hosts.find((h) => h.name === "gpu-a100")).toMatchObject({ roles: ["gpu"], gpu: "required", labels: { gpu: "a100" } });
  });
});
