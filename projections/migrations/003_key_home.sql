-- The data keys' home moves to the log: the compacted topic gemello.keys holds each
-- conversation's key wrapped by the master key (which is in neither Kafka nor here).
-- conversation_keys becomes a cache of that topic: wrapped keys only, rebuilt from the
-- topic at start (key_sync says how far), so losing this database loses no key.
-- `key` (the plain key of earlier versions) is emptied by `gemello migrate`, which first
-- moves each one into the topic.
ALTER TABLE conversation_keys DROP CONSTRAINT IF EXISTS conversation_keys_check;
ALTER TABLE conversation_keys ADD COLUMN wrapped JSONB;
ALTER TABLE conversation_keys ADD COLUMN kek TEXT;
-- When the key's record was acknowledged by the log: a key is used only after that.
ALTER TABLE conversation_keys ADD COLUMN logged_at TIMESTAMPTZ;
ALTER TABLE conversation_keys ADD CONSTRAINT conversation_keys_destroyed_holds_nothing
  CHECK (destroyed_at IS NULL OR (key IS NULL AND wrapped IS NULL));

-- How far each partition of the keys topic has been copied into conversation_keys.
CREATE TABLE key_sync (
  partition   INTEGER PRIMARY KEY,
  next_offset BIGINT NOT NULL,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
