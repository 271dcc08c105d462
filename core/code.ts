// Code snapshots: the researcher's tree sent with a job. A manifest lists every file (path, size,
// sha256, mode) and every symbolic link inside the tree; file contents travel as blobs named by
// their sha256, so a tree already sent costs only its manifest. The same checks run in the CLI,
// the dispatcher and the agent: no name can leave the tree, no link can point out of it, modes
// are the owner's rwx bits only, and the sizes stay under the lab's limit.
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { z } from "zod";
import { mibFromEnv } from "./config.js";
import { checkRelativePath, RelativePathError } from "./relative-path.js";
import { formatBytes } from "./units.js";

export const SHA256_PATTERN = /^[0-9a-f]{64}$/;
export const sha256Schema = z.string().regex(SHA256_PATTERN, "a SHA-256 as 64 lower-case hex digits");

/** The largest snapshot a dispatcher takes unless LABRIG_CODE_LIMIT_MB says otherwise (the CLI's default too). */
export const DEFAULT_CODE_LIMIT_BYTES = 200 * 1024 * 1024;
export const MAX_CODE_FILES = 100_000;

/** LABRIG_CODE_LIMIT_MB in bytes (the dispatcher's limit, and the CLI's own check before it sends anything). */
export const codeLimitFromEnv = (env: NodeJS.ProcessEnv): number => mibFromEnv(env, "LABRIG_CODE_LIMIT_MB", DEFAULT_CODE_LIMIT_BYTES);

const fileEntrySchema = z.strictObject({
  path: z.string(),
  size: z.number().int().min(0),
  sha256: sha256Schema,
  /** Permission bits: the owner's only (0o400 … 0o700). */
  mode: z.number().int(),
});
const linkEntrySchema = z.strictObject({
  path: z.string(),
  /** The link's target, relative to the folder the link is in, and inside the tree. */
  link: z.string(),
});
export type CodeFile = z.infer<typeof fileEntrySchema>;
export type CodeLink = z.infer<typeof linkEntrySchema>;
export type CodeEntry = CodeFile | CodeLink;
export const isCodeLink = (e: CodeEntry): e is CodeLink => "link" in e;

export const gitFactsSchema = z.strictObject({
  commit: z.string().regex(/^[0-9a-f]{7,64}$/),
  /** null on a detached HEAD. */
  branch: z.string().max(255).nullable(),
  /** Whether the tree differed from the commit (changed, added or removed files). */
  dirty: z.boolean(),
  /** The blob holding `git diff HEAD --binary` for a dirty tree. */
  diffSha256: sha256Schema.nullable(),
  diffBytes: z.number().int().min(0).nullable(),
});
export type GitFacts = z.infer<typeof gitFactsSchema>;

export const codeManifestSchema = z.strictObject({
  version: z.literal(1),
  entries: z.array(z.union([fileEntrySchema, linkEntrySchema])).max(MAX_CODE_FILES),
  git: gitFactsSchema.nullable(),
});
export type CodeManifest = z.infer<typeof codeManifestSchema>;

/** What a job shows of its snapshot (`job.code`), and `GET /api/code/snapshots/{id}` beside the manifest. */
export const codeSummarySchema = z.object({
  snapshot: sha256Schema,
  files: z.number(),
  bytes: z.number(),
  git: gitFactsSchema.nullable(),
});
export type CodeSummary = z.infer<typeof codeSummarySchema>;

export const codeSnapshotResponseSchema = codeSummarySchema.extend({
  manifest: codeManifestSchema,
  createdAt: z.string(),
  createdBy: z.string().nullable(),
});
export type CodeSnapshotInfo = z.infer<typeof codeSnapshotResponseSchema>;

export const codeOfferResponseSchema = z.object({
  id: sha256Schema,
  /** Blobs the dispatcher lacks: upload each, then offer the manifest again. Empty: the snapshot is stored. */
  missing: z.array(sha256Schema),
  files: z.number(),
  bytes: z.number(),
});
export type CodeOffer = z.infer<typeof codeOfferResponseSchema>;

export const codeUsageResponseSchema = z.object({
  snapshots: z.number(),
  blobs: z.number(),
  bytes: z.number(),
  /** Snapshots no kept job uses, collected once they are older than the grace period. */
  unused: z.number(),
});
export type CodeUsage = z.infer<typeof codeUsageResponseSchema>;

export class CodeManifestError extends Error {
  constructor(
    message: string,
    /** The entry at fault, when one is. */
    readonly path?: string,
  ) {
    super(message);
  }
}

export interface CodeLimits {
  maxBytes: number;
  maxFiles?: number;
}

/**
 * Checks a manifest from anywhere (a request body, a file on disk) and returns it with its
 * entries sorted, or throws CodeManifestError naming the entry and what is wrong with it.
 */
