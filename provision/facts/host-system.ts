// Fact: which system a host runs, read once before any step (the runner hands it to the steps):
// a Synology's DSM (/etc.defaults/VERSION, or /usr/syno with /volume1), else /etc/os-release.
// And whether labrig provisions that system for the host's roles: the Debian and Ubuntu releases
// os-release.ts names for every role, DSM 7 for role dispatcher only (the NAS), nothing else.
//
//   const system = await readHostSystem(remote);   // { kind: "dsm", version: "7.2.1", major: 7, name: "Synology DSM 7.2.1-69057" }
//   hostSupport(system, ["dispatcher"])            // { supported: true, name: "Synology DSM 7.2.1-69057" }
import type { Remote } from "../remote.js";
import type { StepContext } from "../step.js";
import { type OsRelease, parseOsRelease, supportedOs, supportedReleases } from "./os-release.js";

export type HostSystem =
  | { kind: "linux"; os?: OsRelease; name: string }
  | { kind: "dsm"; /** productversion, e.g. 7.2.1; "" when only /usr/syno and /volume1 say it is DSM */ version: string; major?: number; name: string };

export type SupportVerdict = { supported: true; name: string } | { supported: false; name: string; reason: string };

/** DSM releases labrig provisions (the dispatcher container only). */
export const supportedDsmMajors = [7];

/** Every supported system in one line, as refusals and the README name them. */
export function supportedSystemsLine(): string {
  const linux = Object.entries(supportedReleases)
    .map(([id, vs]) => `${id === "debian" ? "Debian" : "Ubuntu"} ${vs.join("/")}`)
    .join(", ");
  return `${linux} (every role); Synology DSM ${supportedDsmMajors.join("/")} (role dispatcher only)`;
}

const marker = "--labrig-facts--";
/** One command: DSM's VERSION file, the DSM folders, os-release, each after a marker line. */
export const hostSystemCommand = `cat /etc.defaults/VERSION 2>/dev/null; echo ${marker}; test -d /usr/syno && test -d /volume1 && echo synology; echo ${marker}; cat /etc/os-release 2>/dev/null`;

/** What hostSystemCommand printed, as a system (pure). */
export function parseHostSystem(output: string): HostSystem {
  const [version = "", folders = "", osRelease = ""] = output.split(`${marker}\n`);
  const dsmVersion = fieldOf(version, "productversion");
  if (dsmVersion || folders.trim() === "synology") {
    const major = Number(fieldOf(version, "majorversion") || dsmVersion.split(".")[0]);
    const build = fieldOf(version, "buildnumber");
    return {
      kind: "dsm",
      version: dsmVersion,
      ...(Number.isInteger(major) && major > 0 ? { major } : {}),
      name: dsmVersion ? `Synology DSM ${dsmVersion}${build ? `-${build}` : ""}` : "Synology DSM (no /etc.defaults/VERSION)",
    };
  }
  if (!osRelease.trim()) return { kind: "linux", name: "unknown (no /etc/os-release)" };
  const os = parseOsRelease(osRelease);
  return { kind: "linux", os, name: os.prettyName };
}

function fieldOf(text: string, key: string): string {
  const m = new RegExp(`^${key}="?([^"\\n]*)"?$`, "m").exec(text);
  return m?.[1]?.trim() ?? "";
}

export async function readHostSystem(remote: Remote): Promise<HostSystem> {
  return parseHostSystem((await remote.exec(hostSystemCommand)).stdout);
}

/** The system the runner read, or read now (a step called on its own, as the Pulumi providers do). */
export async function hostSystemOf(ctx: Pick<StepContext, "remote" | "system">): Promise<HostSystem> {
  return ctx.system ?? readHostSystem(ctx.remote);
}

/** Whether labrig provisions this system for these roles, and if not, why and what it does provision. */
export function hostSupport(system: HostSystem, roles: readonly string[]): SupportVerdict {
  if (system.kind === "linux") {
    const v = supportedOs(system.os);
    return v.supported ? v : { supported: false, name: system.name, reason: `${v.reason.replace(/; labrig provisions .*$/, "")}; labrig provisions ${supportedSystemsLine()}` };
  }
  const list = `labrig provisions ${supportedSystemsLine()}`;
  if (system.major === undefined || !supportedDsmMajors.includes(system.major)) {
    const what = system.version ? `DSM ${system.version} is not a release labrig supports` : "this looks like DSM (/usr/syno, /volume1) but /etc.defaults/VERSION does not say which release";
    return { supported: false, name: system.name, reason: `${what}; ${list}` };
  }
  const others = roles.filter((r) => r !== "dispatcher");
  if (others.length || roles.length === 0) {
    return {
      supported: false,
      name: system.name,
      reason: `on DSM labrig runs only the dispatcher container (role dispatcher); this host's roles ${others.length ? `include ${others.join(", ")}` : "are empty"}, which need Debian or Ubuntu; ${list}`,
    };
  }
  return { supported: true, name: system.name };
}
