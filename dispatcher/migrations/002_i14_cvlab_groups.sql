-- CVLab-Kit experiments, sweep groups and imported history.
--
-- `urgent` sits above `high`. SQLite cannot change the CHECK on jobs.priority without rebuilding the
-- table, and other migrations add columns to jobs, so an urgent job keeps priority 'high' (what a
-- reader that does not know urgent should see) and this flag.
ALTER TABLE jobs ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;

-- The sweep a job belongs to.
CREATE TABLE job_groups (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at TEXT NOT NULL
);
ALTER TABLE jobs ADD COLUMN group_id TEXT REFERENCES job_groups (id);
CREATE INDEX jobs_group ON jobs (group_id, seq);

-- A CVLab-Kit experiment YAML stored with its job, byte for byte as submitted.
CREATE TABLE job_configs (
  job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  yaml   TEXT NOT NULL
);

-- Jobs brought over from another queue (CVLab-Kit's), so a second import of the same row adds nothing.
CREATE TABLE job_imports (
  source      TEXT NOT NULL,
  external_id TEXT NOT NULL,
  job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  imported_at TEXT NOT NULL,
  PRIMARY KEY (source, external_id)
);
