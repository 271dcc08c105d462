// Registers `labrig image build`: the dispatcher image that provisioning deploys to the NAS.
//   labrig image build [--base IMAGE] [--tag labrig/dispatcher:latest]
import type { Command } from "commander";

export function registerImageCommands(program: Command): void {
  const image = program.command("image").description("the dispatcher's container image");
  image
    .command("build")
    .description("build the dispatcher image from compose/Dockerfile on this machine's Docker engine (provision sends it to the NAS)")
    .option("--base <image>", "a local base image with Node >= 22.13 (air-gapped labs); default: the official Node image, built inside with the npm registry")
    .option("--tag <tag>", "the image's name (what the inventory's dispatcher.image says)", "labrig/dispatcher:latest")
    .option("--quiet", "print only the result, not the build's output")
    .action(async (flags: { base?: string; tag: string; quiet?: boolean }) => {
      const { buildDispatcherImage, formatBuiltImage } = await import("../provision/dispatcher-image.js");
      const built = await buildDispatcherImage({ tag: flags.tag, base: flags.base, onLine: flags.quiet ? undefined : (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(formatBuiltImage(built));
    });
}
