// SSH's ProxyJump for the inventory: `[user@]host[:port]`, several hops separated by commas (or a
// YAML list), the first hop nearest to this machine.
//
//   parseProxyJump("admin@bastion.lab:2222,10.0.0.1")  // [{address: "bastion.lab", port: 2222, user: "admin"}, {address: "10.0.0.1", port: 22}]
import { LabrigError } from "../core/errors.js";

/** One jump host. */
export interface SshHop {
  address: string;
  port: number;
  /** Default: the target's user. */
  user?: string;
}

export class ProxyJumpError extends LabrigError {}

/** `[user@]host[:port]`, several separated by commas, as SSH's ProxyJump takes them. */
export function parseProxyJump(spec: string | string[]): SshHop[] {
  const hops = (Array.isArray(spec) ? spec : [spec]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
  return hops.map((hop) => {
    const m = /^(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:@\s[\]]+)(?::(\d{1,5}))?$/.exec(hop);
    if (!m || (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535))) {
      throw new ProxyJumpError(`proxyJump '${hop}' is not [user@]host[:port]`);
    }
    const out: SshHop = { address: m[2]!.replace(/^\[|\]$/g, ""), port: m[3] ? Number(m[3]) : 22 };
    if (m[1]) out.user = m[1];
    return out;
  });
}

