-- Who sweeps retention now: the gateway holding this row until `until`, renewed while it
-- sweeps and deleted when it is done. Taken and renewed by single statements (no transaction
-- is held while the sweep waits for actor hosts); a crashed holder's lease runs out. Not a
-- projection: kept by replay like the keys.
CREATE TABLE IF NOT EXISTS retention_lease (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT NOT NULL,
  until  TIMESTAMPTZ NOT NULL
);
