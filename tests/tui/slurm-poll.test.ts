// The dashboard's poll of Slurm's view: against a real dispatcher in-process in labrig mode (404:
// asked once, never again) and against a reader that answers views (stored, control characters made
// visible; a failed ask keeps the last view).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { SlurmView } from "../../core/api.js";
import { DispatcherClient } from "../../core/client.js";
import { openDispatcher } from "../../dispatcher/main.js";
import { SlurmPoll } from "../../tui/slurm-poll.js";
import { initialState } from "../../tui/state.js";
import { TuiStore } from "../../tui/store.js";

const polls: SlurmPoll[] = [];
afterEach(() => polls.splice(0).forEach((p) => p.stop()));

const view = (state: string): SlurmView => ({ readAt: new Date().toISOString(), nodes: [{ name: "gpu-a", partitions: ["gpu*"], state, cpus: { allocated: 0, idle: 2, other: 0, total: 2 }, memoryMiB: 1024, gres: "", reason: "\u001b[2Jbad" }], queue: [] });

describe("the dashboard's Slurm poll", () => {
  it("asks a dispatcher that schedules its own jobs once, and stops", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labrig-slurm-poll-"));
    const d = openDispatcher(dir, {});
    try {
      const url = await d.app.listen({ host: "127.0.0.1", port: 0 });
      const api = new DispatcherClient({ url, token: d.admin.token });
      let asks = 0;
      const store = new TuiStore(initialState(url));
      const poll = new SlurmPoll(store, () => (asks++, api.slurmStatus()));
      polls.push(poll);
      poll.start(10);
      await new Promise((r) => setTimeout(r, 200));
      expect(asks).toBe(1);
      expect(store.get().slurm).toBeNull();
    } finally {
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stores each view it reads, made safe to print, and keeps the last when an ask fails", async () => {
    const store = new TuiStore(initialState("http://x"));
    const answers: (() => Promise<SlurmView>)[] = [async () => view("idle"), async () => Promise.reject(new Error("connect ECONNREFUSED")), async () => view("mixed")];
    const poll = new SlurmPoll(store, () => answers.shift()!());
    polls.push(poll);
    await poll.refresh();
    expect(store.get().slurm?.nodes[0]).toMatchObject({ state: "idle", reason: "\\x1b[2Jbad" });
    await poll.refresh();
    expect(store.get().slurm?.nodes[0]?.state).toBe("idle");
    await poll.refresh();
    expect(store.get().slurm?.nodes[0]?.state).toBe("mixed");
  });
});
