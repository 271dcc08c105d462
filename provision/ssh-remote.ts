// The Remote for lab hosts: one ssh2 connection per host, reused by every command and SFTP upload,
// key authentication through the SSH agent and/or an identity file, host keys pinned in a
// known_hosts file, timeouts, and one reconnect-and-retry when the connection drops. A host behind
// jump hosts (SSH's ProxyJump) is reached through a chain of connections, each hop's key pinned,
// each next hop a direct-tcpip channel (forwardOut) of the one before.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Duplex } from "node:stream";
import ssh2, { type ConnectConfig, type SFTPWrapper } from "ssh2";
import { LabrigError } from "../core/errors.js";
import type { HostConfig } from "./inventory.js";
import { knownHostsPattern, verifyHostKey } from "./known-hosts.js";
import { parseProxyJump, type SshHop } from "./proxy-jump.js";
import { type ExecResult, ShellRemote } from "./remote.js";

export { parseProxyJump, type SshHop } from "./proxy-jump.js";

export interface SshTarget {
  host: string;
  address: string;
  port: number;
  user: string;
  identityFile?: string;
  /** Jump hosts in the order the connection passes them. */
  jumps?: SshHop[];
}

export interface SshOptions {
  knownHostsFile: string;
  /** Told about a host key recorded on first use. */
  onNotice?: (message: string) => void;
  connectTimeoutMs?: number;
  /** The login user's sudo password when its sudo asks for one (--ask-sudo-pass). */
  sudoPassword?: string;
  /** Record the key of a host seen for the first time (default); false: only pinned keys pass (the dashboard). */
  pinNew?: boolean;
}

/** How an inventory host is reached: its address, user, key and jump hosts. */
export function sshTarget(host: HostConfig): SshTarget {
  const target: SshTarget = { host: host.name, address: host.address, port: host.port, user: host.user, identityFile: host.identityFile };
  if (host.proxyJump) target.jumps = parseProxyJump(host.proxyJump);
  return target;
}

export class HostKeyNotPinnedError extends LabrigError {
  constructor(host: string, address: string, file: string) {
    super(`${host}'s SSH host key (${address}) is not pinned in ${file}; run labrig provision --host ${host} once, which pins it`);
  }
}

/**
 * An ssh2 connection to the target, through its jump hosts; ending it ends the hops too. Every
 * hop authenticates with the target's key (or agent) and has its host key checked against the file.
 */
export async function connectSsh(target: SshTarget, opts: Omit<SshOptions, "sudoPassword">): Promise<ssh2.Client> {
  const { host, address, port, user, identityFile } = target;
  const auth: ConnectConfig = {};
  if (process.env.SSH_AUTH_SOCK) auth.agent = process.env.SSH_AUTH_SOCK;
  if (identityFile) {
    try {
      auth.privateKey = readFileSync(identityFile);
    } catch (err) {
      if (!auth.agent) {
        throw new SshConnectError(`cannot read the identity file ${identityFile} for ${host} (${(err as NodeJS.ErrnoException).code}); set identityFile in the inventory or start an ssh-agent`);
      }
    }
  }
  if (!auth.agent && !auth.privateKey) throw new SshConnectError(`no SSH key for ${host}: set identityFile in the inventory or start an ssh-agent (SSH_AUTH_SOCK)`);

  const jumps = target.jumps ?? [];
  const chain = [
    ...jumps.map((j, i) => ({ label: `jump host ${j.address}`, address: j.address, port: j.port, user: j.user ?? user, via: jumps.slice(0, i) })),
    { label: host, address, port, user, via: jumps },
  ];
  const clients: ssh2.Client[] = [];
  const endAll = () => clients.forEach((c) => c.end());
  try {
    let sock: Duplex | undefined;
    for (const [i, hop] of chain.entries()) {
      const client = await connectHop(hop, sock, auth, opts, host);
      clients.push(client);
      const next = chain[i + 1];
      if (next) sock = await forwardOut(client, next.address, next.port, hop.label, next.label);
    }
  } catch (err) {
    endAll();
    throw err;
  }
  const final = clients[clients.length - 1]!;
  final.on("close", endAll);
  return final;
}

