import type { Snapshot, StateSource } from '../actors/ports.ts';
import { HISTORY_MESSAGES, MAX_PENDING_AUDIO, MAX_PENDING_PROMPTS } from '../actors/state.ts';
import type { Message } from '../actors/state.ts';
import { upcastState } from '../actors/upcast-state.ts';
import type { StoredStateAnyVersion } from '../actors/upcast-state.ts';
import type { Db } from '../stores/sql.ts';

// conversations.state holds the fold without its messages; they are the conversation's rows
// in messages, of which the state keeps only the most recent: one round trip reads those
// (the index on (conversation_id, seq) walked backwards, LIMIT rows, whatever the length).
// A state projected before the counters existed has them counted from the rows, once.
const STATE_OF = `
SELECT c.state, c.last_seq, c.last_event_id, c.last_partition, c.last_offset,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('seq', r.seq, 'role', r.role, 'content', r.content) ORDER BY r.seq), '[]'::jsonb)
   FROM (SELECT m.seq, m.role, m.content FROM messages m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT $2) r) AS messages,
  CASE WHEN c.state->'prompts' IS NULL THEN (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user') END AS prompts,
  CASE WHEN c.state->'replies' IS NULL THEN (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'assistant') END AS replies
FROM conversations c WHERE c.id = $1`;

/** The read model as a recovery tier: a conversation's projected state (its last `keep` messages) and where it stands in the log. */
export function createReadModelStateSource(db: Db, name = 'readmodel', keep = HISTORY_MESSAGES): StateSource {
  // Pending work can keep older messages (see keptMessages): read enough for it.
  const rows = keep + MAX_PENDING_PROMPTS + 2 * MAX_PENDING_AUDIO;
  return {
    async stateOf(conversationId) {
      const [row] = await db.query<{ state: StoredStateAnyVersion; messages: Message[]; prompts: number | null; replies: number | null; last_seq: number; last_event_id: string | null; last_partition: number; last_offset: number }>(
        STATE_OF,
        [conversationId, rows],
      );
      if (!row) return null;
      const counts = row.prompts === null || row.replies === null ? undefined : { prompts: Number(row.prompts), replies: Number(row.replies) };
      const state = upcastState({ ...row.state, messages: row.messages }, keep, counts);
      return {
        conversationId,
        seq: Number(row.last_seq),
        eventId: row.last_event_id,
        position: { partition: Number(row.last_partition), offset: Number(row.last_offset) },
        state,
      } satisfies Snapshot;
    },
    async coveredUntil(partition) {
      const [row] = await db.query<{ next_offset: number }>(
        'SELECT next_offset FROM projection_checkpoints WHERE projection = $1 AND partition = $2',
        [name, partition],
      );
      return row ? Number(row.next_offset) : null;
    },
  };
}
