// The provider's diff as a function of the resource's old outputs and the checked new inputs.
import { describe, expect, it } from "vitest";
import { parseInventory } from "../../provision/inventory.js";
import { stepInputs } from "../../stacks/graph.js";
import { diffStep, type StepOutputs } from "../../stacks/step-runtime.js";

const inventory = (address: string) => parseInventory(`hosts:\n  a: {address: ${address}, roles: [gpu]}\n`, "inventory.yaml");
const inputs = (address = "10.0.0.1") => stepInputs(inventory(address), inventory(address).hosts[0]!, "firewall", { knownHostsFile: "/k" });
const converged = (address = "10.0.0.1"): StepOutputs => ({ ...inputs(address), plan: [], applied: ["ufw enable (ufw is inactive)"], found: {}, leavesOnDelete: "ufw" });

describe("step provider diff", () => {
  it("reports no change when the check plans nothing and the inputs are the same", () => {
    expect(diffStep({ ...converged(), __provider: "old text" } as StepOutputs, { ...inputs(), plan: [], __provider: "new text" } as never)).toEqual({ changes: false, replaces: [] });
  });

  it("reports an update, never a replacement, when the check plans changes", () => {
    expect(diffStep(converged(), { ...inputs(), plan: ["ufw allow from 10.9.0.0/16 to any port 8020 proto tcp (from firewall.allowFrom)"] })).toEqual({ changes: true, replaces: [] });
  });

  it("reports an update when a declared input changed though the host needs nothing", () => {
    expect(diffStep(converged("10.0.0.1"), { ...inputs("10.0.0.2"), plan: [] })).toEqual({ changes: true, replaces: [] });
  });
});
