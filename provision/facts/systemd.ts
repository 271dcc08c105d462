// Fact: systemd units' enabled and active states, in one command.
//   await unitStates(remote, ["docker.service"])  // Map { "docker.service" => {enabled:"enabled", active:"active"} }
import { shq, type Remote } from "../remote.js";

export interface UnitState {
  /** enabled, disabled, static, masked, not-found, … */
  enabled: string;
  /** active, inactive, failed, activating, … */
  active: string;
}

export async function unitStates(remote: Remote, units: string[]): Promise<Map<string, UnitState>> {
  const script = units.map((u) => `printf '%s|%s\\n' "$(systemctl is-enabled ${shq(u)} 2>/dev/null || true)" "$(systemctl is-active ${shq(u)} 2>/dev/null || true)"`).join("; ");
  const lines = (await remote.run(script)).split("\n");
  return new Map(
    units.map((u, i) => {
      const [enabled, active] = (lines[i] ?? "").trim().split("|");
      return [u, { enabled: enabled || "not-found", active: active || "inactive" }];
    }),
  );
}
