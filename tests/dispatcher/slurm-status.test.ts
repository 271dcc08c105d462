// The parsers of Slurm's own view (sinfo per node, squeue), as data in and records out. The same
// commands and parsers run against a real slurmctld in tests/provision/slurm.test.ts.
import { describe, expect, it } from "vitest";
import { gpusOf, parseSinfoNodes, parseSqueue, SINFO_NODES_COMMAND, SQUEUE_COMMAND } from "../../dispatcher/slurm-status.js";
import { SlurmViewReader } from "../../dispatcher/slurm-view.js";

describe("sinfo, one line per node and partition", () => {
  it("reads each node once, with every partition it is in, its CPUs, memory, GPUs and reason", () => {
    const text = [
      "gpu-a|gpu*|mixed|1/1/0/2|3936|gpu:fake:2|none",
      "gpu-a|long|mixed|1/1/0/2|3936|gpu:fake:2|none",
      "gpu-b|gpu*|drained|0/0/2/2|3936|gpu:fake:1|disk full | says admin",
      "cpu-1|gpu*|idle|0/4/0/4|15000|(null)|none",
      "",
    ].join("\n");
    expect(parseSinfoNodes(text)).toEqual([
      { name: "gpu-a", partitions: ["gpu*", "long"], state: "mixed", cpus: { allocated: 1, idle: 1, other: 0, total: 2 }, memoryMiB: 3936, gres: "gpu:fake:2", reason: "" },
      { name: "gpu-b", partitions: ["gpu*"], state: "drained", cpus: { allocated: 0, idle: 0, other: 2, total: 2 }, memoryMiB: 3936, gres: "gpu:fake:1", reason: "disk full | says admin" },
      { name: "cpu-1", partitions: ["gpu*"], state: "idle", cpus: { allocated: 0, idle: 4, other: 0, total: 4 }, memoryMiB: 15000, gres: "", reason: "" },
    ]);
    expect(parseSinfoNodes("")).toEqual([]);
  });

  it("names the line and what is wrong with output it does not expect", () => {
    expect(() => parseSinfoNodes("gpu-a idle gpu:fake:2")).toThrow(/unexpected output from sinfo, line 1: 1 fields where 7 were expected: "gpu-a idle gpu:fake:2"/);
    expect(() => parseSinfoNodes("gpu-a|gpu*|idle|0/2/0/2|3936|gpu:fake:2|none\ngpu-b|gpu*|idle|0/2/0|3936||none")).toThrow(/line 2: CPUs are not allocated\/idle\/other\/total/);
    expect(() => parseSinfoNodes("gpu-a|gpu*|idle|0/2/0/2|lots|gpu:fake:2|none")).toThrow(/line 1: memory is not a number/);
  });

  it("asks sinfo for exactly the fields it reads", () => {
    expect(SINFO_NODES_COMMAND).toBe("sinfo --noheader --Node --format='%N|%P|%T|%C|%m|%G|%E'");
  });
});

describe("squeue", () => {
  it("reads the lines a real slurmctld printed (tests/provision/slurm.test.ts, Debian's Slurm, no accounting)", () => {
    expect(parseSqueue("3|RUNNING|gpu-a|None|0:00|365-00:00:00|gres:gpu:2|(null)|view|probe\n")).toEqual([
      { id: "3", state: "RUNNING", nodes: "gpu-a", reason: "None", timeUsed: "0:00", timeLimit: "365-00:00:00", tresPerNode: "gres:gpu:2", account: "", name: "view|probe" },
    ]);
    expect(parseSinfoNodes("gpu-a|gpu*|mixed|1/1/0/2|24105|gpu:fake:2|none\ngpu-b|gpu*|idle|0/2/0/2|24105|gpu:fake:1|none\n").map((n) => [n.name, n.state, n.cpus.allocated, gpusOf(n.gres)])).toEqual([
      ["gpu-a", "mixed", 1, 2],
      ["gpu-b", "idle", 0, 1],
    ]);
  });

  it("reads running and waiting jobs, a name with the separator in it kept whole", () => {
    const text = ["17|RUNNING|gpu-a|None|0:05|UNLIMITED|gres/gpu:1|lab|labrig-j_01|retry", "18|PENDING||Resources|0:00|1-00:00:00|gres/gpu:2|lab|sweep", "19_3|PENDING||Priority|0:00|UNLIMITED|N/A|lab|array"].join("\n");
    expect(parseSqueue(text)).toEqual([
      { id: "17", state: "RUNNING", nodes: "gpu-a", reason: "None", timeUsed: "0:05", timeLimit: "UNLIMITED", tresPerNode: "gres/gpu:1", account: "lab", name: "labrig-j_01|retry" },
      { id: "18", state: "PENDING", nodes: "", reason: "Resources", timeUsed: "0:00", timeLimit: "1-00:00:00", tresPerNode: "gres/gpu:2", account: "lab", name: "sweep" },
      { id: "19_3", state: "PENDING", nodes: "", reason: "Priority", timeUsed: "0:00", timeLimit: "UNLIMITED", tresPerNode: "", account: "lab", name: "array" },
    ]);
  });

  it("refuses a line whose first field is no Slurm job id, naming the line", () => {
    expect(() => parseSqueue("17|RUNNING|gpu-a|None|0:05|UNLIMITED|gres/gpu:1|lab|ok\nJOBID|STATE|NODES|REASON|TIME|LIMIT|TRES|ACCOUNT|NAME")).toThrow(/unexpected output from squeue, line 2: the job id is not a Slurm job id/);
    expect(() => parseSqueue("17|RUNNING")).toThrow(/line 1: 2 fields where 9 were expected/);
    expect(SQUEUE_COMMAND).toContain("--noheader");
  });
});

