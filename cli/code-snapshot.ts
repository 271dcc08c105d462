// `labrig submit --code`: collects the researcher's tree into a code snapshot (core/code.ts).
// In a git work tree git says which files belong to it (.gitignore, .git/info/exclude and untracked
// files that are not ignored), and the commit, branch and the diff of uncommitted changes travel
// along; outside git the folder is walked with its .gitignore files. A .labrigignore at the root
// leaves out more (data, checkpoints). Sizes are checked before anything is read.
//
//   const snap = await collectCodeSnapshot({ cwd: process.cwd() });
//   snap.manifest.entries; snap.blobs.get(sha256); snap.manifest.git?.dirty
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { lstat, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { execa } from "execa";
import ignore, { type Ignore } from "ignore";
import {
  type CodeEntry,
  type CodeManifest,
  CodeManifestError,
  checkCodeManifest,
  codeSnapshotId,
  DEFAULT_CODE_LIMIT_BYTES,
  type GitFacts,
  isCodeLink,
  MAX_CODE_FILES,
  snapshotMode,
} from "../core/code.js";
import { InputError, errorMessage } from "../core/errors.js";

export interface CollectedSnapshot {
  /** The absolute folder the snapshot is of. */
  root: string;
  /** Where the command was run from, relative to root ("" at the root, or outside it), with '/'. */
  subdir: string;
  manifest: CodeManifest;
  id: string;
  /** The files' bytes (the git diff not included). */
  bytes: number;
  /** Where each blob's bytes are: a file on disk, or in memory (the git diff). Keyed by sha256. */
  blobs: Map<string, { file: string; size: number } | { data: Buffer; size: number }>;
}

const LABRIGIGNORE = ".labrigignore";
const FLAG = "--code";
const MiB = 1024 * 1024;
const HASHES_AT_ONCE = 4;

interface ListedPath {
  path: string;
  /** Not tracked by git (or not in git at all): a snapshot holding one differs from the commit. */
  untracked: boolean;
}

interface FoundFile {
  path: string;
  size: number;
  mode: number;
  untracked: boolean;
}

/**
 * Collects the snapshot of `dir` (resolved against `cwd`), or of the git work tree around `cwd`,
 * or of `cwd` itself. Throws InputError (flag --code) for a tree a snapshot cannot hold: over the
 * size limit (naming the largest files), a link out of the tree, a FIFO, socket or device file.
 */
export async function collectCodeSnapshot(opts: { dir?: string; cwd: string; limitBytes?: number }): Promise<CollectedSnapshot> {
  const limitBytes = opts.limitBytes ?? DEFAULT_CODE_LIMIT_BYTES;
  const cwd = await realpath(opts.cwd);
  const root = opts.dir === undefined ? ((await gitWorkTree(cwd)) ?? cwd) : await snapshotFolder(resolve(cwd, opts.dir), opts.dir);
  const fromRoot = relative(root, cwd);
  const subdir = fromRoot === "" || fromRoot === ".." || fromRoot.startsWith(`..${sep}`) ? "" : fromRoot.split(sep).join("/");

  const top = await gitWorkTree(root);
  const labrigIgnore = await readIgnoreFile(join(root, LABRIGIGNORE));
  const listed = top ? await listGitTree(root, "", false, labrigIgnore) : await walkFolder(root, labrigIgnore);
  if (listed.length > MAX_CODE_FILES) {
    throw new InputError(FLAG, `${root} holds more than ${MAX_CODE_FILES} files, the most a snapshot takes; add the folders the job does not need to ${LABRIGIGNORE}`);
  }
  const { files, links } = await statListed(root, listed);
  if (files.length + links.length === 0) {
    throw new InputError(FLAG, `${root} holds no files to send: none, or all of them left out by .gitignore or ${LABRIGIGNORE}`);
  }
  const fileBytes = files.reduce((n, f) => n + f.size, 0);
  if (fileBytes > limitBytes) throw overLimit(root, files, 0, limitBytes);

  const roomLeft = limitBytes - fileBytes;
  const gitFacts = top ? await readGitFacts(root, top, labrigIgnore, files.some((f) => f.untracked) || links.some((l) => l.untracked), roomLeft) : null;
  if (gitFacts?.diffOverRoom) throw overLimit(root, files, roomLeft + 1, limitBytes, "more than ");
  if (gitFacts?.diff && gitFacts.diff.length > roomLeft) throw overLimit(root, files, gitFacts.diff.length, limitBytes);
  const git: GitFacts | null = gitFacts && {
    ...gitFacts.facts,
    diffSha256: gitFacts.diff ? createHash("sha256").update(gitFacts.diff).digest("hex") : null,
    diffBytes: gitFacts.diff ? gitFacts.diff.length : null,
  };
  const linkEntries: CodeEntry[] = links.map(({ path, link }) => ({ path, link }));

  // The contract's checks (names, links, counts) run once on placeholder digests, so that a tree
  // they refuse costs no reading.
  const unread = "0".repeat(64);
  checkedManifest({ version: 1, entries: [...files.map((f) => ({ path: f.path, size: f.size, sha256: unread, mode: f.mode })), ...linkEntries], git }, limitBytes);

  const digests = await hashFiles(root, files);
  const manifest = checkedManifest(
    { version: 1, entries: [...files.map((f, i) => ({ path: f.path, size: digests[i]!.size, sha256: digests[i]!.sha256, mode: f.mode })), ...linkEntries], git },
    limitBytes,
  );
  const blobs: CollectedSnapshot["blobs"] = new Map();
  let bytes = 0;
  for (const e of manifest.entries) {
    if (isCodeLink(e)) continue;
    bytes += e.size;
    if (!blobs.has(e.sha256)) blobs.set(e.sha256, { file: join(root, e.path), size: e.size });
  }
  if (git?.diffSha256 && gitFacts?.diff && !blobs.has(git.diffSha256)) blobs.set(git.diffSha256, { data: gitFacts.diff, size: gitFacts.diff.length });
  return { root, subdir, manifest, id: codeSnapshotId(manifest), bytes, blobs };
}

async function snapshotFolder(abs: string, given: string): Promise<string> {
  let st: Stats;
  try {
    st = await stat(abs);
  } catch (err) {
    throw new InputError(FLAG, `${given}: no such folder (${abs})`, { cause: err });
  }
  if (!st.isDirectory()) throw new InputError(FLAG, `${given} is not a folder; give the folder whose files the job needs`);
  return realpath(abs);
}

function checkedManifest(m: CodeManifest, maxBytes: number): CodeManifest {
  try {
    return checkCodeManifest(m, { maxBytes });
  } catch (err) {
    if (!(err instanceof CodeManifestError)) throw err;
    throw new InputError(FLAG, err.path === undefined ? err.message : `${err.message}; change it, or add it to ${LABRIGIGNORE}`, { cause: err });
  }
}

/** `more` is "more than " where the diff was cut off at the room the files left. */
function overLimit(root: string, files: FoundFile[], diffBytes: number, limitBytes: number, more = ""): InputError {
  const total = files.reduce((n, f) => n + f.size, 0) + diffBytes;
  const largest = [...files].sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1)).slice(0, 10);
  const width = Math.max(0, ...largest.map((f) => f.path.length));
  const lines = [
    `the snapshot of ${root} holds ${more}${formatMiB(total)}, over the limit of ${formatMiB(limitBytes)}. The largest files:`,
    ...largest.map((f) => `  ${f.path.padEnd(width)}  ${formatMiB(f.size)}`),
  ];
  if (diffBytes > 0) lines.push(`The diff of the uncommitted changes to tracked files adds ${more}${formatMiB(diffBytes)}; committing them leaves it out.`);
  lines.push(`Add what the job does not need to ${LABRIGIGNORE} (gitignore syntax, in ${root}), or raise the limit with --code-limit-mb or LABRIG_CODE_LIMIT_MB.`);
  return new InputError(FLAG, lines.join("\n"));
}

