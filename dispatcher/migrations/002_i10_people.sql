-- People and their roles, join tokens with an expiry and a use count, who owns each job, and the
-- credential the dispatcher itself shows an agent's local server when it relays a live log.

CREATE TABLE people (
  name        TEXT PRIMARY KEY,
  role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
  token_hash  TEXT NOT NULL UNIQUE,
  created_at  TEXT NOT NULL,
  created_by  TEXT,
  revoked_at  TEXT
);

CREATE TABLE join_tokens (
  id          TEXT PRIMARY KEY,
  token_hash  TEXT NOT NULL UNIQUE,
  note        TEXT,
  created_at  TEXT NOT NULL,
  created_by  TEXT,
  expires_at  TEXT,                       -- NULL: never
  uses_left   INTEGER,                    -- NULL: unlimited
  uses        INTEGER NOT NULL DEFAULT 0,
  revoked_at  TEXT
);

ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs (owner, seq);

ALTER TABLE agents ADD COLUMN relay_token TEXT;
