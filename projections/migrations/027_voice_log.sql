-- The callers' kept utterances now live in the log (topic gemello.voice, sealed, in segments
-- of 192 KiB): voice_clips is its read model, filled by the voice projection and rebuilt by
-- `gemello restore`. voice_segments holds the segments of a clip not yet whole; voice_sync
-- the next offset of each partition of the topic applied here (written in the same
-- transaction as the rows, like the projection's checkpoints).
CREATE TABLE IF NOT EXISTS voice_segments (
  audio_id text NOT NULL,
  part integer NOT NULL,
  conversation_id text NOT NULL,
  sealed bytea NOT NULL,
  PRIMARY KEY (audio_id, part)
);
CREATE INDEX IF NOT EXISTS voice_segments_by_conversation ON voice_segments (conversation_id);
CREATE TABLE IF NOT EXISTS voice_sync (
  partition integer PRIMARY KEY,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
