// A stand-in Remote for plan tests (no host, no I/O): it answers only the runner's up-front read
// of the host's system (facts/host-system.ts) with the files given, and fails every other command.
//   systemRemote(osReleaseText)                          // a Debian or Ubuntu host
//   systemRemote("", { dsmVersion: 'productversion="7.2.1"' })  // a Synology
import { hostSystemCommand } from "../../provision/facts/host-system.js";
import type { ExecResult, Remote } from "../../provision/remote.js";

export function systemRemote(osRelease: string, dsm: { dsmVersion?: string; synologyFolders?: boolean } = {}, host = "h"): Remote & { commands: string[] } {
  const commands: string[] = [];
  const exec = async (command: string): Promise<ExecResult> => {
    commands.push(command);
    if (command !== hostSystemCommand) return { stdout: "", stderr: `not a command this stand-in answers: ${command}`, exitCode: 127 };
    const folders = dsm.synologyFolders ?? dsm.dsmVersion !== undefined ? "synology\n" : "";
    return { stdout: `${dsm.dsmVersion ? `${dsm.dsmVersion}\n` : ""}--labrig-facts--\n${folders}--labrig-facts--\n${osRelease}`, stderr: "", exitCode: 0 };
  };
  return {
    host,
    commands,
    exec,
    run: async (command) => {
      const res = await exec(command);
      if (res.exitCode !== 0) throw new Error(res.stderr);
      return res.stdout;
    },
    writeFile: async () => {
      throw new Error("the stand-in remote writes nothing");
    },
    uploadFile: async () => {
      throw new Error("the stand-in remote writes nothing");
    },
    readFile: async () => undefined,
    close: async () => undefined,
  };
}
