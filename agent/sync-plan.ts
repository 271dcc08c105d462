// The sync planner: for one file under a job's output dir, what to send given what the dispatcher
// has acknowledged. Pure, so every append-vs-replace decision is tested without a dispatcher.
//
// A file that only grew is sent as an append from the acknowledged size; one whose acknowledged
// bytes changed (smaller now, or a different fingerprint of the acknowledged prefix) is sent whole.
// A rewritten file is sent only once it has been quiet for a moment (or at the final sync), so a
// checkpoint being written is not uploaded half-done every second.

export interface LocalFile {
  size: number;
  mtimeMs: number;
  /** Fingerprint of the local bytes [0, acked.size), when the caller has computed it. */
  prefixFingerprint?: string;
}

export interface AckedFile {
  /** Bytes the dispatcher holds. */
  size: number;
  /** mtime and size of the local file when those bytes were acknowledged. */
  mtimeMs: number;
  localSize: number;
  /** Fingerprint of the acknowledged bytes (see fingerprintRange). */
  fingerprint: string;
}

export type SyncAction =
  | { kind: "skip" }
  | { kind: "append"; offset: number; length: number }
  | { kind: "put" }
  /** The rewritten file changed less than quietMs ago: send it later. */
  | { kind: "wait" }
  /** Compute local.prefixFingerprint over [0, acked.size) and plan again. */
  | { kind: "fingerprint"; length: number };

export interface PlanOptions {
  nowMs: number;
  quietMs: number;
  /** The final sync after the job ended: nothing waits. */
  final: boolean;
}

export function planFileSync(local: LocalFile, acked: AckedFile | undefined, opts: PlanOptions): SyncAction {
  if (!acked) return local.size > 0 ? { kind: "append", offset: 0, length: local.size } : { kind: "put" };
  if (local.size === acked.localSize && local.mtimeMs === acked.mtimeMs && acked.size === local.size) return { kind: "skip" };
  const rewrite = (): SyncAction => (opts.final || opts.nowMs - local.mtimeMs >= opts.quietMs ? { kind: "put" } : { kind: "wait" });
  if (local.size < acked.size) return rewrite();
  if (local.prefixFingerprint === undefined) return { kind: "fingerprint", length: acked.size };
  if (local.prefixFingerprint !== acked.fingerprint) return rewrite();
  if (local.size === acked.size) return { kind: "skip" };
  return { kind: "append", offset: acked.size, length: local.size - acked.size };
}
