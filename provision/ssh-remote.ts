// The Remote for lab hosts: one ssh2 connection per host, reused by every command and SFTP upload,
// key authentication through the SSH agent and/or an identity file, host keys pinned in a
// known_hosts file, timeouts, and one reconnect-and-retry when the connection drops.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import ssh2, { type ConnectConfig, type SFTPWrapper } from "ssh2";
import { LabrigError } from "../core/errors.js";
import { verifyHostKey } from "./known-hosts.js";
import { type ExecResult, ShellRemote } from "./remote.js";

export interface SshTarget {
  host: string;
  address: string;
  port: number;
  user: string;
  identityFile?: string;
}

export interface SshOptions {
  knownHostsFile: string;
  /** Told about a host key recorded on first use. */
  onNotice?: (message: string) => void;
  connectTimeoutMs?: number;
}

export class SshConnectError extends LabrigError {}

/** The connection broke under a command (not the command failing): worth one retry. */
class ConnectionDropped extends Error {}

export class SshRemote extends ShellRemote {
  private conn?: Promise<ssh2.Client>;
  private sftp?: Promise<SFTPWrapper>;

  constructor(
    private readonly target: SshTarget,
    private readonly opts: SshOptions,
  ) {
    super(target.host, target.user, target.user === "root");
  }

  protected async execShell(command: string, input: string | Buffer | undefined, timeoutMs: number): Promise<ExecResult> {
    try {
      return await this.execOnce(command, input, timeoutMs);
    } catch (err) {
      if (!(err instanceof ConnectionDropped)) throw err;
      this.reset();
      return await this.execOnce(command, input, timeoutMs);
    }
  }

  protected async putTemp(content: Buffer): Promise<string> {
    const path = `/tmp/.labrig-upload-${randomBytes(6).toString("hex")}`;
    const put = async () => {
      const sftp = await this.getSftp();
      await new Promise<void>((resolve, reject) =>
        sftp.writeFile(path, content, { mode: 0o600 }, (err) => (err ? reject(new ConnectionDropped(err.message)) : resolve())),
      );
    };
    try {
      await put();
    } catch (err) {
      if (!(err instanceof ConnectionDropped)) throw err;
      this.reset();
      await put();
    }
    return path;
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.reset();
    if (conn) (await conn.catch(() => undefined))?.end();
  }

  private reset() {
    this.conn?.then((c) => c.end()).catch(() => undefined);
    this.conn = undefined;
    this.sftp = undefined;
  }

  private async execOnce(command: string, input: string | Buffer | undefined, timeoutMs: number): Promise<ExecResult> {
    const client = await this.connect();
    return await new Promise<ExecResult>((resolve, reject) => {
      client.exec(command, (err, stream) => {
        if (err) return reject(new ConnectionDropped(err.message));
        let stdout = "";
        let stderr = "";
        let exitCode: number | undefined;
        const timer = setTimeout(() => {
          stream.close();
          reject(new LabrigError(`on ${this.target.host}: \`${command.slice(0, 200)}\` did not finish in ${Math.round(timeoutMs / 1000)} s`));
        }, timeoutMs);
        stream.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
        stream.on("exit", (code: number | null, signal?: string) => {
          exitCode = code ?? (signal ? 128 : 255);
        });
        stream.on("close", () => {
          clearTimeout(timer);
          if (exitCode === undefined) reject(new ConnectionDropped("the channel closed without an exit status"));
          else resolve({ stdout, stderr, exitCode });
        });
        if (input !== undefined) stream.end(input);
        else stream.end();
      });
    });
  }

  private getSftp(): Promise<SFTPWrapper> {
    this.sftp ??= this.connect().then(
      (client) => new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, sftp) => (err ? reject(new ConnectionDropped(err.message)) : resolve(sftp)))),
    );
    this.sftp.catch(() => (this.sftp = undefined));
    return this.sftp;
  }

  private connect(): Promise<ssh2.Client> {
    this.conn ??= this.openConnection();
    const conn = this.conn;
    conn.catch(() => {
      if (this.conn === conn) this.conn = undefined;
    });
    return conn;
  }

  private openConnection(): Promise<ssh2.Client> {
    const { host, address, port, user, identityFile } = this.target;
    const config: ConnectConfig = { host: address, port, username: user, readyTimeout: this.opts.connectTimeoutMs ?? 20_000, keepaliveInterval: 15_000 };
    if (process.env.SSH_AUTH_SOCK) config.agent = process.env.SSH_AUTH_SOCK;
    if (identityFile) {
      try {
        config.privateKey = readFileSync(identityFile);
      } catch (err) {
        if (!config.agent) {
          return Promise.reject(new SshConnectError(`cannot read the identity file ${identityFile} for ${host} (${(err as NodeJS.ErrnoException).code}); set identityFile in the inventory or start an ssh-agent`));
        }
      }
    }
    if (!config.agent && !config.privateKey) {
      return Promise.reject(new SshConnectError(`no SSH key for ${host}: set identityFile in the inventory or start an ssh-agent (SSH_AUTH_SOCK)`));
    }
    let hostKeyError: LabrigError | undefined;
    config.hostVerifier = (key: Buffer) => {
      const verdict = verifyHostKey(this.opts.knownHostsFile, host, address, port, key);
      if (verdict.status === "changed") {
        hostKeyError = verdict.error;
        return false;
      }
      if (verdict.status === "recorded") this.opts.onNotice?.(`recorded the host key of ${host} (${address}): ${verdict.fingerprint} in ${this.opts.knownHostsFile}`);
      return true;
    };
    return new Promise((resolve, reject) => {
      const client = new ssh2.Client();
      client.once("ready", () => resolve(client));
      client.once("error", (err: Error & { level?: string }) => {
        if (hostKeyError) return reject(hostKeyError);
        const how = err.level === "client-authentication" ? `the key was refused for ${user}@${address}` : err.message;
        reject(new SshConnectError(`cannot connect to ${host} (${user}@${address}:${port}): ${how}`, { cause: err }));
      });
      client.on("close", () => {
        if (this.conn && client) this.conn.then((c) => c === client && this.reset()).catch(() => undefined);
      });
      client.connect(config);
    });
  }
}
