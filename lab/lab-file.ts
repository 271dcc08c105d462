// The local lab's lab.json: written once the lab is up so that other commands find it (see
// core/config.ts resolveDispatcher), removed when it stops. It also records the children's pids
// so a lab that was killed outright can be cleaned up by the next start.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { LocalLabFile } from "../core/config.js";

export interface LabFile extends LocalLabFile {
  home: string;
  hostId: string;
  dispatcherPid: number;
  agentPid?: number;
  logsDir: string;
}

export function readLabFile(file: string): LabFile | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as LabFile;
  } catch {
    return undefined; // half-written or corrupt: treated as no lab
  }
}

export function writeLabFile(file: string, lab: LabFile): void {
  writeFileSync(`${file}.tmp`, `${JSON.stringify(lab, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function removeLabFile(file: string, ownerPid: number): void {
  // Only the lab that wrote it removes it: a second `pnpm start` refused as a duplicate must not.
  if (readLabFile(file)?.pid === ownerPid) rmSync(file, { force: true });
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** True when pid is alive and, where /proc can tell, runs labrig's CLI (guards against pid reuse). */
export function isLabrigProcess(pid: number | undefined): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("cli/main.ts");
  } catch {
    return false;
  }
}
