// Step `slurm-node`: slurmd from Debian's packages on every GPU host (role gpu) of a lab with
// lab.scheduler: slurm, under the cluster's slurm.conf, gres.conf and cgroup.conf (the same files
// as the controller's), started as the node slurm.conf calls it (`-N <inventory name>` in
// /etc/default/slurmd, so the host's own hostname does not matter), enabled and running.
import type { Step } from "../step.js";
import { applySlurmDaemon, checkSlurmDaemon, type SlurmDaemon, waitForDaemon } from "./slurm-daemon.js";

export const slurmdDefaultsPath = "/etc/default/slurmd";

const slurmd: SlurmDaemon = {
  unit: "slurmd.service",
  packages: ["slurmd"],
  ownFiles: (ctx) => [
    { path: slurmdDefaultsPath, content: `# Written by labrig provision: this host is node ${ctx.host.name} of slurm.conf.\nSLURMD_OPTIONS="-N ${ctx.host.name}"\n`, mode: 0o644 },
  ],
  // slurmd has no Restart=: one that read a bad configuration has exited within a second or two.
  ready: (ctx) => waitForDaemon(ctx, "slurmd.service", "sleep 2; systemctl is-active --quiet slurmd.service", "slurmd did not stay running"),
};

export const slurmNodeStep: Step = {
  id: "slurm-node",
  description: "slurmd with the cluster's slurm.conf, gres.conf and cgroup.conf, as its node of slurm.conf",
  roles: ["gpu"],
  check: (ctx) => checkSlurmDaemon(ctx, slurmd),
  apply: (ctx, changes) => applySlurmDaemon(ctx, slurmd, changes),
};