async function connectHop(
  hop: { label: string; address: string; port: number; user: string; via: SshHop[] },
  sock: Duplex | undefined,
  auth: ConnectConfig,
  opts: Omit<SshOptions, "sudoPassword">,
  target: string,
): Promise<ssh2.Client> {
  const config: ConnectConfig = { ...auth, host: hop.address, port: hop.port, username: hop.user, readyTimeout: opts.connectTimeoutMs ?? 20_000, keepaliveInterval: 15_000 };
  if (sock) config.sock = sock;
  let hostKeyError: LabrigError | undefined;
  config.hostVerifier = (key: Buffer) => {
    const verdict = verifyHostKey(opts.knownHostsFile, hop.label, hop.address, hop.port, key, { pinNew: opts.pinNew });
    if (verdict.status === "unpinned") {
      hostKeyError = new HostKeyNotPinnedError(hop.label, knownHostsPattern(hop.address, hop.port), opts.knownHostsFile);
      return false;
    }
    if (verdict.status === "changed") {
      hostKeyError = verdict.error;
      return false;
    }
    if (verdict.status === "recorded") opts.onNotice?.(`recorded the host key of ${hop.label} (${hop.address}): ${verdict.fingerprint} in ${opts.knownHostsFile}`);
    return true;
  };
  const through = hop.via.length ? ` through ${hop.via.map((v) => v.address).join(" → ")}` : "";
  const forTarget = hop.label === target ? "" : ` (on the way to ${target})`;
  return await new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once("ready", () => resolve(client));
    client.once("error", (err: Error & { level?: string }) => {
      if (hostKeyError) return reject(hostKeyError);
      const how = err.level === "client-authentication" ? `the key was refused for ${hop.user}@${hop.address}` : err.message;
      reject(new SshConnectError(`cannot connect to ${hop.label}${forTarget} (${hop.user}@${hop.address}:${hop.port})${through}: ${how}`, { cause: err }));
    });
    client.connect(config);
  });
}

function forwardOut(client: ssh2.Client, address: string, port: number, from: string, to: string): Promise<Duplex> {
  return new Promise((resolve, reject) =>
    client.forwardOut("127.0.0.1", 0, address, port, (err, channel) =>
      err ? reject(new SshConnectError(`${from} cannot open a connection to ${to} (${address}:${port}): ${err.message}`, { cause: err })) : resolve(channel),
    ),
  );
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
    super(target.host, target.user, target.user === "root", opts.sudoPassword);
  }

  /**
   * A byte stream to a command on the host, as root when asked (the sudo password, if any, goes
   * first on its stdin and never reaches the command): how dockerode reaches the host's engine
   * through `docker system dial-stdio` over the same connection and jump hosts as every command.
   */
  async openStream(command: string, opts: { sudo?: boolean } = {}): Promise<Duplex> {
    const { wrapped, preamble } = await this.asRoot(command, !!opts.sudo);
    const client = await this.connect();
    return await new Promise<Duplex>((resolve, reject) =>
      client.exec(wrapped, (err, channel) => {
        if (err) return reject(new SshConnectError(`on ${this.target.host}: cannot open an SSH channel: ${err.message}`, { cause: err }));
        let stderr = "";
        channel.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        channel.on("exit", (code: number | null) => {
          if (code) channel.emit("error", new LabrigError(`on ${this.target.host}: \`${command.slice(0, 200)}\` exited ${code}: ${stderr.trim().split("\n").slice(-3).join(" ")}`));
        });
        if (preamble) channel.write(preamble);
        resolve(channel);
      }),
    );
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
    return this.putWithRetry((sftp, path, done) => sftp.writeFile(path, content, { mode: 0o600 }, done));
  }

  /** fastPut: parallel SFTP writes, so a 120 MB runtime moves at link speed rather than one round trip per 32 KiB. */
  protected async putTempFile(localPath: string): Promise<string> {
    return this.putWithRetry((sftp, path, done) => sftp.fastPut(localPath, path, { mode: 0o600, concurrency: 32 }, done));
  }

  private async putWithRetry(send: (sftp: SFTPWrapper, path: string, done: (err?: Error | null) => void) => void): Promise<string> {
    const path = `/tmp/.labrig-upload-${randomBytes(6).toString("hex")}`;
    const put = async () => {
      const sftp = await this.getSftp();
      await new Promise<void>((resolve, reject) => send(sftp, path, (err) => (err ? reject(new ConnectionDropped(err.message)) : resolve())));
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

  private async openConnection(): Promise<ssh2.Client> {
    const client = await connectSsh(this.target, this.opts);
    client.on("close", () => {
      if (this.conn) this.conn.then((c) => c === client && this.reset()).catch(() => undefined);
    });
    return client;
  }
}
