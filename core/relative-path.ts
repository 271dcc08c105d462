// Relative paths that name a file inside a folder labrig owns (a job's synced outputs, a code
// snapshot): checked the same way wherever one arrives, so that no name can leave its folder.
const MAX_SEGMENT_BYTES = 255;
const MAX_DEPTH = 32;

export class RelativePathError extends Error {}

/**
 * Returns `p` normalised, or throws RelativePathError saying what is wrong with it. Refuses empty
 * and over-long paths, NUL, backslashes, absolute paths, `..`, empty or `.` segments, names longer
 * than a file system takes, and paths deeper than 32 folders. `inside` names the folder in messages.
 */
export function checkRelativePath(p: string, inside: string): string {
  if (p.length === 0 || p.length > 1024) throw new RelativePathError("the path is empty or longer than 1024 characters");
  if (p.includes("\0")) throw new RelativePathError("the path holds a NUL byte");
  if (p.includes("\\")) throw new RelativePathError("the path holds a backslash; use '/'");
  if (p.startsWith("/")) throw new RelativePathError(`the path is absolute; give it relative to ${inside}`);
  const segments = p.split("/");
  for (const s of segments) {
    if (s === "..") throw new RelativePathError(`the path leaves ${inside} ('..')`);
    if (s === "" || s === ".") throw new RelativePathError("the path has an empty or '.' segment");
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) throw new RelativePathError(`a name in the path is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  if (segments.length > MAX_DEPTH) throw new RelativePathError(`the path is more than ${MAX_DEPTH} folders deep`);
  return segments.join("/");
}
