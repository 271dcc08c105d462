// Process groups of jobs: a job runs as the leader of its own group, so a timeout or cancel reaches
// everything it started. "Gone" means no live member: zombies whose parent has not reaped them yet
// (the machine's init may be slow to) do not count.
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Pids of the group's members that are not zombies (Linux /proc; elsewhere any member counts). */
export function liveGroupMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return signalGroup(pgid, 0) ? [pgid] : [];
  }
  const live: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, "utf8");
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses, so split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(rest[2]) === pgid && rest[0] !== "Z" && rest[0] !== "X") live.push(Number(e));
  }
  return live;
}

export async function waitGroupGone(pgid: number, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (liveGroupMembers(pgid).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** SIGTERM to the whole group, SIGKILL to what is left after graceMs; resolves when none is alive. */
export async function terminateGroup(pgid: number, graceMs: number): Promise<void> {
  if (liveGroupMembers(pgid).length === 0) return;
  signalGroup(pgid, "SIGTERM");
  if (await waitGroupGone(pgid, graceMs)) return;
  signalGroup(pgid, "SIGKILL");
  await waitGroupGone(pgid, 5_000);
}
