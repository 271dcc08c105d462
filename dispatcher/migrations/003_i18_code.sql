-- Code snapshots: the trees sent with jobs. A blob is one file's content, named by its sha256 and
-- kept under code/blobs/ in the state folder; a snapshot is a checked manifest naming its blobs.
CREATE TABLE code_blobs (
  sha256     TEXT PRIMARY KEY,
  size       INTEGER NOT NULL,
  created_at TEXT NOT NULL
);

CREATE TABLE code_snapshots (
  id         TEXT PRIMARY KEY,
  manifest   TEXT NOT NULL,
  files      INTEGER NOT NULL,
  bytes      INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  created_by TEXT
);

-- Which blobs each snapshot needs: what an agent may fetch for it, and what keeps a blob alive.
CREATE TABLE code_snapshot_blobs (
  snapshot_id TEXT NOT NULL REFERENCES code_snapshots (id) ON DELETE CASCADE,
  sha256      TEXT NOT NULL REFERENCES code_blobs (sha256),
  PRIMARY KEY (snapshot_id, sha256)
);
CREATE INDEX code_snapshot_blobs_sha ON code_snapshot_blobs (sha256);

-- A job's snapshot, and what it shows of it (files, bytes, git facts; a snapshot never changes).
ALTER TABLE jobs ADD COLUMN code_snapshot TEXT REFERENCES code_snapshots (id);
ALTER TABLE jobs ADD COLUMN code TEXT;
CREATE INDEX jobs_code_snapshot ON jobs (code_snapshot);
