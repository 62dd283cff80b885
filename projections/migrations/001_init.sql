-- Read models of gemello (DESIGN §5). Every table but digital_twins and audio_cache is a
-- projection of the events topic and can be rebuilt from offset 0: drop the rows and the
-- projection's checkpoints, and the projector replays the log.

CREATE TABLE digital_twins (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  system_prompt TEXT NOT NULL DEFAULT '',
  model         TEXT NOT NULL DEFAULT 'gpt-4.1-nano',
  voice_id      TEXT,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per conversation. `state` is the fold of its events up to `last_seq` (the value
-- actors/state.ts computes) except its transcript, `messages`, which is this
-- conversation's rows in the messages table; last_partition/last_offset is where that
-- event sits in the log. The actor host recovers from here plus the log's tail.
-- No foreign key to digital_twins: the log is the truth, and a twin removed from the
-- catalog must not stop the projection.
CREATE TABLE conversations (
  id             TEXT PRIMARY KEY,
  twin_id        TEXT,
  twin_name      TEXT,
  user_id        TEXT,
  started_at     TIMESTAMPTZ,
  ended_at       TIMESTAMPTZ,
  metadata       JSONB NOT NULL DEFAULT '{}',
  state          JSONB NOT NULL,
  last_seq       INTEGER NOT NULL,
  last_event_id  UUID,
  last_event_at  TIMESTAMPTZ,
  last_partition INTEGER NOT NULL,
  last_offset    BIGINT NOT NULL,
  updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX conversations_twin_idx ON conversations (twin_id, started_at);
CREATE INDEX conversations_user_idx ON conversations (user_id);

-- One row per prompt (role 'user', from PromptReceived) or reply (role 'assistant', from
-- ReplyGenerated). seq is the event's seq. Speech lands in metadata.audio (AudioReady)
-- or metadata.audioError (AudioFailed) of the reply.
CREATE TABLE messages (
  conversation_id   TEXT NOT NULL,
  seq               INTEGER NOT NULL,
  role              TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
  content           TEXT NOT NULL,
  reply_to_seq      INTEGER,
  tokens_used       INTEGER,
  prompt_tokens     INTEGER,
  completion_tokens INTEGER,
  model             TEXT,
  model_latency_ms  DOUBLE PRECISION,
  request_id        TEXT,
  event_id          UUID NOT NULL,
  created_at        TIMESTAMPTZ,
  metadata          JSONB NOT NULL DEFAULT '{}',
  PRIMARY KEY (conversation_id, seq)
);

-- One row per key of each DataConfirmed event; confirmed_data_latest is the current value.
CREATE TABLE confirmed_data (
  conversation_id TEXT NOT NULL,
  seq             INTEGER NOT NULL,
  key             TEXT NOT NULL,
  value           JSONB,
  event_id        UUID NOT NULL,
  confirmed_at    TIMESTAMPTZ,
  PRIMARY KEY (conversation_id, seq, key)
);
CREATE VIEW confirmed_data_latest AS
  SELECT DISTINCT ON (conversation_id, key) conversation_id, key, value, seq, confirmed_at
  FROM confirmed_data
  ORDER BY conversation_id, key, seq DESC;

-- Synthesised speech, written by the actor host (not a projection). One row per
-- (text, voice, format); audio_cache.id is the audioId of AudioReady and of /api/audio/:id.
CREATE TABLE audio_cache (
  id               TEXT PRIMARY KEY,
  text_hash        TEXT NOT NULL,
  voice            TEXT NOT NULL,
  format           TEXT NOT NULL DEFAULT 'mp3',
  content_type     TEXT NOT NULL,
  audio            BYTEA NOT NULL,
  duration_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
  size_bytes       INTEGER NOT NULL,
  hits             INTEGER NOT NULL DEFAULT 0,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_accessed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (text_hash, voice, format)
);

-- Every event as readers of the log see it: the first event with a given seq of a
-- conversation (a later one, from a fenced writer or a redelivery, is not projected),
-- at its current schema version (upcast), with its position in the log.
CREATE TABLE events (
  event_id        UUID PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  seq             INTEGER NOT NULL,
  type            TEXT NOT NULL,
  schema_version  INTEGER NOT NULL,
  occurred_at     TIMESTAMPTZ,
  causation_id    TEXT,
  correlation_id  TEXT,
  traceparent     TEXT,
  data            JSONB NOT NULL,
  partition       INTEGER NOT NULL,
  log_offset      BIGINT NOT NULL,
  UNIQUE (conversation_id, seq)
);
CREATE INDEX events_type_idx ON events (type, occurred_at);

-- Replies the model could not give, with the prompt they answer.
CREATE VIEW failed_replies AS
  SELECT e.conversation_id,
         e.seq,
         (e.data->>'promptSeq')::int AS prompt_seq,
         p.content AS prompt,
         e.data->>'code' AS code,
         e.data->>'reason' AS reason,
         (e.data->>'latencyMs')::float8 AS model_latency_ms,
         e.occurred_at AS failed_at
  FROM events e
  LEFT JOIN messages p ON p.conversation_id = e.conversation_id AND p.seq = (e.data->>'promptSeq')::int
  WHERE e.type = 'ReplyFailed';

-- Where each projection is in each partition: every event before next_offset is applied.
-- Written in the same transaction as the rows, so a crash neither skips nor repeats one.
CREATE TABLE projection_checkpoints (
  projection  TEXT NOT NULL,
  partition   INTEGER NOT NULL,
  next_offset BIGINT NOT NULL,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (projection, partition)
);