it("counts a node's GPUs from its generic resources", () => {
  expect(["gpu:fake:2", "gpu:2(S:0)", "gpu:a100:4,gpu:v100:2", "", "shard:8", "gpu:1"].map(gpusOf)).toEqual([2, 2, 6, 0, 0, 1]);
});

describe("the view reader", () => {
  /** A controller whose answers the test sets, counting reads; `fail` makes sinfo fail. */
  const controller = () => {
    const c = { reads: 0, fail: false, nodes: "gpu-a|gpu*|idle|0/2/0/2|3936|gpu:fake:2|none\n", async run(command: string): Promise<string> {
      if (command === SINFO_NODES_COMMAND) {
        c.reads++;
        if (c.fail) throw new Error("ssh: connect to host slurmctl port 22: Connection refused");
        return c.nodes;
      }
      return "";
    } };
    return c;
  };

  it("reads again only once the last read is maxAgeMs old, and callers of one read share it", async () => {
    let now = 1_000_000;
    const c = controller();
    const reader = new SlurmViewReader(c, 5000, () => now);
    const [a, b] = await Promise.all([reader.view(), reader.view()]);
    expect(a).toBe(b);
    expect(c.reads).toBe(1);
    now += 4999;
    await reader.view();
    expect(c.reads).toBe(1);
    c.nodes = "gpu-a|gpu*|allocated|2/0/0/2|3936|gpu:fake:2|none\n";
    now += 1;
    expect((await reader.view()).nodes[0]!.state).toBe("allocated");
    expect(c.reads).toBe(2);
  });

  it("keeps the last good view when a read fails, says why, and drops the error once a read works", async () => {
    let now = 0;
    const c = controller();
    const reader = new SlurmViewReader(c, 1000, () => now);
    const good = await reader.view();
    c.fail = true;
    now += 1000;
    const failed = await reader.view();
    expect(failed).toMatchObject({ readAt: good.readAt, nodes: good.nodes, error: expect.stringMatching(/Connection refused/) });
    c.fail = false;
    now += 1000;
    const again = await reader.view();
    expect(again.error).toBeUndefined();
    expect(again.readAt).toBe(new Date(2000).toISOString());
  });

  it("does not wait long for a controller that does not answer: the last view, saying so, and the read goes on", async () => {
    let release!: () => void;
    const answered = new Promise<void>((r) => (release = r));
    const c = controller();
    const reader = new SlurmViewReader({ run: async (command: string) => (await answered, c.run(command)) }, 1000, () => 0);
    const first = await reader.view(20);
    expect(first).toMatchObject({ readAt: null, nodes: [], error: "the controller has not answered sinfo and squeue for 0 s; still asking" });
    release();
    const after = await reader.view(20);
    expect(after.nodes.map((n) => n.name)).toEqual(["gpu-a"]);
    expect(after.error).toBeUndefined();
  });

  it("says which line of Slurm's output it could not read", async () => {
    const c = controller();
    c.nodes = "gpu-a idle\n";
    expect((await new SlurmViewReader(c).view()).error).toMatch(/unexpected output from sinfo, line 1/);
  });
});
