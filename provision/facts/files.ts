// Fact: files' existence, mode, owner and content hash, read as root in one command.
//   await fileStates(remote, ["/etc/labrig/agent.env"])  // Map { path => {exists, mode:"0600", owner:"root", group:"root", sha256} }
// An owner or group with no name on the host reads as its number ("10001").
import { shq, type Remote } from "../remote.js";

export interface FileState {
  exists: boolean;
  mode?: string;
  owner?: string;
  group?: string;
  sha256?: string;
}

export async function fileStates(remote: Remote, paths: string[]): Promise<Map<string, FileState>> {
  const script = paths
    .map((p) => `if [ -f ${shq(p)} ]; then printf '%s\\t%s\\t' "$(stat -c '%a %U %G %u %g' ${shq(p)})" "$(sha256sum < ${shq(p)} | cut -d' ' -f1)"; else printf 'absent\\t\\t'; fi; echo`)
    .join("; ");
  const out = await remote.run(script, { sudo: true });
  const lines = out.split("\n");
  return new Map(paths.map((p, i) => [p, parseFileLine(lines[i] ?? "absent")]));
}

function parseFileLine(line: string): FileState {
  const [stat, sha256] = line.split("\t");
  if (!stat || stat === "absent") return { exists: false };
  const [mode, owner, group, uid, gid] = stat.split(" ");
  // An owner without a name here (a container's user, e.g. 10001) is its number, as planFile is given it.
  return { exists: true, mode: mode!.padStart(4, "0"), owner: owner === "UNKNOWN" ? uid : owner, group: group === "UNKNOWN" ? gid : group, sha256 };
}
