// The Queue's row model without rendering: jobs and the set of opened sweep groups in, the rows the
// view draws out (a group folded to one row where its first job sorts, its jobs under it when
// open), and the text a group's row is made of.
import { describe, expect, it } from "vitest";
import { type QueueRow, queueRows, summarizeGroup } from "../../tui/derive.js";
import { groupName, groupStatesText, memberName } from "../../tui/format.js";
import { SWEEP, iso, job, sweepJobs } from "./fixtures.js";

const ids = (rows: QueueRow[]) => rows.map((r) => (r.kind === "group" ? `group ${r.group.id}${r.expanded ? " open" : ""}` : r.inGroup ? `  ${r.job.id}` : r.job.id));

const solo = [
  job("01solo0000", { name: "vit-base", state: "running", hostId: "h1", gpuIndices: [0], createdAt: iso(500), startedAt: iso(400) }),
  job("01late0000", { name: "bert", state: "queued", createdAt: iso(10) }),
  job("01old00000", { name: "gpt-tiny", state: "failed", endedAt: iso(900) }),
];

describe("queueRows", () => {
  it("folds a sweep's 6 jobs into one row where its first job sorts", () => {
    const rows = queueRows([...solo, ...sweepJobs()]);
    // The sweep's first job in queue order is a running one started after 01solo0000 was submitted.
    expect(ids(rows)).toEqual(["01solo0000", `group ${SWEEP}`, "01late0000", "01old00000"]);
    const g = rows[1]!;
    expect(g.kind === "group" && g.group).toMatchObject({ id: SWEEP, name: "lr-sweep", states: { running: 2, queued: 3, succeeded: 1 }, gpus: 6, owner: "ana" });
    expect(g.kind === "group" && g.group.jobs).toHaveLength(6);
  });

  it("puts an opened group's jobs under its row in queue order, the last one marked", () => {
    const rows = queueRows([...solo, ...sweepJobs()], [SWEEP]);
    expect(ids(rows)).toEqual(["01solo0000", `group ${SWEEP} open`, "  01swp00001", "  01swp00002", "  01swp00003", "  01swp00004", "  01swp00005", "  01swp00000", "01late0000", "01old00000"]);
    const members = rows.filter((r): r is Extract<QueueRow, { kind: "job" }> => r.kind === "job" && r.inGroup !== null);
    expect(members.map((r) => r.last)).toEqual([false, false, false, false, false, true]);
    expect(members[0]!.inGroup?.id).toBe(SWEEP);
  });

  it("keeps two sweeps apart and opens only the one asked for", () => {
    const other = sweepJobs("g0c4h2m9zz9", "01oth").map((j) => ({ ...j, state: "failed" as const, endedAt: iso(60), startedAt: null, hostId: null }));
    const rows = queueRows([...sweepJobs(), ...other], ["g0c4h2m9zz9"]);
    expect(ids(rows)).toEqual([`group ${SWEEP}`, "group g0c4h2m9zz9 open", ...other.map((j) => `  ${j.id}`)]);
  });

  it("shows a group, whole, when the filter matches any one of its jobs, and hides it when none does", () => {
    const all = [...solo, ...sweepJobs()];
    // Only one of the sweep's names has lr=0.001,batch_size=64.
    const one = queueRows(all, [SWEEP], "batch_size=64]");
    expect(ids(one)[0]).toBe(`group ${SWEEP} open`);
    expect(one.filter((r) => r.kind === "job")).toHaveLength(6);
    expect(one[0]!.kind === "group" && one[0]!.group.jobs).toHaveLength(6);
    expect(ids(queueRows(all, [], "vit"))).toEqual(["01solo0000"]);
    // The group's id is a filter too.
    expect(ids(queueRows(all, [], SWEEP))).toEqual([`group ${SWEEP}`]);
    expect(ids(queueRows(all, [], "succeeded"))).toEqual([`group ${SWEEP}`]);
  });

  it("leaves jobs without a group as they were, one row each", () => {
    expect(ids(queueRows(solo, [SWEEP]))).toEqual(["01solo0000", "01late0000", "01old00000"]);
  });
});

describe("a group's row text", () => {
  it("names a sweep by its jobs' name without the [k=v,…] suffix", () => {
    expect(groupName(["exp [lr=0.1,batch_size=32]", "exp [lr=0.01,batch_size=32]"])).toBe("exp");
    expect(summarizeGroup(SWEEP, sweepJobs()).name).toBe("lr-sweep");
  });

  it("falls back to what the names start with, then to the first name", () => {
    expect(groupName(["seed-1", "seed-2", "seed-3"])).toBe("seed");
    expect(groupName(["alpha", "beta"])).toBe("alpha");
    expect(groupName(["only [x=1]"])).toBe("only");
  });

  it("takes the name from the job submitted first, not from the one running first", () => {
    const jobs = [job("01b", { name: "b-run [x=2]", state: "running", createdAt: iso(10) }), job("01a", { name: "a-run [x=1]", createdAt: iso(20) })];
    expect(summarizeGroup("g1", jobs).name).toBe("a-run");
  });

  it("counts states in the order running, assigned, queued, then how they ended", () => {
    expect(groupStatesText(summarizeGroup(SWEEP, sweepJobs()).states)).toBe("2 running · 3 queued · 1 succeeded");
    expect(groupStatesText({ cancelled: 1, timed_out: 2, failed: 1, assigned: 1 })).toBe("1 assigned · 1 failed · 2 timed out · 1 cancelled");
  });

  it("says who owns a group of several owners as the first and how many more", () => {
    const jobs = [job("01a", { owner: "ana" }), job("01b", { owner: "bo" }), job("01c", { owner: "ana" }), job("01d", { owner: null })];
    expect(summarizeGroup("g1", jobs).owner).toBe("ana +1");
    expect(summarizeGroup("g1", [job("01d")]).owner).toBeNull();
  });

  it("shows a sweep job under its group by its point alone", () => {
    expect(memberName("lr-sweep [lr=0.1,batch_size=32]", "lr-sweep")).toBe("lr=0.1,batch_size=32");
    expect(memberName("other", "lr-sweep")).toBe("other");
    expect(memberName("seed-2", "seed")).toBe("2");
  });
});
