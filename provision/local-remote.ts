// The Remote for this machine (the control machine, and tests that exercise facts and steps
// without SSH): commands run through the local shell, as root via `sudo -n` unless already root.
import { randomBytes } from "node:crypto";
import { copyFileSync, chmodSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { type ExecResult, ShellRemote } from "./remote.js";

export class LocalRemote extends ShellRemote {
  constructor(host = "localhost") {
    const me = userInfo();
    super(host, me.username, me.uid === 0);
  }

  protected async execShell(command: string, input: string | Buffer | undefined, timeoutMs: number): Promise<ExecResult> {
    const res = await execa("sh", ["-c", command], { input, reject: false, timeout: timeoutMs, stripFinalNewline: false });
    return { stdout: String(res.stdout), stderr: String(res.stderr), exitCode: res.exitCode ?? (res.timedOut ? 124 : 255) };
  }

  protected async putTemp(content: Buffer): Promise<string> {
    const path = join(tmpdir(), `.labrig-upload-${randomBytes(6).toString("hex")}`);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  }

  protected async putTempFile(localPath: string): Promise<string> {
    const path = join(tmpdir(), `.labrig-upload-${randomBytes(6).toString("hex")}`);
    copyFileSync(localPath, path);
    chmodSync(path, 0o600);
    return path;
  }

  async close(): Promise<void> {}
}
