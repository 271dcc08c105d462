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
  /**
   * A command run as root on the new file before it replaces the old one, `%s` standing for its
   * path (as Ansible's `validate:`); when it fails the old file stays and the error carries its output.
   */
  validate?: string;
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
  /** Like writeFile, from a file on this machine, streamed (for files too big to hold in memory: the agent's Node runtime). */
  uploadFile(localPath: string, path: string, opts: WriteFileOptions): Promise<void>;
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
      `on ${host}: sudo asks ${user} for a password: run again with --ask-sudo-pass (asked once, kept in memory only), ` +
        `or give ${user} sudo without one; on the host: echo '${user} ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/${user} && sudo chmod 0440 /etc/sudoers.d/${user}`,
    );
  }
}

export class SudoPasswordWrongError extends LabrigError {
  constructor(
    readonly host: string,
    readonly user: string,
  ) {
    super(`on ${host}: sudo refused the password given with --ask-sudo-pass for ${user}; run again and type ${user}'s login password on that host`);
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
  /** The login user's sudo password (--ask-sudo-pass): in memory only, sent on stdin, never in a command line. */
  readonly #sudoPassword: string | undefined;
  #sudoMode?: Promise<"nopasswd" | "password">;

  constructor(
    readonly host: string,
    /** The login user, for messages. */
    protected readonly user: string,
    /** True when commands already run as root (then sudo is not used). */
    protected readonly isRoot = false,
    sudoPassword?: string,
  ) {
    this.#sudoPassword = sudoPassword;
  }

  protected abstract execShell(command: string, input: string | Buffer | undefined, timeoutMs: number): Promise<ExecResult>;
  /** Places bytes in a new file readable only by the login user, and returns its path. */
  protected abstract putTemp(content: Buffer): Promise<string>;
  /** Places a copy of a local file in a new file readable only by the login user, and returns its path. */
  protected abstract putTempFile(localPath: string): Promise<string>;
  abstract close(): Promise<void>;

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const { wrapped, preamble } = await this.asRoot(command, !!opts.sudo);
    const input = preamble ? Buffer.concat([preamble, Buffer.from(opts.input ?? "")]) : opts.input;
    const res = await this.execShell(wrapped, input, opts.timeoutMs ?? 600_000);
    if (opts.sudo && !this.isRoot && res.exitCode === 1 && /sudo: (a password is required|a terminal is required)/.test(res.stderr)) {
      throw new SudoPasswordRequiredError(this.host, this.user);
    }
    return res;
  }

  /**
   * The command as root: as is for root, `sudo -n` without a password, and with one `sudo -k -S`
   * reading it as the first line of stdin (-k: always asked, so the line is never left over for
   * the command). Whether this host's sudo wants it at all is checked once, and a wrong one stops here.
   */
  protected async asRoot(command: string, sudo: boolean): Promise<{ wrapped: string; preamble?: Buffer }> {
    if (!sudo || this.isRoot) return { wrapped: command };
    const password = this.#sudoPassword;
    if (password === undefined || (await this.sudoMode(password)) === "nopasswd") return { wrapped: `sudo -n -- sh -c ${shq(command)}` };
    return { wrapped: `sudo -k -S -p '' -- sh -c ${shq(command)}`, preamble: Buffer.from(`${password}\n`) };
  }

  private sudoMode(password: string): Promise<"nopasswd" | "password"> {
    this.#sudoMode ??= (async () => {
      if ((await this.execShell("sudo -n -k -- true", undefined, 60_000)).exitCode === 0) return "nopasswd";
      const res = await this.execShell("sudo -k -S -p '' -- true", `${password}\n`, 60_000);
      if (res.exitCode !== 0) throw new SudoPasswordWrongError(this.host, this.user);
      return "password";
    })();
    // A refused password is not tried again (each try may count towards a lockout); anything else may be.
    this.#sudoMode.catch((err: unknown) => {
      if (!(err instanceof SudoPasswordWrongError)) this.#sudoMode = undefined;
    });
    return this.#sudoMode;
  }

  async run(command: string, opts: ExecOptions = {}): Promise<string> {
    const res = await this.exec(command, opts);
    if (res.exitCode !== 0) throw new RemoteCommandError(this.host, command, res.exitCode, res.stderr || res.stdout);
    return res.stdout;
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void> {
    await this.installTemp(await this.putTemp(Buffer.isBuffer(content) ? content : Buffer.from(content)), path, opts);
  }

  async uploadFile(localPath: string, path: string, opts: WriteFileOptions): Promise<void> {
    await this.installTemp(await this.putTempFile(localPath), path, opts);
  }

  private async installTemp(tmp: string, path: string, opts: WriteFileOptions): Promise<void> {
    const staged = `${path}.labrig-${randomBytes(4).toString("hex")}`;
    const owner = opts.owner ?? "root";
    const group = opts.group ?? (opts.owner ? opts.owner : "root");
    // A subshell, so that a check which exits still leaves the clean-up below to run.
    const validate = opts.validate ? ` && ( ${opts.validate.replaceAll("%s", shq(staged))} )` : "";
    // install copies with mode and owner; mv makes the switch atomic for readers of the file.
    await this.run(
      `mkdir -p "$(dirname ${shq(path)})" && install -m ${opts.mode.toString(8).padStart(4, "0")} -o ${shq(owner)} -g ${shq(group)} ${shq(tmp)} ${shq(staged)}${validate} && mv -f ${shq(staged)} ${shq(path)}; rc=$?; rm -f ${shq(tmp)} ${shq(staged)}; exit $rc`,
      { sudo: true },
    );
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    const res = await this.exec(`if [ -e ${shq(path)} ]; then base64 -w0 ${shq(path)}; else echo -n ABSENT; fi`, { sudo: true });
    if (res.exitCode !== 0) throw new RemoteCommandError(this.host, `read ${path}`, res.exitCode, res.stderr);
    return res.stdout === "ABSENT" ? undefined : Buffer.from(res.stdout, "base64");
  }
}
