// Builds the single-file agent that GPU hosts run with their distribution's Node (>= 18):
// esbuild bundles agent/ with core/ and its libraries into dist/agent/labrig-agent.mjs.
// `pnpm build:agent` or `pnpm labrig agent bundle [--out F]`.
//
// dockerode's connection library (docker-modem) loads ssh2 at its top, for ssh:// DOCKER_HOSTs
// only, and ssh2 may load the native cpu-features. The bundle replaces ssh2 with a stub that throws
// when used, so it holds no native module and needs no node_modules; the agent reaches its own
// host's engine over the unix socket (or tcp://) anyway.
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build, type Plugin } from "esbuild";

const SSH2_STUB = `
function Client() { throw new Error("the bundled labrig agent cannot reach Docker over ssh://; set DOCKER_HOST to the local socket or tcp://"); }
module.exports = { Client };
`;

const stubSsh2: Plugin = {
  name: "stub-ssh2",
  setup(b) {
    b.onResolve({ filter: /^(ssh2|cpu-features)$/ }, (args) => ({ path: args.path, namespace: "labrig-stub" }));
    b.onLoad({ filter: /.*/, namespace: "labrig-stub" }, () => ({ contents: SSH2_STUB, loader: "js" }));
  },
};

const root = resolve(import.meta.dirname, "..");
export const defaultBundlePath = resolve(root, "dist/agent/labrig-agent.mjs");

export async function bundleAgent(outfile = defaultBundlePath): Promise<{ path: string; bytes: number }> {
  const version = (JSON.parse(readFileSync(resolve(root, "package.json"), "utf8")) as { version: string }).version;
  await build({
    entryPoints: [resolve(root, "agent/bundle-entry.ts")],
    outfile,
    bundle: true,
    platform: "node",
    target: "node18",
    format: "esm",
    plugins: [stubSsh2],
    define: { __LABRIG_AGENT_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies (dockerode, prom-client) call require(); an ESM file has none of its own.
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __labrigCreateRequire } from 'node:module';\nconst require = __labrigCreateRequire(import.meta.url);" },
    legalComments: "none",
    logLevel: "warning",
  });
  return { path: outfile, bytes: statSync(outfile).size };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const out = process.argv[2] === "--out" && process.argv[3] ? resolve(process.argv[3]) : defaultBundlePath;
  const r = await bundleAgent(out);
  process.stdout.write(`wrote ${r.path} (${Math.round(r.bytes / 1024)} KiB)\n`);
}
