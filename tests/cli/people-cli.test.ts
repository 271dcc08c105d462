// People, roles and join tokens as a user meets them: real `labrig` processes against a real
// dispatcher process.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessDispatcher, startInProcessDispatcher } from "../helpers/in-process-dispatcher.js";
import { cliEnv, runCli } from "./cli-process.js";

let d: InProcessDispatcher;
let adminEnv: Record<string, string>;
let home: string;

beforeAll(async () => {
  d = await startInProcessDispatcher();
  home = mkdtempSync(join(tmpdir(), "labrig-people-home-"));
  adminEnv = cliEnv({ LABRIG_URL: d.url, LABRIG_TOKEN: d.adminToken, LABRIG_HOME: join(home, "admin") });
});

afterAll(async () => {
  await d?.stop();
  d?.cleanup();
  rmSync(home, { recursive: true, force: true });
});

const tokenIn = (stdout: string) => /\b(lr[uj]_[A-Za-z0-9_-]+)/.exec(stdout)![1]!;

// Each step starts a CLI process; on a loaded machine that takes seconds.
describe("labrig users, login and roles", { timeout: 180_000 }, () => {
  it("adds a member whose token, kept by labrig login in a 0600 file, submits and sees only their jobs with --mine", async () => {
    const added = await runCli(["users", "add", "grace"], adminEnv);
    expect(added.exitCode, added.stderr).toBe(0);
    const token = tokenIn(added.stdout);

    // LABRIG_HOME existed with a loose mode: the credentials are still private.
    const graceHome = join(home, "grace");
    mkdirSync(graceHome, { mode: 0o755 });
    chmodSync(graceHome, 0o755);
    const graceEnv = cliEnv({ LABRIG_HOME: graceHome });
    const login = await runCli(["login", "--url", d.url], graceEnv, { input: `${token}\n` });
    expect(login.exitCode, login.stderr).toBe(0);
    expect(login.stdout).toContain("as grace (member)");
    expect(login.stdout).not.toContain(token);
    const creds = join(graceHome, "credentials.json");
    expect((statSync(creds).mode & 0o777).toString(8)).toBe("600");
    expect((statSync(graceHome).mode & 0o777).toString(8)).toBe("700");
    expect(JSON.parse(readFileSync(creds, "utf8"))).toEqual({ url: d.url, token });

    const sub = await runCli(["submit", "--json", "--host", "nowhere", "--", "true"], graceEnv);
    expect(sub.exitCode, sub.stderr).toBe(0);
    const job = JSON.parse(sub.stdout);
    expect(job.owner).toBe("grace");
    await runCli(["submit", "--host", "nowhere", "--", "true"], adminEnv);
    const mine = await runCli(["jobs", "--mine", "--json"], graceEnv);
    expect(JSON.parse(mine.stdout).map((j: { id: string }) => j.id)).toEqual([job.id]);
    const table = await runCli(["jobs"], graceEnv);
    expect(table.stdout.split("\n")[0]).toMatch(/OWNER/);

    // A person's cancel and retry say who did it, and through what.
    const cancel = await runCli(["cancel", job.id], graceEnv);
    expect(cancel.exitCode, cancel.stderr).toBe(0);
    const shown = await runCli(["job", job.id], graceEnv);
    expect(shown.stdout).toMatch(/^state\s+cancelled \(cancelled by grace \(the CLI\)\)$/m);
    expect((await runCli(["retry", job.id], graceEnv)).exitCode).toBe(0);
    expect((await runCli(["job", job.id], graceEnv)).stdout).toMatch(/retried by grace \(the CLI\)/);

    const drain = await runCli(["drain", "somewhere"], graceEnv);
    expect(drain.exitCode).toBe(1);
    expect(drain.stderr).toContain("needs an admin");

    const list = await runCli(["users", "list"], adminEnv);
    expect(list.stdout).toMatch(/grace\s+member/);
    expect(list.stdout).not.toContain(token);
    expect((await runCli(["users", "revoke", "grace"], adminEnv)).exitCode).toBe(0);
    const after = await runCli(["jobs"], graceEnv);
    expect(after.exitCode).toBe(1);
    expect(after.stderr).toContain("HTTP 401");
  });

  it("refuses a login token given as a flag, and an empty one", async () => {
    const flag = await runCli(["login", "--url", d.url, "--token", "x"], cliEnv({ LABRIG_HOME: join(home, "flag") }));
    expect(flag.exitCode).not.toBe(0);
    const empty = await runCli(["login", "--url", d.url], cliEnv({ LABRIG_HOME: join(home, "empty") }), { input: "" });
    expect(empty.exitCode).toBe(1);
    expect(empty.stderr).toContain("no token given");
  });

  it("says how many jobs there are when the page holds fewer", async () => {
    for (let i = 0; i < 3; i++) await runCli(["submit", "--project", "counted", "--host", "nowhere", "--", "true"], adminEnv);
    const r = await runCli(["jobs", "--project", "counted", "--limit", "2"], adminEnv);
    expect(r.stdout.trim().split("\n")).toHaveLength(3);
    expect(r.stderr).toContain("showing 2 of 3");
  });

  it("makes a single-use join token, lists it without the token, and resets a host", async () => {
    const made = await runCli(["join-tokens", "create", "--ttl", "1h", "--uses", "1", "--note", "new-box"], adminEnv);
    expect(made.exitCode, made.stderr).toBe(0);
    const jt = tokenIn(made.stdout);
    const reg = await fetch(`${d.url}/api/agents/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${jt}`, "content-type": "application/json" },
      body: JSON.stringify({ hostId: "new-box", gpus: [] }),
    });
    expect(reg.status).toBe(200);
    const list = await runCli(["join-tokens", "list"], adminEnv);
    expect(list.stdout).toMatch(/no\s+\S+\s+0\s+1\s+new-box/);
    expect(list.stdout).not.toContain(jt);
    const reset = await runCli(["hosts", "reset", "new-box"], adminEnv);
    expect(reset.exitCode, reset.stderr).toBe(0);
    expect(reset.stdout).toContain("registers again with a join token");
  });
});
