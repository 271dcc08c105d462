// The writes steps share: planning a file against its current state, and carrying out the
// common kinds of change in order. A step's `apply` hands its changes here with the contents of
// the files it planned and the actions behind its "run" changes.
//
//   const change = planFile(state, { path, content, mode: 0o600, owner: "root" });
//   await applyChanges(ctx, changes, { files: new Map([[path, content]]) });
import { createHash } from "node:crypto";
import { LabrigError } from "../core/errors.js";
import { type Change, octal } from "./change.js";
import type { FileState } from "./facts/files.js";
import { shq, type Remote } from "./remote.js";
import type { StepContext } from "./step.js";

/** A file on this machine to send as is, by its hash (too big to hold in memory: the agent's Node runtime). */
export interface LocalFile {
  localPath: string;
  sha256: string;
}

export interface DesiredFile {
  path: string;
  content: string | Buffer | LocalFile;
  mode: number;
  owner?: string;
  group?: string;
  /** Checked on the host before it replaces the old file (WriteFileOptions.validate). */
  validate?: string;
}

export function sha256(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

function isLocalFile(content: DesiredFile["content"]): content is LocalFile {
  return typeof content === "object" && !Buffer.isBuffer(content);
}

/** The hash the file should have on the host. */
export function desiredSha256(want: Pick<DesiredFile, "content">): string {
  return isLocalFile(want.content) ? want.content.sha256 : sha256(want.content);
}

/** The change a file needs (none when content, mode and owner already match). */
export function planFile(state: FileState | undefined, want: DesiredFile, what = "file"): Change | undefined {
  const mode = octal(want.mode);
  const owner = `${want.owner ?? "root"}:${want.group ?? want.owner ?? "root"}`;
  const hash = desiredSha256(want);
  if (!state?.exists) return { kind: "write-file", path: want.path, mode, owner, sha256: hash, reason: `${what} missing` };
  if (state.sha256 !== hash) return { kind: "write-file", path: want.path, mode, owner, sha256: hash, reason: `${what} differs` };
  if (state.mode !== mode || `${state.owner}:${state.group}` !== owner) {
    return { kind: "set-mode", path: want.path, mode, owner, reason: `is ${state.mode} ${state.owner}:${state.group}` };
  }
  return undefined;
}

/** apt-get install, refreshing the package lists first when asked or when they are over a day old. */
export async function aptInstall(remote: Remote, packages: string[], opts: { refresh?: boolean } = {}): Promise<void> {
  const apt = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold";
  const update = opts.refresh
    ? `${apt} update`
    : `if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null)" ]; then ${apt} update; fi`;
  await remote.run(`${update} && ${apt} install --no-install-recommends ${packages.map(shq).join(" ")}`, { sudo: true, timeoutMs: 900_000 });
}

export interface ApplyInputs {
  /** Contents for the write-file changes, by path. */
  files?: Map<string, DesiredFile>;
  /** What to do for each "run" change, by its `what`. */
  runs?: Record<string, () => Promise<void>>;
}

/** Carries out changes in order, reporting each one done to ctx.applied. */
export async function applyChanges(ctx: StepContext, changes: Change[], inputs: ApplyInputs = {}): Promise<void> {
  const r = ctx.remote;
  for (const c of changes) {
    switch (c.kind) {
      case "install-packages":
        await aptInstall(r, c.packages, { refresh: c.refresh });
        break;
      case "write-file": {
        const f = inputs.files?.get(c.path);
        if (!f) throw new LabrigError(`internal: no content planned for ${c.path}`);
        const opts = { mode: f.mode, owner: f.owner, group: f.group, validate: f.validate };
        await (isLocalFile(f.content) ? r.uploadFile(f.content.localPath, f.path, opts) : r.writeFile(f.path, f.content, opts));
        break;
      }
      case "set-mode": {
        const [owner, group] = c.owner.split(":");
        await r.run(`chown ${shq(owner!)}:${shq(group!)} ${shq(c.path)} && chmod ${c.mode} ${shq(c.path)}`, { sudo: true });
        break;
      }
      case "daemon-reload":
        await r.run("systemctl daemon-reload", { sudo: true });
        break;
      case "enable-unit":
        await r.run(`systemctl enable ${shq(c.unit)}`, { sudo: true });
        break;
      case "start-unit":
        await r.run(`systemctl start ${shq(c.unit)}`, { sudo: true });
        break;
      case "restart-unit":
        await r.run(`systemctl restart ${shq(c.unit)}`, { sudo: true });
        break;
      case "add-to-group":
        await r.run(`usermod -aG ${shq(c.group)} ${shq(c.user)}`, { sudo: true });
        break;
      case "ufw-default":
        await r.run(`ufw default ${c.policy} ${c.direction}`, { sudo: true });
        break;
      case "ufw-add":
        await r.run(`ufw ${c.rule} comment labrig`, { sudo: true });
        break;
      case "ufw-delete":
        await r.run(`ufw delete ${c.rule}`, { sudo: true });
        break;
      case "ufw-enable":
        await r.run("ufw --force enable", { sudo: true });
        break;
      case "dispatcher-folders":
      case "dispatcher-image":
      case "dispatcher-container":
      case "dispatcher-tokens":
        throw new LabrigError(`internal: a ${c.kind} change is applied by the dispatcher-container step, not applyChanges`);
      case "run": {
        const action = inputs.runs?.[c.what];
        if (!action) throw new LabrigError(`internal: no action for '${c.what}'`);
        await action();
        break;
      }
    }
    ctx.applied(c);
  }
}
