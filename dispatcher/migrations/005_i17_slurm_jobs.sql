-- Slurm as the scheduler: which Slurm job carries each attempt of a labrig job, and the claim token
-- (hashed) its batch script shows when it claims its allocation for the node's labrig agent.
CREATE TABLE slurm_jobs (
  job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt          INTEGER NOT NULL,
  claim_token_hash TEXT NOT NULL UNIQUE,
  slurm_job_id     TEXT,                  -- NULL until sbatch has answered
  submitted_at     TEXT NOT NULL,
  cancelled_at     TEXT,                  -- when scancel was run for it
  PRIMARY KEY (job_id, attempt)
);
CREATE INDEX slurm_jobs_slurm_id ON slurm_jobs (slurm_job_id);