export function checkCodeManifest(input: unknown, limits: CodeLimits): CodeManifest {
  const parsed = codeManifestSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CodeManifestError(`manifest: ${issue.path.join(".") || "(body)"}: ${issue.message}`);
  }
  const m = parsed.data;
  const maxFiles = limits.maxFiles ?? MAX_CODE_FILES;
  if (m.entries.length > maxFiles) throw new CodeManifestError(`the snapshot has ${m.entries.length} entries; at most ${maxFiles}`);
  const kinds = new Map<string, "file" | "link">();
  let total = 0;
  for (const e of m.entries) {
    const path = entryPath(e.path);
    if (kinds.has(path)) throw new CodeManifestError(`'${path}' is listed twice`, path);
    kinds.set(path, isCodeLink(e) ? "link" : "file");
    if (isCodeLink(e)) {
      checkLinkTarget(path, e.link);
    } else {
      if ((e.mode & ~0o700) !== 0 || (e.mode & 0o400) === 0) {
        throw new CodeManifestError(`'${path}' has mode 0${e.mode.toString(8)}; a snapshot keeps only the owner's read, write and execute bits (0400-0700)`, path);
      }
      if (e.size > limits.maxBytes) throw new CodeManifestError(`'${path}' claims ${e.size} bytes, over the snapshot limit of ${limits.maxBytes}`, path);
      total += e.size;
    }
  }
  total += m.git?.diffBytes ?? 0;
  if ((m.git?.diffSha256 == null) !== (m.git?.diffBytes == null)) throw new CodeManifestError("manifest: git: diffSha256 and diffBytes go together");
  if (total > limits.maxBytes) throw new CodeManifestError(`the snapshot holds ${total} bytes, over the limit of ${limits.maxBytes}`);
  // A name below a file or a link would be written through it (or fail half-way): refuse it.
  for (const path of kinds.keys()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const above = parts.slice(0, i).join("/");
      const kind = kinds.get(above);
      if (kind) throw new CodeManifestError(`'${path}' lies under '${above}', which is a ${kind === "link" ? "symbolic link" : "file"}`, path);
    }
  }
  const entries = [...m.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { version: 1, entries, git: m.git };
}

// Control characters in a name would reach the terminals that list the tree.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

function entryPath(p: string): string {
  if (CONTROL_CHARS.test(p)) throw new CodeManifestError(`${JSON.stringify(p)}: a name with control characters`, p);
  try {
    return checkRelativePath(p, "the snapshot");
  } catch (err) {
    if (err instanceof RelativePathError) throw new CodeManifestError(`'${p}': ${err.message}`, p);
    throw err;
  }
}

function checkLinkTarget(path: string, target: string): void {
  if (target === "" || target.includes("\0") || CONTROL_CHARS.test(target)) throw new CodeManifestError(`'${path}' is a link with an empty or unprintable target`, path);
  if (target.startsWith("/")) throw new CodeManifestError(`'${path}' is a link to an absolute path (${target}); links must stay inside the tree`, path);
  // The kernel applies a '..' to where the name before it leads: through a link, 'x/..' can climb
  // higher than the text says ('a/b/c/t' -> 'x/../../..' with 'a/b/c/x' -> '../../../p' reaches the
  // tree's parent). A leading '..' climbs the link's own folders, which are real: only those are allowed.
  const segments = target.split("/").filter((s) => s !== "" && s !== ".");
  const firstName = segments.findIndex((s) => s !== "..");
  if (firstName !== -1 && segments.indexOf("..", firstName) !== -1) {
    throw new CodeManifestError(`'${path}' is a link to '${target}', with '..' after a name; a link may climb only at its start ('../x/y')`, path);
  }
  const resolved = posix.normalize(posix.join(posix.dirname(path), target));
  if (resolved === ".." || resolved.startsWith("../") || resolved === "." || resolved.startsWith("/")) {
    throw new CodeManifestError(`'${path}' is a link to '${target}', which points outside the tree`, path);
  }
}

/** The snapshot's id: the SHA-256 of its checked manifest, so the same tree always has the same id. */
export function codeSnapshotId(m: CodeManifest): string {
  return createHash("sha256").update(JSON.stringify({ version: m.version, entries: m.entries.map(canonicalEntry), git: m.git })).digest("hex");
}

const canonicalEntry = (e: CodeEntry) => (isCodeLink(e) ? { path: e.path, link: e.link } : { path: e.path, size: e.size, sha256: e.sha256, mode: e.mode });

/** Every blob a manifest needs (its files' contents and a dirty tree's diff), each once. */
export function manifestBlobs(m: CodeManifest): Map<string, number> {
  const blobs = new Map<string, number>();
  for (const e of m.entries) if (!isCodeLink(e)) blobs.set(e.sha256, e.size);
  if (m.git?.diffSha256 && m.git.diffBytes !== null) blobs.set(m.git.diffSha256, m.git.diffBytes);
  return blobs;
}

export function summarizeManifest(id: string, m: CodeManifest): CodeSummary {
  let files = 0;
  let bytes = 0;
  for (const e of m.entries) {
    if (isCodeLink(e)) continue;
    files++;
    bytes += e.size;
  }
  return { snapshot: id, files, bytes, git: m.git };
}

/** A mode as the snapshot keeps it: executable for the owner or not. */
export const snapshotMode = (fsMode: number): number => ((fsMode & 0o111) !== 0 ? 0o700 : 0o600);

/** One line for people: "412 files, 3.1 MiB in snapshot 3f2a9c1d0b7e, git 1a2b3c4d (main, dirty)". */
export function describeCode(c: CodeSummary): string {
  const git = c.git ? `, git ${c.git.commit.slice(0, 8)} (${c.git.branch ?? "detached"}${c.git.dirty ? ", dirty" : ""})` : ", not a git tree";
  return `${c.files} file${c.files === 1 ? "" : "s"}, ${formatBytes(c.bytes)} in snapshot ${c.snapshot.slice(0, 12)}${git}`;
}
