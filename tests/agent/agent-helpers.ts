// Shared bits of the agent's integration tests: short dispatcher thresholds, waiting for job
// states, reading an agent's /status, and checking that a job's process group is gone.
import type { Job, JobState } from "../../core/api.js";
import type { DispatcherClient } from "../../core/client.js";
import { rmSync } from "node:fs";
import { liveGroupMembers, signalGroup } from "../../agent/process-group.js";
import type { AgentProcess } from "../helpers/agent-process.js";
import { SMALL_JOB_DEFAULTS, type DispatcherProcess } from "../helpers/dispatcher-process.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Jobs' default cores and memory small enough for the machine the tests run on: agents report its
 * real cores and memory (a CI machine may have 2 cores), and the lab's defaults (4 cores, 16 GiB a
 * GPU) would leave every job waiting for a host that could never run it.
 */
export const smallJobsEnv = SMALL_JOB_DEFAULTS;
/** Short thresholds for tests that wait for a silent agent to be declared lost (disconnected and lost at once). */
export const fastDispatcherEnv = { ...smallJobsEnv, LABRIG_STALE_AFTER_S: "1", LABRIG_DISCONNECT_AFTER_S: "3", LABRIG_LOST_AFTER_S: "3", LABRIG_HEARTBEAT_S: "1" };
/** For the rest: heartbeats as fast, but a busy CI machine delaying one must not lose a host. */
export const steadyDispatcherEnv = { ...smallJobsEnv, LABRIG_STALE_AFTER_S: "3", LABRIG_DISCONNECT_AFTER_S: "15", LABRIG_HEARTBEAT_S: "1" };

export function waitForJob(admin: DispatcherClient, id: string, ok: (j: Job) => boolean, what: string, timeoutMs = 20_000): Promise<Job> {
  return waitFor(`job ${id} ${what}`, () => admin.job(id), ok, timeoutMs, 100);
}

export function waitForState(admin: DispatcherClient, id: string, state: JobState, timeoutMs = 20_000): Promise<Job> {
  return waitForJob(admin, id, (j) => j.state === state, `to be ${state}`, timeoutMs);
}

export interface AgentStatus {
  hostId: string;
  gpus: { index: number; name: string }[];
  runningJobs: { id: string; attempt: number; pgid: number | null; phase: string }[];
}

export async function agentStatus(agent: AgentProcess, token = agent.agentToken()): Promise<AgentStatus> {
  const res = await fetch(`${agent.url}/status`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${agent.url}/status: ${res.status} ${await res.text()}`);
  return (await res.json()) as AgentStatus;
}

/** The process group of a job while it runs on this agent, from the agent's /status. */
export async function jobGroup(agent: AgentProcess, jobId: string): Promise<number> {
  const s = await waitFor(
    `job ${jobId} running with a process group on ${agent.hostId}`,
    () => agentStatus(agent),
    (st) => st.runningJobs.some((j) => j.id === jobId && j.pgid !== null),
    15_000,
  );
  return s.runningJobs.find((j) => j.id === jobId)!.pgid!;
}

export function groupGone(pgid: number): boolean {
  return liveGroupMembers(pgid).length === 0;
}

/** What a test started (processes, job groups, folders), removed after each test; agents' output is printed when it failed. */
export interface Started {
  agents: AgentProcess[];
  dispatchers: DispatcherProcess[];
  groups: number[];
  dirs: string[];
}

export function startedProcesses(): { started: Started; removeAll(failed: boolean): Promise<void> } {
  const started: Started = { agents: [], dispatchers: [], groups: [], dirs: [] };
  return {
    started,
    async removeAll(failed: boolean) {
      if (failed || process.env.SHOW_AGENT_OUTPUT) for (const a of started.agents) console.error(`--- agent ${a.hostId} ---\n${a.output().slice(-4000)}`);
      for (const g of started.groups) signalGroup(g, "SIGKILL");
      for (const a of started.agents.reverse()) {
        await a.kill();
        a.cleanup();
      }
      for (const d of started.dispatchers.reverse()) {
        await d.kill();
        d.cleanup();
      }
      for (const dir of started.dirs) rmSync(dir, { recursive: true, force: true });
      Object.assign(started, { agents: [], dispatchers: [], groups: [], dirs: [] });
    },
  };
}
