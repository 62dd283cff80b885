-- The retention job (GEMELLO_RETENTION_DAYS) asks hourly for the conversations, not erased,
-- whose last event is older than the cutoff, oldest first: this index answers that without a
-- scan of every conversation.
CREATE INDEX IF NOT EXISTS conversations_retention_idx ON conversations ((COALESCE(last_event_at, started_at)), id) WHERE erased_at IS NULL;
