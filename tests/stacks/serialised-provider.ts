// The step resources' dynamic provider as Pulumi's provider process gets it: serialised with
// pulumi.runtime.serializeFunction, written to a file, and loaded by plain `node` (no tsx, no
// project node_modules next to it) from another folder, one fresh process per call. Like Pulumi's
// getProvider, the driver first hands `configure` the stack's config (Pulumi's own Config class
// for dynamic providers, loaded by its absolute path), then calls the method.
//   const provider = await serialisedProvider(dir);
//   await provider.call("create", inputs);            // {id, outs}
//   await provider.call("create", inputs, { config: { "labrig:sudoPassword": "..." } });
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { execa } from "execa";
import { bundleStepRuntime } from "../../stacks/bundle.js";
import { stepProvider } from "../../stacks/provider.js";

const pulumiConfigModule = resolve(import.meta.dirname, "../../node_modules/@pulumi/pulumi/cmd/dynamic-provider/config.js");

const driver = `
const [file, method, argsJson, configModule, configJson] = process.argv.slice(2);
const { Config } = require(configModule);
const provider = require(file).handler();
(async () => {
  if (provider.configure) await provider.configure({ config: new Config(JSON.parse(configJson), "labrig") });
  return provider[method](...JSON.parse(argsJson));
})()
  .then((r) => process.stdout.write(JSON.stringify(r === undefined ? null : r)))
  .catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

export type ProviderMethod = "check" | "diff" | "create" | "update" | "read" | "delete";

export interface CallOptions {
  /** The stack's config as Pulumi hands it to configure (secrets decrypted). */
  config?: Record<string, string>;
  env?: Record<string, string>;
}

export interface ProviderCall {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface SerialisedProvider {
  file: string;
  /** One call in a fresh process; throws with its stderr when it fails. */
  call<T>(method: ProviderMethod, args: unknown[], opts?: CallOptions): Promise<T>;
  /** One call in a fresh process, as it went (for asserting on its output or its failure). */
  run(method: ProviderMethod, args: unknown[], opts?: CallOptions): Promise<ProviderCall>;
}

/** Bundles the runtime, serialises the provider into `dir`, and returns a caller running it from `dir/elsewhere`. */
export async function serialisedProvider(dir: string): Promise<SerialisedProvider> {
  const runtimeUrl = await bundleStepRuntime();
  const serialized = await pulumi.runtime.serializeFunction(() => stepProvider(runtimeUrl));
  if (serialized.exportName !== "handler") throw new Error(`serializeFunction exported ${serialized.exportName}, not handler`);
  const elsewhere = join(dir, "elsewhere");
  mkdirSync(elsewhere, { recursive: true });
  writeFileSync(join(elsewhere, "drive.cjs"), driver);
  const file = join(dir, "provider.js");
  writeFileSync(file, serialized.text);
  const run = async (method: ProviderMethod, args: unknown[], opts: CallOptions = {}): Promise<ProviderCall> => {
    const res = await execa("node", [join(elsewhere, "drive.cjs"), file, method, JSON.stringify(args), pulumiConfigModule, JSON.stringify(opts.config ?? {})], {
      cwd: elsewhere,
      reject: false,
      timeout: 600_000,
      // Tokens from the test's own environment would change which join token an agent gets.
      env: { NODE_OPTIONS: "", LABRIG_ADMIN_TOKEN: "", LABRIG_TOKEN: "", LABRIG_JOIN_TOKEN: "", ...opts.env },
    });
    return { stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode ?? 1 };
  };
  return {
    file,
    run,
    async call<T>(method: ProviderMethod, args: unknown[], opts: CallOptions = {}): Promise<T> {
      const res = await run(method, args, opts);
      if (res.exitCode !== 0) throw new Error(`provider ${method} failed (exit ${res.exitCode}):\n${res.stderr}`);
      return JSON.parse(res.stdout) as T;
    },
  };
}
