-- Which conversation had which clip of the audio cache spoken (a reply's sentences, spoken one by
-- one while it streamed, are clips of their own that no event names). Erasing a conversation
-- deletes the clips only it used. Written by the actor host with the clip, like audio_cache,
-- which is not a projection either: a replay keeps both.
CREATE TABLE audio_uses (
  conversation_id TEXT NOT NULL,
  audio_id        TEXT NOT NULL,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, audio_id)
);
CREATE INDEX audio_uses_audio ON audio_uses (audio_id);
