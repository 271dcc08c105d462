// The one abstraction every step runs things through: exec (optionally as root via `sudo -n`),
// write a file with owner and mode, read a file. Implementations supply only how to run a shell
// command and how to place bytes in a temporary file (ssh2 + SFTP for hosts, local processes for
// the control machine and tests); quoting, sudo and atomic installs live here once.
//
//   await remote.run("systemctl is-active docker", { sudo: true });
//   await remote.writeFile("/etc/labrig/agent.env", text, { mode: 0o600, owner: "root" });
import { randomBytes } from "node:crypto";
import { LabrigError } from "../core/errors.js";

export interface ExecOptions {
  /** Run as root through `sudo -n` (non-interactive: a sudo that wants a password is an error). */
  sudo?: boolean;
  /** Bytes for the command's stdin. */
  input?: string | Buffer;
  /** Give up after this long (default 10 minutes: apt installs are slow). */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface WriteFileOptions {
  mode: number;
  owner?: string;
  group?: string;
}

export interface Remote {
  /** The host's name as the inventory calls it. */
  readonly host: string;
  /** Runs `sh -c command`; never throws for a non-zero exit (see run). */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Runs and returns stdout; a non-zero exit throws RemoteCommandError with the stderr tail. */
  run(command: string, opts?: ExecOptions): Promise<string>;
  /** Writes the file atomically as root (parents created), with mode and owner. */
  writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void>;
  /** Reads a file as root; undefined when it does not exist. */
  readFile(path: string): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

export class RemoteCommandError extends LabrigError {
  constructor(
    readonly host: string,
    readonly command: string,
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(`on ${host}: \`${abbreviate(command)}\` exited ${exitCode}${stderr.trim() ? `: ${tail(stderr)}` : ""}`);
  }
}

export class SudoPasswordRequiredError extends LabrigError {
  constructor(
    readonly host: string,
    readonly user: string,
  ) {
    super(
      `on ${host}: sudo asks ${user} for a password, and provisioning needs sudo without one. ` +
        `On the host, run: echo '${user} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/${user} && sudo chmod 0440 /etc/sudoers.d/${user}`,
    );
  }
}

import { shq } from "../core/shell.js";

export { shq };

export function tail(text: string, lines = 8): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

function abbreviate(command: string): string {
  return command.length > 300 ? `${command.slice(0, 300)}…` : command;
}

/** What an implementation supplies; the rest is shared. */
export abstract class ShellRemote implements Remote {
  constructor(
    readonly host: string,
    /** The login user, for messages. */
    protected readonly user: string,
    /** True when commands already run as root (then sudo is not used). */
    protected readonly isRoot = false,
  ) {}

  protected abstract execShell(command: string, input: string | Buffer | undefined, timeoutMs: number): Promise<ExecResult>;
  /** Places bytes in a new file readable only by the login user, and returns its path. */
  protected abstract putTemp(content: Buffer): Promise<string>;
  abstract close(): Promise<void>;

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const wrapped = opts.sudo && !this.isRoot ? `sudo -n -- sh -c ${shq(command)}` : command;
    const res = await this.execShell(wrapped, opts.input, opts.timeoutMs ?? 600_000);
    if (opts.sudo && !this.isRoot && res.exitCode === 1 && /sudo: (a password is required|a terminal is required)/.test(res.stderr)) {
      throw new SudoPasswordRequiredError(this.host, this.user);
    }
    return res;
  }

  async run(command: string, opts: ExecOptions = {}): Promise<string> {
    const res = await this.exec(command, opts);
    if (res.exitCode !== 0) throw new RemoteCommandError(this.host, command, res.exitCode, res.stderr || res.stdout);
    return res.stdout;
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void> {
    const tmp = await this.putTemp(Buffer.isBuffer(content) ? content : Buffer.from(content));
    const staged = `${path}.labrig-${randomBytes(4).toString("hex")}`;
    const owner = opts.owner ?? "root";
    const group = opts.group ?? (opts.owner ? opts.owner : "root");
    // install copies with mode and owner; mv makes the switch atomic for readers of the file.
    await this.run(
      `mkdir -p "$(dirname ${shq(path)})" && install -m ${opts.mode.toString(8).padStart(4, "0")} -o ${shq(owner)} -g ${shq(group)} ${shq(tmp)} ${shq(staged)} && mv -f ${shq(staged)} ${shq(path)}; rc=$?; rm -f ${shq(tmp)}; exit $rc`,
      { sudo: true },
    );
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    const res = await this.exec(`if [ -e ${shq(path)} ]; then base64 -w0 ${shq(path)}; else echo -n ABSENT; fi`, { sudo: true });
    if (res.exitCode !== 0) throw new RemoteCommandError(this.host, `read ${path}`, res.exitCode, res.stderr);
    return res.stdout === "ABSENT" ? undefined : Buffer.from(res.stdout, "base64");
  }
}
