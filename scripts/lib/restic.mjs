// @ts-check
// Runs restic against one repository with zx: the repository and password travel in restic's own
// environment variables (never on a command line), --json output is parsed, and a failure becomes
// a BackupError carrying the command and the tail of restic's stderr.
// One process library a role: zx for these shell-like scripts (plain JS, run by node in the
// dispatcher container); execa for processes the TypeScript code starts (provision, cli, tests).
import { $ } from "zx";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BackupError, tail } from "./errors.mjs";

export class Restic {
  /**
   * @param {{ repo: string, passwordFile: string, cacheDir?: string }} opts
   */
  constructor(opts) {
    this.repo = opts.repo;
    this.passwordFile = opts.passwordFile;
    this.env = {
      ...process.env,
      RESTIC_REPOSITORY: opts.repo,
      RESTIC_PASSWORD_FILE: opts.passwordFile,
      ...(opts.cacheDir ? { RESTIC_CACHE_DIR: opts.cacheDir } : {}),
    };
  }

  /**
   * Checks what restic needs before the first command, so the message is about the real cause.
   * @param {{ repo?: string, passwordFile?: string }} opts
   */
  static preflight(opts) {
    if (!opts.repo) throw new BackupError("options", "no repository given: pass --repo (a folder, sftp:..., rest:..., s3:...)");
    if (!opts.passwordFile) throw new BackupError("options", "no password file given: pass --password-file F (one line, the repository's password)");
    if (!existsSync(opts.passwordFile)) throw new BackupError("options", `password file ${opts.passwordFile} does not exist`);
    if (readFileSync(opts.passwordFile, "utf8").trim() === "") throw new BackupError("options", `password file ${opts.passwordFile} is empty`);
  }

  /**
   * Runs `restic ARGS`; resolves with the output whatever the exit code.
   * @param {string[]} args
   * @param {{ cwd?: string }} [opts]
   */
  async run(args, opts = {}) {
    const out = await $({ env: this.env, cwd: opts.cwd, nothrow: true, quiet: true, verbose: false })`restic ${args}`;
    if (out.exitCode === 127) {
      throw new BackupError("restic", `restic is not installed or not on PATH (${tail(out.stderr, 1)}); install it (Debian: apt-get install restic)`);
    }
    return out;
  }

  /**
   * Runs restic and throws a BackupError naming `stage` unless it exits 0.
   * @param {string} stage
   * @param {string[]} args
   * @param {{ cwd?: string }} [opts]
   */
  async ok(stage, args, opts = {}) {
    const out = await this.run(args, opts);
    if (out.exitCode !== 0) {
      throw new BackupError(stage, `restic ${args[0]} exited ${out.exitCode}: ${tail(out.stderr) || tail(out.stdout)}`);
    }
    return out;
  }

  /** Runs restic with --json and parses its JSON document (the first line that is one: forget --prune adds prose after it). */
  /**
   * @param {string} stage
   * @param {string[]} args
   * @param {{ cwd?: string }} [opts]
   * @returns {Promise<any>} restic's document, as restic shapes it
   */
  async json(stage, args, opts = {}) {
    const out = await this.ok(stage, [...args, "--json"], opts);
    try {
      const line = out.stdout.split("\n").find((l) => l.startsWith("[") || l.startsWith("{"));
      return JSON.parse(line ?? out.stdout);
    } catch (err) {
      throw new BackupError(stage, `restic ${args[0]} printed no JSON: ${tail(out.stdout)}`, { cause: err });
    }
  }

  /**
   * Parses restic's JSON-lines output (one object a line; restic prints progress lines too).
   * @param {unknown} stdout
   * @returns {any[]}
   */
  static jsonLines(stdout) {
    return String(stdout)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  }

  /** Initialises the repository unless it exists; true when it was created now. */
  async ensureRepository() {
    // A local repository is known by its config file; that saves one restic start (a key derivation).
    if (isLocalPath(this.repo) && existsSync(join(this.repo.replace(/^local:/i, ""), "config"))) return false;
    const probe = await this.run(["cat", "config"]);
    if (probe.exitCode === 0) return false;
    const why = probe.stderr;
    const missing =
      /Is there a repository at the following location|does not exist|no such file or directory|unable to open config file/i.test(why) &&
      !/wrong password/i.test(why);
    if (!missing) throw new BackupError("repository", `cannot open ${this.repo}: ${tail(why)}`);
    if (isLocalPath(this.repo) && existsSync(join(this.repo.replace(/^local:/i, ""), "keys"))) {
      throw new BackupError("repository", `${this.repo} looks like a restic repository but cannot be read: ${tail(why)}`);
    }
    await this.ok("repository", ["init"]);
    return true;
  }
}

/** @param {string} repo */
function isLocalPath(repo) {
  return !/^[a-z0-9]+:/i.test(repo) || /^local:/i.test(repo);
}
