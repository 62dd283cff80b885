-- The caller's utterances, kept only with GEMELLO_KEEP_VOICE (off by default): each sealed
-- with its conversation's data key (AES-256-GCM, iv || ciphertext || tag, bound to
-- "<conversation>|<audioId>|voice"), so erasing the conversation makes it unreadable; the
-- projection also deletes its rows when it applies ConversationErased. Not a projection of
-- the log (the audio is never in the log): a rebuild keeps the table as it is.
CREATE TABLE IF NOT EXISTS voice_clips (
  id text PRIMARY KEY,
  conversation_id text NOT NULL,
  format text NOT NULL,
  content_type text NOT NULL,
  sealed_audio bytea NOT NULL,
  duration_seconds double precision NOT NULL,
  size_bytes integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS voice_clips_by_conversation ON voice_clips (conversation_id);
