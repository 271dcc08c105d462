// Where the agent keeps things in its workdir. Job outputs (synced) and the agent's own state (not
// synced) live in separate trees, so nothing of the agent's bookkeeping ends up in a run's files.
import { join } from "node:path";

export function agentPaths(workdir: string) {
  return {
    workdir,
    /** {hostId, url, agentToken}, mode 0600. */
    tokenFile: join(workdir, "agent-token.json"),
    /** {url, hostId, pid}: written once the agent is registered and listening. */
    infoFile: join(workdir, "agent.json"),
    jobsDir: join(workdir, "jobs"),
    outputDir: (jobId: string, attempt: number) => join(workdir, "jobs", jobId, `attempt-${attempt}`),
    /** A job's code snapshot, beside (not in) its synced outputs. */
    codeDir: (jobId: string, attempt: number) => join(workdir, "jobs", jobId, `attempt-${attempt}.code`),
    codeCacheDir: join(workdir, "code-cache"),
    recordsDir: join(workdir, "state", "jobs"),
    recordFile: (jobId: string) => join(workdir, "state", "jobs", `${jobId}.json`),
    syncStateFile: (jobId: string, attempt: number) => join(workdir, "state", "sync", `${jobId}.attempt-${attempt}.json`),
    exitFile: (jobId: string, attempt: number) => join(workdir, "state", "exit", `${jobId}.attempt-${attempt}`),
  };
}
export type AgentPaths = ReturnType<typeof agentPaths>;
