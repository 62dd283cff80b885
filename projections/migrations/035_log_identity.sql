-- The event log these read models are built from (runtime/log-identity.ts): a process whose
-- log is another one refuses to project into them or serve from them. One row; kept by replay,
-- which records the log it rebuilt from.
CREATE TABLE IF NOT EXISTS log_identity (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  log         TEXT NOT NULL,
  log_where   TEXT NOT NULL,
  recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
