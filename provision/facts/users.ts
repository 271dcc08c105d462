// Fact: a user's groups.
//   await groupsOf(remote, "deploy")  // ["deploy", "sudo", "docker"]
import { shq, type Remote } from "../remote.js";

export async function groupsOf(remote: Remote, user: string): Promise<string[]> {
  const res = await remote.exec(`id -nG ${shq(user)}`);
  return res.exitCode === 0 ? res.stdout.trim().split(/\s+/) : [];
}
