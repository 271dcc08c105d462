// Which operating system a host runs (/etc/os-release), and whether labrig provisions it: the
// steps use apt, systemd and Debian's package names, so Debian and Ubuntu releases it was tested
// on are accepted and anything else is refused before a change is made, with the reason.
//
//   supportedOs(parseOsRelease(text))  // { supported: true, name: "Debian GNU/Linux 12 (bookworm)" }
import type { Remote } from "../remote.js";

export interface OsRelease {
  id: string;
  idLike: string[];
  versionId: string;
  prettyName: string;
}

export function parseOsRelease(text: string): OsRelease {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1]!, m[2]!.replace(/^"(.*)"$/, "$1").replace(/^'(.*)'$/, "$1"));
  }
  return {
    id: fields.get("ID") ?? "",
    idLike: (fields.get("ID_LIKE") ?? "").split(/\s+/).filter(Boolean),
    versionId: fields.get("VERSION_ID") ?? "",
    prettyName: fields.get("PRETTY_NAME") ?? fields.get("NAME") ?? "an unnamed system",
  };
}

/** The releases the README names as supported. */
export const supportedReleases: Record<string, string[]> = { debian: ["11", "12", "13"], ubuntu: ["22.04", "24.04"] };

export type OsVerdict = { supported: true; name: string } | { supported: false; name: string; reason: string };

export function supportedOs(os: OsRelease | undefined): OsVerdict {
  const list = Object.entries(supportedReleases).map(([id, vs]) => `${id === "debian" ? "Debian" : "Ubuntu"} ${vs.join("/")}`).join(" and ");
  if (!os) return { supported: false, name: "unknown", reason: `the host has no /etc/os-release; labrig provisions ${list}` };
  const versions = supportedReleases[os.id];
  if (versions?.includes(os.versionId)) return { supported: true, name: os.prettyName };
  const why = versions ? `${os.id} ${os.versionId || "(no VERSION_ID)"} is not a release labrig was tested on` : `${os.prettyName} is not Debian or Ubuntu (labrig's steps use apt, systemd and Debian's package names)`;
  return { supported: false, name: os.prettyName, reason: `${why}; labrig provisions ${list}` };
}

export async function osRelease(remote: Remote): Promise<OsRelease | undefined> {
  const res = await remote.exec("cat /etc/os-release");
  return res.exitCode === 0 ? parseOsRelease(res.stdout) : undefined;
}
