// The agent's version: package.json's, stamped in by the bundler; "dev" when run from the checkout.
declare const __LABRIG_AGENT_VERSION__: string | undefined;

export const agentVersion: string = typeof __LABRIG_AGENT_VERSION__ === "string" ? __LABRIG_AGENT_VERSION__ : "dev";