// One unit for every size, so that they compare with each other and with --code-limit-mb (MiB).
const formatMiB = (bytes: number): string => `${Number((bytes / MiB).toFixed(bytes < 10 * MiB ? 2 : 1))} MiB`;

async function readIgnoreFile(file: string): Promise<Ignore> {
  // Case-sensitive, as git is on Linux; a .gitignore that is a link is not followed, as git does not.
  const rules = ignore({ ignorecase: false });
  try {
    if ((await lstat(file)).isFile()) rules.add(await readFile(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return rules;
}

// ---- git ----

interface GitResult {
  ok: boolean;
  stdout: Buffer;
  /** stdout ran past maxBuffer. */
  tooBig: boolean;
}

async function git(folder: string, args: string[], maxBuffer?: number): Promise<GitResult> {
  // quotepath off: names print as they are. Optional locks off: a snapshot taken while an editor
  // runs git must neither fail on nor hold index.lock.
  const res = await execa("git", ["-c", "core.quotepath=off", ...args], {
    cwd: folder,
    reject: false,
    encoding: "buffer",
    stripFinalNewline: false,
    env: { GIT_OPTIONAL_LOCKS: "0" },
    ...(maxBuffer === undefined ? {} : { maxBuffer }),
  });
  return { ok: !res.failed, stdout: Buffer.from(res.stdout ?? new Uint8Array()), tooBig: res.isMaxBuffer };
}

const firstLine = (out: Buffer): string => out.toString("utf8").replace(/\n$/, "");
const nulSeparated = (out: Buffer): string[] => out.toString("utf8").split("\0").filter((p) => p !== "");

/** The top folder of the git work tree `folder` is in, or null outside one (or where git is missing). */
export async function gitWorkTree(folder: string): Promise<string | null> {
  const res = await git(folder, ["rev-parse", "--show-toplevel"]);
  return res.ok ? firstLine(res.stdout) : null;
}

/**
 * The files git counts as part of `folder`'s tree, relative to `folder` and prefixed with `prefix`:
 * tracked ones and untracked ones not ignored. A repository inside it (a submodule, a clone) is
 * listed by git as a folder; its files are listed with its own rules.
 */
async function listGitTree(folder: string, prefix: string, untrackedAbove: boolean, labrigIgnore: Ignore): Promise<ListedPath[]> {
  const [cached, others] = await Promise.all([
    git(folder, ["ls-files", "-z", "--stage", "--cached"]),
    git(folder, ["ls-files", "-z", "--others", "--exclude-standard"]),
  ]);
  if (!cached.ok || !others.ok) throw new InputError(FLAG, `git ls-files failed in ${folder}; run it there to see why`);
  const untrackedOf = new Map<string, boolean>();
  const repositories = new Set<string>();
  for (const line of nulSeparated(cached.stdout)) {
    // "<mode> <object> <stage>\t<path>"; a merge conflict lists a path once a stage.
    const tab = line.indexOf("\t");
    const path = line.slice(tab + 1);
    untrackedOf.set(path, untrackedAbove);
    if (line.startsWith("160000 ")) repositories.add(path);
  }
  for (const line of nulSeparated(others.stdout)) {
    const path = line.endsWith("/") ? line.slice(0, -1) : line;
    if (line.endsWith("/")) repositories.add(path);
    if (!untrackedOf.has(path)) untrackedOf.set(path, true);
  }
  const listed: ListedPath[] = [];
  for (const [path, untracked] of untrackedOf) {
    const inSnapshot = prefix + path;
    if (repositories.has(path)) {
      if (labrigIgnore.ignores(`${inSnapshot}/`)) continue;
      const nested = join(folder, path);
      // An uninitialised submodule is an empty folder inside the outer work tree: nothing to send.
      if ((await gitWorkTree(nested)) !== (await realpath(nested).catch(() => null))) continue;
      listed.push(...(await listGitTree(nested, `${inSnapshot}/`, untracked, labrigIgnore)));
    } else if (!labrigIgnore.ignores(inSnapshot)) {
      listed.push({ path: inSnapshot, untracked });
    }
  }
  return listed;
}

interface GitState {
  facts: Omit<GitFacts, "diffSha256" | "diffBytes">;
  /** `git diff HEAD --binary` of the tracked files in the snapshot; null for a clean tree. */
  diff: Buffer | null;
  /** The diff is larger than the room the files left under the limit (and was not kept). */
  diffOverRoom?: true;
}

/**
 * The commit, branch and uncommitted changes of the work tree at `top`, for the part of it at
 * `root`. Dirty means the snapshot differs from the commit: a tracked file in it changed (or was
 * removed), or it holds untracked files. A tracked file left out by .labrigignore is left out of
 * the diff too, so that a changed data file neither marks the tree dirty nor fills the snapshot.
 * A tree dirty only by untracked files carries an empty diff: dirty and diff go together.
 */
async function readGitFacts(root: string, top: string, labrigIgnore: Ignore, holdsUntracked: boolean, roomLeft: number): Promise<GitState | null> {
  const head = await git(root, ["rev-parse", "--verify", "-q", "HEAD^{commit}"]);
  if (!head.ok) return null;
  const commit = firstLine(head.stdout);
  const branchRef = await git(root, ["symbolic-ref", "--short", "-q", "HEAD"]);
  const branch = branchRef.ok ? firstLine(branchRef.stdout) : null;

  const fromTop = relative(top, root);
  const prefix = fromTop === "" ? "" : `${fromTop.split(sep).join("/")}/`;
  const names = await git(root, ["diff", "HEAD", "--name-only", "-z", "--no-renames", "--no-relative", "--", "."]);
  if (!names.ok) throw new InputError(FLAG, `git diff HEAD failed in ${root}; run it there to see why`);
  const changed = nulSeparated(names.stdout).map((p) => p.slice(prefix.length));
  const kept = changed.filter((p) => !labrigIgnore.ignores(p));
  const dirty = kept.length > 0 || holdsUntracked;
  if (!dirty) return { facts: { commit, branch, dirty }, diff: null };
  if (kept.length === 0) return { facts: { commit, branch, dirty }, diff: Buffer.alloc(0) };

  // Fixed prefixes, no colour, no external or text-converting drivers: the diff applies with
  // `git apply` at the commit whatever the researcher's git config says.
  const diffArgs = ["diff", "HEAD", "--binary", "-M", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/"];
  const args = kept.length === changed.length ? [...diffArgs, "--", "."] : ["--literal-pathspecs", ...diffArgs, "--", ...kept];
  const res = await git(root, args, Math.max(0, roomLeft) + 1);
  if (res.tooBig) return { facts: { commit, branch, dirty }, diff: null, diffOverRoom: true };
  if (!res.ok) throw new InputError(FLAG, `git diff HEAD --binary failed in ${root}; run it there to see why`);
  return { facts: { commit, branch, dirty }, diff: res.stdout };
}

// ---- outside git ----

interface FolderRules {
  /** The folder the .gitignore is in, relative to the root ("" or "a/b/"). */
  base: string;
  rules: Ignore;
}

/** Every file under `root`, honouring a .gitignore in each folder as git would; .git is never entered. */
async function walkFolder(root: string, labrigIgnore: Ignore): Promise<ListedPath[]> {
  const listed: ListedPath[] = [];
  const visit = async (folder: string, above: FolderRules[]): Promise<void> => {
    const abs = join(root, folder);
    const here = await readIgnoreFile(join(abs, ".gitignore"));
    const levels = [{ base: folder, rules: here }, ...above];
    const dirents = await readdir(abs, { withFileTypes: true });
    dirents.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const d of dirents) {
      if (d.name === ".git") continue;
      const path = folder + d.name;
      const asTested = d.isDirectory() ? `${path}/` : path;
      if (ignoredByGitignores(levels, asTested) || labrigIgnore.ignores(asTested)) continue;
      if (d.isDirectory()) await visit(asTested, levels);
      else listed.push({ path, untracked: true });
      if (listed.length > MAX_CODE_FILES) return;
    }
  };
  await visit("", []);
  return listed;
}

// The deepest .gitignore with a rule for the path decides, as in git; a folder one of them ignores
// is not entered, so rules below it never apply.
function ignoredByGitignores(deepestFirst: FolderRules[], path: string): boolean {
  for (const { base, rules } of deepestFirst) {
    const result = rules.test(path.slice(base.length));
    if (result.ignored) return true;
    if (result.unignored) return false;
  }
  return false;
}

// ---- files ----

async function statListed(root: string, listed: ListedPath[]): Promise<{ files: FoundFile[]; links: (ListedPath & { link: string })[] }> {
  const files: FoundFile[] = [];
  const links: (ListedPath & { link: string })[] = [];
  await forEachConcurrently(listed, 16, async ({ path, untracked }) => {
    let st: Stats;
    try {
      st = await lstat(join(root, path));
    } catch (err) {
      // A tracked file deleted in the work tree: the diff records the deletion.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new InputError(FLAG, `cannot read '${path}' in ${root}: ${errorMessage(err)}`, { cause: err });
    }
    if (st.isFile()) files.push({ path, size: st.size, mode: snapshotMode(st.mode), untracked });
    else if (st.isSymbolicLink()) links.push({ path, untracked, link: await readlink(join(root, path)) });
    else if (!st.isDirectory()) {
      const kind = st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : "a device file";
      throw new InputError(FLAG, `'${path}' in ${root} is ${kind}; a snapshot holds files, folders and links only: add it to ${LABRIGIGNORE}`);
    }
    // A folder where git tracks a file (the file replaced by a folder): its files are listed themselves.
  });
  return { files, links };
}

async function hashFiles(root: string, files: FoundFile[]): Promise<{ sha256: string; size: number }[]> {
  const digests: { sha256: string; size: number }[] = new Array(files.length);
  const indexes = files.map((_, i) => i);
  await forEachConcurrently(indexes, HASHES_AT_ONCE, async (i) => {
    const { path } = files[i]!;
    try {
      digests[i] = await hashFile(join(root, path));
    } catch (err) {
      throw new InputError(FLAG, `cannot read '${path}' in ${root}: ${errorMessage(err)}; make it readable, or add it to ${LABRIGIGNORE}`, { cause: err });
    }
  });
  return digests;
}

// The size is what was read, so that it matches the digest even for a file that grew since lstat.
async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest("hex"), size };
}

async function forEachConcurrently<T>(items: T[], atOnce: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(atOnce, items.length)) }, worker));
}
