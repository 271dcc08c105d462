-- A shared lab's scheduler: the CPU cores and memory each job holds on its host, and each person's
-- limits (a row named '*' is everyone's default; NULL means no limit).
ALTER TABLE jobs ADD COLUMN cpus REAL;
ALTER TABLE jobs ADD COLUMN memory_mib INTEGER;

CREATE TABLE person_limits (
  name         TEXT PRIMARY KEY,
  max_gpus     INTEGER,
  max_queued   INTEGER,
  -- 1: may ask for high priority (admins always may).
  high         INTEGER NOT NULL DEFAULT 0,
  updated_at   TEXT NOT NULL,
  updated_by   TEXT
);

-- What fair share reads: jobs by when they ran.
CREATE INDEX jobs_started ON jobs (started_at);
