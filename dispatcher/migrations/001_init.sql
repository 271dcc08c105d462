-- The dispatcher's first schema: jobs, their attempts' history, agents (devices), sync files.

CREATE TABLE jobs (
  id            TEXT PRIMARY KEY,
  seq           INTEGER NOT NULL UNIQUE,
  name          TEXT NOT NULL,
  project       TEXT NOT NULL,
  command       TEXT NOT NULL,            -- JSON: string or array of strings
  gpus          INTEGER NOT NULL,
  image         TEXT,
  env           TEXT NOT NULL,            -- JSON object
  workdir       TEXT,
  timeout_s     INTEGER,
  priority      TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high')),
  max_retries   INTEGER NOT NULL,
  constraints   TEXT NOT NULL,            -- JSON object
  state         TEXT NOT NULL CHECK (state IN ('queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
  attempt       INTEGER NOT NULL,
  lost_count    INTEGER NOT NULL DEFAULT 0,
  host_id       TEXT,
  gpu_indices   TEXT NOT NULL DEFAULT '[]', -- JSON array
  delivered_at  TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  exit_code     INTEGER,
  reason        TEXT,
  created_at    TEXT NOT NULL,
  assigned_at   TEXT,
  started_at    TEXT,
  ended_at      TEXT
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_host_state ON jobs (host_id, state);
CREATE INDEX jobs_project ON jobs (project);

CREATE TABLE job_transitions (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt   INTEGER NOT NULL,
  from_state TEXT,
  to_state  TEXT NOT NULL,
  host_id   TEXT,
  message   TEXT,
  at        TEXT NOT NULL
);
CREATE INDEX job_transitions_job ON job_transitions (job_id);

CREATE TABLE agents (
  host_id       TEXT PRIMARY KEY,
  hostname      TEXT,
  token_hash    TEXT NOT NULL,
  gpus          TEXT NOT NULL,            -- JSON: registered GPUs
  labels        TEXT NOT NULL,            -- JSON object
  agent_version TEXT,
  agent_url     TEXT,
  draining      INTEGER NOT NULL DEFAULT 0,
  registered_at TEXT NOT NULL,
  last_seen_at  TEXT,
  last_stats    TEXT                      -- JSON: the last heartbeat, persisted now and then
);

CREATE TABLE sync_files (
  job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt    INTEGER NOT NULL,
  path       TEXT NOT NULL,
  size       INTEGER NOT NULL,
  sha256     TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (job_id, attempt, path)
);
