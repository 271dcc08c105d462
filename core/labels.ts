// The Docker labels labrig puts on containers and reads back: the agent on a job's container, the
// provisioning step on the dispatcher's, the dashboard's Containers view on both.
export const CONTAINER_LABELS = {
  /** On a job's container: the job id. */
  job: "labrig.job",
  attempt: "labrig.attempt",
  host: "labrig.host",
  /** On the dispatcher container: "dispatcher". */
  role: "org.labrig.role",
  /** On the dispatcher container: the hash of the settings it was created from (a change replaces it). */
  configHash: "org.labrig.config-hash",
} as const;
