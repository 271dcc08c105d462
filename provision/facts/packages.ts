// Fact: which Debian packages are installed, and their versions.
//   await installedPackages(remote, ["docker.io", "jq"])  // Map { "docker.io" => "20.10.24…", "jq" => undefined }
import { shq, type Remote } from "../remote.js";

export async function installedPackages(remote: Remote, names: string[]): Promise<Map<string, string | undefined>> {
  const res = await remote.exec(`dpkg-query -W -f='\${Package}\\t\${db:Status-Abbrev}\\t\${Version}\\n' ${names.map(shq).join(" ")} 2>/dev/null; true`);
  return parseDpkgQuery(res.stdout, names);
}

export function parseDpkgQuery(text: string, names: string[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>(names.map((n) => [n, undefined]));
  for (const line of text.split("\n")) {
    const [name, status, version] = line.split("\t");
    // "ii " is installed; "rc " (removed, config kept) and others are not.
    if (name && status?.startsWith("ii") && out.has(name)) out.set(name, version);
  }
  return out;
}

export function missingPackages(installed: Map<string, string | undefined>): string[] {
  return [...installed].filter(([, v]) => v === undefined).map(([n]) => n);
}
