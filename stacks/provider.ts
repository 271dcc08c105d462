// The dynamic provider behind every step resource. Pulumi serialises it (serializeFunction) and
// runs that text in its provider process, so its methods capture nothing but the runtime bundle's
// URL: each call imports the bundle (bundle.ts) and hands over to step-runtime.ts. The import goes
// through `new Function` so that no bundler or test transform rewrites it into a helper the
// serialised text would lack.
import type * as pulumi from "@pulumi/pulumi";
import type * as runtime from "./step-runtime.js";

export function stepProvider(runtimeUrl: string): pulumi.dynamic.ResourceProvider {
  const load = (): Promise<typeof runtime> => new Function("url", "return import(url)")(runtimeUrl);
  return {
    async check(_olds, news) {
      return (await load()).checkStep(news);
    },
    async diff(_id, olds, news) {
      return (await load()).diffStep(olds, news);
    },
    async create(inputs) {
      const outs = await (await load()).applyStep(inputs);
      return { id: `${outs.host.name}/${outs.step}`, outs };
    },
    async update(_id, _olds, news) {
      return { outs: await (await load()).applyStep(news) };
    },
    async read(id, props) {
      return { id, props: await (await load()).readStep(props) };
    },
    async delete(_id, props) {
      await (await load()).deleteStep(props);
    },
  };
}
