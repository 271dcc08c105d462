// What a provisioning step is: an id, which roles it serves, `check` (read facts, return the
// changes needed, touching nothing) and `apply` (make exactly those changes). Read, diff, then
// write, as pyinfra and Ansible do; `--dry-run` is `check` alone.
import type { Change } from "./change.js";
import type { HostSystem } from "./facts/host-system.js";
import type { HostConfig, Inventory } from "./inventory.js";
import type { JoinTokens } from "./join-tokens.js";
import type { Remote } from "./remote.js";
import type { SlurmCluster } from "./slurm-cluster.js";

export type Role = HostConfig["roles"][number];

export interface StepContext {
  host: HostConfig;
  inventory: Inventory;
  remote: Remote;
  /** The host's system as the runner read it before any step (absent: a step reads it itself, see hostSystemOf). */
  system?: HostSystem;
  /** Files on the control machine that steps upload (the agent bundle). */
  assets: { agentBundle?: string; /** --node-runtime: a Node binary for the hosts instead of the pinned package */ nodeRuntime?: string };
  /**
   * Where the agent step gets a host's join token (`labrig provision`: one made for the host at
   * the lab's dispatcher when it can); absent, the lab's shared join token (readJoinToken).
   */
  joinTokens?: JoinTokens;
  /** The facts of every Slurm host (slurm.conf lists them all), read once per run; the Slurm steps fail without it. */
  slurm?: SlurmCluster;
  /** Called by apply after each change it completed, so a failure can say what it left changed. */
  applied(change: Change): void;
  /** A line for the progress display. */
  log(message: string): void;
}

export interface CheckResult {
  /** What the step read, for --json and for tests (small values only). */
  facts: Record<string, unknown>;
  changes: Change[];
  /** Set when the step does not apply to this host (e.g. no NVIDIA driver); `changes` is then empty. */
  skip?: string;
  /** Set when the host cannot be brought to the desired state (e.g. gpu: required without a driver). */
  fail?: string;
}

export interface Step {
  id: string;
  description: string;
  /** Roles this step is for; "all" for every host. */
  roles: Role[] | "all";
  /** Set when a Synology's DSM owns what this step manages (apt, Docker, the firewall): skipped there, with this reason. */
  ownedByDsm?: string;
  check(ctx: StepContext): Promise<CheckResult>;
  apply(ctx: StepContext, changes: Change[]): Promise<void>;
}
