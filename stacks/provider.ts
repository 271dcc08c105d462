// The dynamic provider behind every step resource. Pulumi serialises it (serializeFunction) and
// runs that text in its provider process, so its methods capture nothing but the runtime bundle's
// URL and the config key below: each call imports the bundle (bundle.ts) and hands over to
// step-runtime.ts. The import goes through `new Function` so that no bundler or test transform
// rewrites it into a helper the serialised text would lack.
//
// Pulumi calls `configure` once per provider process with the stack's config (secrets decrypted);
// the sudo password is taken from there and kept in that process's memory only, so it is no
// resource's input and is in no state.
import type * as pulumi from "@pulumi/pulumi";
import { sudoPasswordConfigKey } from "./graph.js";
import type * as runtime from "./step-runtime.js";

export function stepProvider(runtimeUrl: string): pulumi.dynamic.ResourceProvider {
  const load = (): Promise<typeof runtime> => new Function("url", "return import(url)")(runtimeUrl);
  const configKey = sudoPasswordConfigKey;
  const session: runtime.ProviderSession = {};
  return {
    async configure(req) {
      const password = req.config.get(configKey);
      if (password) session.sudoPassword = password;
    },
    async check(_olds, news) {
      return (await load()).checkStep(news, session);
    },
    async diff(_id, olds, news) {
      return (await load()).diffStep(olds, news);
    },
    async create(inputs) {
      const outs = await (await load()).applyStep(inputs, session);
      return { id: `${outs.host.name}/${outs.step}`, outs };
    },
    async update(_id, _olds, news) {
      return { outs: await (await load()).applyStep(news, session) };
    },
    async read(id, props) {
      return { id, props: await (await load()).readStep(props, session) };
    },
    async delete(_id, props) {
      await (await load()).deleteStep(props, session);
    },
  };
}
