// What the job supervisor needs from a running job, whether it is a process group or a container.

export interface JobExit {
  /** The job's exit code; null when it was killed by a signal or its status is unknown. */
  exitCode: number | null;
  signal?: string | null;
  /** Why it could not run at all (a missing workdir, an engine error). */
  message?: string;
}

export interface JobHandle {
  kind: "process" | "container";
  /** Process group id (its leader's pid) of a process job. */
  pgid?: number;
  containerId?: string;
  /** Resolves once the job has ended and nothing of it is left running. */
  exited: Promise<JobExit>;
  /** SIGTERM (docker stop for a container), SIGKILL after graceMs; resolves when it has ended. */
  stop(graceMs: number): Promise<void>;
  /** Forget the job without stopping it (the agent leaves it running: --keep-jobs). */
  detach(): void;
}
