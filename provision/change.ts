// A change a step wants to make, as data: what kind, on what, and why. Plans print, serialise to
// --json and are tested without a host; `describeChange` gives the one line a person reads.
export type Change =
  | { kind: "install-packages"; packages: string[]; /** refresh the package lists first (a repository was added) */ refresh?: boolean; reason: string }
  | { kind: "write-file"; path: string; mode: string; owner: string; sha256: string; reason: string }
  | { kind: "set-mode"; path: string; mode: string; owner: string; reason: string }
  | { kind: "daemon-reload"; reason: string }
  | { kind: "enable-unit"; unit: string; reason: string }
  | { kind: "start-unit"; unit: string; reason: string }
  | { kind: "restart-unit"; unit: string; reason: string }
  | { kind: "add-to-group"; user: string; group: string; reason: string }
  | { kind: "ufw-default"; direction: "incoming" | "outgoing"; policy: "allow" | "deny"; reason: string }
  | { kind: "ufw-add"; rule: string; reason: string }
  | { kind: "ufw-delete"; rule: string; reason: string }
  | { kind: "ufw-enable"; reason: string }
  | { kind: "run"; what: string; reason: string }
  | DispatcherChange;

/**
 * The dispatcher-container step's own changes (steps/dispatcher-container.ts applies them): each
 * carries what its apply needs, so apply acts on the facts the plan was made from.
 */
export type DispatcherChange =
  | { kind: "dispatcher-folders"; dataDir: string; owner: string; reason: string }
  | { kind: "dispatcher-image"; action: "pull" | "send"; image: string; reason: string }
  | {
      kind: "dispatcher-container";
      action: "create" | "replace" | "start";
      container: string;
      /** Where its folders are, and its own backup schedule's variables (create and replace). */
      dataDir: string;
      backupEnv?: Record<string, string>;
      /** The container a replace keeps aside until the new one is healthy. */
      previousId?: string;
      reason: string;
    }
  | { kind: "dispatcher-tokens"; lab: string; dataDir: string; reason: string };

export function describeChange(c: Change): string {
  switch (c.kind) {
    case "install-packages":
      return `install ${c.packages.join(", ")} (${c.reason})`;
    case "write-file":
      return `write ${c.path} (${c.mode} ${c.owner}) (${c.reason})`;
    case "set-mode":
      return `set ${c.path} to ${c.mode} ${c.owner} (${c.reason})`;
    case "daemon-reload":
      return `systemctl daemon-reload (${c.reason})`;
    case "enable-unit":
      return `enable ${c.unit} (${c.reason})`;
    case "start-unit":
      return `start ${c.unit} (${c.reason})`;
    case "restart-unit":
      return `restart ${c.unit} (${c.reason})`;
    case "add-to-group":
      return `add ${c.user} to group ${c.group} (${c.reason})`;
    case "ufw-default":
      return `ufw default ${c.policy} ${c.direction} (${c.reason})`;
    case "ufw-add":
      return `ufw ${c.rule} (${c.reason})`;
    case "ufw-delete":
      return `ufw delete ${c.rule} (${c.reason})`;
    case "ufw-enable":
      return `ufw enable (${c.reason})`;
    case "run":
      return `${c.what} (${c.reason})`;
    case "dispatcher-folders":
      return `create folders under ${c.dataDir} (${c.reason})`;
    case "dispatcher-image":
      return `${c.action === "pull" ? `pull image ${c.image}` : `send image ${c.image} from this machine`} (${c.reason})`;
    case "dispatcher-container":
      return `${c.action} container ${c.container} (${c.reason})`;
    case "dispatcher-tokens":
      return `save the dispatcher's tokens for lab ${c.lab} (${c.reason})`;
  }
}

export function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}
