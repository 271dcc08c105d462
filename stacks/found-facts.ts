// What a stack exports per host (OS, Docker version, NVIDIA driver, GPUs), read after a step is
// applied: from the step's own facts where it has them, else with one small command.
//   await readFoundFacts("nvidia-toolkit", remote, facts)  // {driver: "550.54.15", gpus: ["NVIDIA A100-SXM4-80GB", ...]}
import type { Remote } from "../provision/remote.js";
import type { FoundFacts } from "./graph.js";

/** `nvidia-smi --query-gpu=name,driver_version --format=csv,noheader` → the driver and the GPU names. */
export function parseGpuQuery(text: string): { driver?: string; gpus: string[] } {
  const rows = text.trim().split("\n").map((l) => l.split(",").map((f) => f.trim())).filter((r) => r.length >= 2 && r[0]);
  return { ...(rows[0] ? { driver: rows[0][1] } : {}), gpus: rows.map((r) => r[0]!) };
}

export async function readFoundFacts(step: string, remote: Remote, facts: Record<string, unknown>): Promise<FoundFacts> {
  switch (step) {
    case "base": {
      const res = await remote.exec(`. /etc/os-release && printf '%s' "$PRETTY_NAME"`);
      return res.exitCode === 0 && res.stdout ? { os: res.stdout } : {};
    }
    case "docker":
      return typeof facts.serverVersion === "string" ? { docker: facts.serverVersion } : {};
    case "nvidia-toolkit": {
      if (facts.driver !== true) return { gpus: [] };
      const res = await remote.exec("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader");
      return res.exitCode === 0 ? parseGpuQuery(res.stdout) : { gpus: [] };
    }
    default:
      return {};
  }
}
