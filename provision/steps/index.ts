// The provisioning steps in the order they run on a host. A new step is a module in this folder
// added here; the runner picks those whose roles match the host's.
import type { Inventory } from "../inventory.js";
import type { Step } from "../step.js";
import { agentStep } from "./agent.js";
import { backupTimerStep } from "./backup-timer.js";
import { baseStep } from "./base.js";
import { dispatcherContainerStep } from "./dispatcher-container.js";
import { dispatcherFirewallStep } from "./dispatcher-firewall.js";
import { dockerStep } from "./docker.js";
import { firewallStep } from "./firewall.js";
import { gpuFirewallStep } from "./gpu-firewall.js";
import { mungeStep } from "./munge.js";
import { nvidiaToolkitStep } from "./nvidia-toolkit.js";
import { slurmAccountingStep } from "./slurm-accounting.js";
import { slurmControllerStep } from "./slurm-controller.js";
import { slurmNodeStep } from "./slurm-node.js";

export const allSteps: Step[] = [
  baseStep,
  dockerStep,
  nvidiaToolkitStep,
  agentStep,
  firewallStep,
  gpuFirewallStep,
  mungeStep,
  slurmAccountingStep,
  slurmControllerStep,
  slurmNodeStep,
  dispatcherContainerStep,
  dispatcherFirewallStep,
  backupTimerStep,
];

/** The steps that exist only when `lab.scheduler: slurm` (docs/slurm.md). */
export const slurmStepIds: readonly string[] = [mungeStep.id, slurmAccountingStep.id, slurmControllerStep.id, slurmNodeStep.id];

/** The steps of this lab: under labrig's own queue the Slurm steps are left out, not listed as skipped on every host. */
export function labSteps(inventory: Inventory): Step[] {
  return inventory.lab.scheduler === "slurm" ? allSteps : allSteps.filter((s) => !slurmStepIds.includes(s.id));
}
