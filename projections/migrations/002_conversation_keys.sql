-- Erasure by crypto-shredding. Each conversation's prompts, replies and confirmed data are
-- sealed in the log (AES-256-GCM) with its own data key, kept here and nowhere else. Erasing
-- the conversation destroys the key: every copy of that content in Kafka becomes unreadable.
--
-- Not a projection: keys are made by the gateway and the actor host (the first content of a
-- conversation) and destroyed by the actor host (and again by the projection, when it
-- applies ConversationErased). It is never rebuilt from the log, and resetting or replaying
-- the read model keeps it: losing a key erases its conversation.
CREATE TABLE conversation_keys (
  conversation_id TEXT PRIMARY KEY,
  -- 32 random bytes; NULL once destroyed. The row stays, so no new key is ever made for an
  -- erased conversation.
  key             BYTEA,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  destroyed_at    TIMESTAMPTZ,
  CHECK ((key IS NULL) = (destroyed_at IS NOT NULL))
);

-- When the conversation was erased (its messages, confirmed data and events' content are
-- removed then; the row stays, with its state stripped of content).
ALTER TABLE conversations ADD COLUMN erased_at TIMESTAMPTZ;
