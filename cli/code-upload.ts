// Sends a collected code snapshot to the dispatcher: nothing but a HEAD when it holds the snapshot
// already, else the manifest, then only the blobs the dispatcher says it lacks (files it has from
// other snapshots are not sent again), then the manifest again so the dispatcher stores it.
import { readFile } from "node:fs/promises";
import type { DispatcherClient } from "../core/client.js";
import { ApiError, LabrigError } from "../core/errors.js";
import type { CollectedSnapshot } from "./code-snapshot.js";

export interface CodeUploadReport {
  id: string;
  /** Blobs and bytes sent this time (0 when the dispatcher had them all). */
  uploadedBlobs: number;
  uploadedBytes: number;
  /** The manifest's size as JSON, sent once or twice. */
  manifestBytes: number;
}

const PARALLEL_UPLOADS = 4;

export async function uploadCodeSnapshot(client: DispatcherClient, snap: CollectedSnapshot): Promise<CodeUploadReport> {
  // The id is the manifest's hash: a tree the dispatcher holds already costs one HEAD.
  if (await client.codeSnapshotExists(snap.id)) return { id: snap.id, uploadedBlobs: 0, uploadedBytes: 0, manifestBytes: 0 };
  const manifestBytes = Buffer.byteLength(JSON.stringify(snap.manifest));
  let offer = await client.codeOffer(snap.manifest);
  if (offer.id !== snap.id) {
    throw new LabrigError(`the dispatcher names this snapshot ${offer.id}, not ${snap.id}: it reads manifests differently (another labrig version?)`);
  }
  const missing = [...offer.missing];
  let uploadedBytes = 0;
  let uploadedBlobs = 0;
  const uploadOne = async (sha256: string) => {
    const source = snap.blobs.get(sha256);
    if (!source) throw new LabrigError(`the dispatcher asks for blob ${sha256}, which this snapshot does not hold`);
    const data = "data" in source ? source.data : await readFile(source.file);
    try {
      await client.codePutBlob(sha256, data);
    } catch (err) {
      if (err instanceof ApiError && err.code === "sha256_mismatch" && "file" in source) {
        throw new LabrigError(`${source.file} changed while it was being sent; submit again`, { cause: err });
      }
      throw err;
    }
    uploadedBytes += data.length;
    uploadedBlobs++;
  };
  const workers = Array.from({ length: Math.min(PARALLEL_UPLOADS, missing.length) }, async () => {
    for (let sha = missing.shift(); sha !== undefined; sha = missing.shift()) await uploadOne(sha);
  });
  await Promise.all(workers);
  const offers = offer.missing.length > 0 ? 2 : 1;
  if (offers === 2) {
    offer = await client.codeOffer(snap.manifest);
    if (offer.missing.length > 0) throw new LabrigError(`the dispatcher still lacks ${offer.missing.length} blob(s) of snapshot ${snap.id} after the upload`);
  }
  return { id: offer.id, uploadedBlobs, uploadedBytes, manifestBytes: manifestBytes * offers };
}
