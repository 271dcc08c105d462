// Slurm's own view of the cluster, for `labrig devices` and the dashboard in slurm mode: the
// commands that read it on the controller (sinfo per node, squeue) and pure parsers of their
// output. Fields are separated by "|", which no node name, state or Slurm job id contains; a job
// name that does is cut at the first one, and its name is the field kept whole (the last).
import type { SlurmNode, SlurmQueueJob } from "../core/api.js";

/** One line per node and partition: name, partition (a trailing * marks the default), state, CPUs allocated/idle/other/total, memory in MiB, generic resources, why it is down or drained. */
export const SINFO_NODES_COMMAND = "sinfo --noheader --Node --format='%N|%P|%T|%C|%m|%G|%E'";
/** One line per job in the queue: id, state, nodes (or the pending reason), time used, time limit, GPUs asked (tres per node), account, name last. */
export const SQUEUE_COMMAND = "squeue --noheader --format='%i|%T|%N|%r|%M|%l|%b|%a|%j'";

export class SlurmOutputError extends Error {
  constructor(command: string, line: number, text: string, why: string) {
    super(`unexpected output from ${command.split(" ")[0]}, line ${line}: ${why}: ${JSON.stringify(text.slice(0, 200))}`);
  }
}

const lines = (text: string) => text.split("\n").map((l) => l.trimEnd()).filter((l) => l.trim() !== "");

const count = (command: string, n: number, line: string, field: string, value: string): number => {
  const v = Number(value);
  if (value.trim() === "" || !Number.isFinite(v)) throw new SlurmOutputError(command, n, line, `${field} is not a number`);
  return v;
};

const none = (v: string) => (v === "(null)" || v === "N/A" || v === "none" ? "" : v);

/** Nodes from SINFO_NODES_COMMAND's output, one per node with every partition it is in, in sinfo's order. */
export function parseSinfoNodes(text: string): SlurmNode[] {
  const byName = new Map<string, SlurmNode>();
  lines(text).forEach((line, i) => {
    const f = line.split("|");
    if (f.length < 7) throw new SlurmOutputError("sinfo", i + 1, line, `${f.length} fields where 7 were expected`);
    const [name, partition, state, cpus, memory, gres] = f as [string, string, string, string, string, string];
    const reason = f.slice(6).join("|");
    const known = byName.get(name);
    if (known) {
      known.partitions.push(partition);
      return;
    }
    const c = cpus.split("/");
    if (c.length !== 4) throw new SlurmOutputError("sinfo", i + 1, line, "CPUs are not allocated/idle/other/total");
    const [allocated, idle, other, total] = c.map((v, k) => count("sinfo", i + 1, line, ["allocated", "idle", "other", "total"][k]! + " CPUs", v)) as [number, number, number, number];
    byName.set(name, {
      name,
      partitions: [partition],
      state,
      cpus: { allocated, idle, other, total },
      memoryMiB: count("sinfo", i + 1, line, "memory", memory),
      gres: none(gres),
      reason: none(reason),
    });
  });
  return [...byName.values()];
}

/** Jobs from SQUEUE_COMMAND's output, in squeue's order. */
export function parseSqueue(text: string): SlurmQueueJob[] {
  return lines(text).map((line, i) => {
    const f = line.split("|");
    if (f.length < 9) throw new SlurmOutputError("squeue", i + 1, line, `${f.length} fields where 9 were expected`);
    const [id, state, nodes, reason, timeUsed, timeLimit, tres, account] = f as [string, string, string, string, string, string, string, string];
    if (!/^\d+(_\d+|_\[[^\]]*\])?$/.test(id)) throw new SlurmOutputError("squeue", i + 1, line, "the job id is not a Slurm job id");
    return { id, state, nodes, reason, timeUsed, timeLimit, tresPerNode: none(tres), account: none(account), name: f.slice(8).join("|") };
  });
}

/** How many of a node's generic resources of kind `gpu` it has, from sinfo's "gpu:fake:2" or "gpu:2(S:0)" (0 for none). */
export function gpusOf(gres: string): number {
  let n = 0;
  for (const part of gres.split(",")) {
    const m = /^gpu(?::[^:(]+)?:(\d+)/.exec(part.trim());
    if (m) n += Number(m[1]);
  }
  return n;
}
