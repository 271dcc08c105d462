// Finding the Pulumi CLI, which the Automation API drives and which labrig never downloads. Kept
// apart from command.ts so that its absence is told before @pulumi/pulumi is even loaded.
//   findPulumiCli()  // "/home/me/.pulumi/bin/pulumi" or undefined
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { LabrigError } from "../core/errors.js";

export function findPulumiCli(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, "pulumi");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/** Exit status for "a tool this command needs is not installed". */
export const missingCliExitCode = 2;

export class PulumiCliMissingError extends LabrigError {
  constructor(command: string) {
    super(
      `\`pnpm ${command}\` needs the Pulumi CLI (\`pulumi\`), and there is none on PATH. ` +
        "Install it as https://www.pulumi.com/docs/install/ describes (its install script puts it in ~/.pulumi/bin: add that to PATH), then run this again; " +
        "no Pulumi Cloud account is needed. Without Pulumi, `pnpm provision --host all` runs the same steps over SSH (add --dry-run to see the plan).",
    );
  }
}
