// Step `slurm-controller`: slurmctld from Debian's packages (with slurm-client: sinfo, srun,
// scontrol) on the host with role slurm-controller, under the cluster's slurm.conf, gres.conf and
// cgroup.conf (slurm-conf.ts), enabled and answering `scontrol ping`. lab.scheduler: slurm only.
import type { Step } from "../step.js";
import { applySlurmDaemon, checkSlurmDaemon, type SlurmDaemon, waitForDaemon } from "./slurm-daemon.js";

const slurmctld: SlurmDaemon = {
  unit: "slurmctld.service",
  packages: ["slurmctld", "slurm-client"],
  ownFiles: () => [],
  sharesFilesWith: (ctx) => (ctx.host.roles.includes("gpu") ? ["slurmd.service"] : []),
  ready: (ctx) => waitForDaemon(ctx, "slurmctld.service", "scontrol ping | grep -q ' is UP'", "slurmctld did not answer `scontrol ping`"),
};

export const slurmControllerStep: Step = {
  id: "slurm-controller",
  description: "slurmctld with the cluster's slurm.conf, gres.conf and cgroup.conf, enabled and answering",
  roles: ["slurm-controller"],
  check: (ctx) => checkSlurmDaemon(ctx, slurmctld),
  apply: (ctx, changes) => applySlurmDaemon(ctx, slurmctld, changes),
};
