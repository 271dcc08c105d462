// Fact: ufw's state: installed, active, default policies, and the user rules as ufw itself spells
// them (`ufw show added`, which lists rules whether or not the firewall is enabled), each with its
// comment, so labrig's own rules (comment 'labrig') can be told from the admin's.
//   await ufwState(remote)  // {installed, active, defaults:{incoming:"deny", outgoing:"allow"}, rules:[{rule:"allow 22/tcp", comment:"labrig"}]}
import type { Remote } from "../remote.js";

export interface UfwRule {
  /** As `ufw show added` prints it, without "ufw " and the comment: "allow from 10.0.0.0/8 to any port 8020 proto tcp". */
  rule: string;
  comment?: string;
}

export interface UfwState {
  installed: boolean;
  active: boolean;
  defaults: { incoming?: "allow" | "deny"; outgoing?: "allow" | "deny" };
  rules: UfwRule[];
}

const marker = "--labrig-section--";

export async function ufwState(remote: Remote): Promise<UfwState> {
  const res = await remote.exec(
    `command -v ufw >/dev/null || { echo absent; exit 0; }; ufw status | head -1; echo ${marker}; grep -E '^DEFAULT_(INPUT|OUTPUT)_POLICY=' /etc/default/ufw; echo ${marker}; ufw show added`,
    { sudo: true },
  );
  if (res.exitCode !== 0) throw new Error(`on ${remote.host}: reading ufw's state failed: ${res.stderr.trim()}`);
  return parseUfwState(res.stdout);
}

export function parseUfwState(text: string): UfwState {
  if (text.trim() === "absent") return { installed: false, active: false, defaults: {}, rules: [] };
  const [status = "", policies = "", added = ""] = text.split(`${marker}\n`);
  const policy = (name: string) => {
    const v = policies.match(new RegExp(`^DEFAULT_${name}_POLICY="?(\\w+)"?`, "m"))?.[1];
    return v === "ACCEPT" ? "allow" : v === "DROP" || v === "REJECT" ? "deny" : undefined;
  };
  return {
    installed: true,
    active: /^Status: active/m.test(status),
    defaults: { incoming: policy("INPUT"), outgoing: policy("OUTPUT") },
    rules: parseUfwShowAdded(added),
  };
}

export function parseUfwShowAdded(text: string): UfwRule[] {
  const rules: UfwRule[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("ufw ")) continue;
    const m = line.slice(4).match(/^(.*?)(?: comment '(.*)')?$/);
    if (m) rules.push(m[2] === undefined ? { rule: m[1]!.trim() } : { rule: m[1]!.trim(), comment: m[2] });
  }
  return rules;
}
