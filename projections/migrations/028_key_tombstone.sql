-- Which tombstone of the keys topic destroyed the conversation's key: the id the first one
-- carries (its `at` for tombstones written before ids). Only tombstones set it (the actor
-- host's destroy and the key sync); the projection's mark on ConversationErased leaves it
-- empty. So an erasure can tell whether its own tombstone destroyed the key, though another
-- process copied that tombstone, or the projection marked the row, before it got there.
ALTER TABLE conversation_keys ADD COLUMN IF NOT EXISTS tombstone_id TEXT;
-- Keys destroyed before this column existed: by an earlier erasure.
UPDATE conversation_keys SET tombstone_id = 'before 028' WHERE destroyed_at IS NOT NULL AND tombstone_id IS NULL;
