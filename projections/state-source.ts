import type { Snapshot, StateSource } from '../actors/ports.ts';
import type { ConversationState, Message } from '../actors/state.ts';
import type { StoredState } from './plan.ts';
import type { Db } from '../stores/sql.ts';

// conversations.state holds the fold without its transcript; the transcript is the
// conversation's rows in messages. One round trip puts them back together.
const STATE_OF = `
SELECT c.state, c.last_seq, c.last_event_id, c.last_partition, c.last_offset,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('seq', m.seq, 'role', m.role, 'content', m.content) ORDER BY m.seq), '[]'::jsonb)
   FROM messages m WHERE m.conversation_id = c.id) AS messages
FROM conversations c WHERE c.id = $1`;

/** The read model as a recovery tier: a conversation's projected state and where it stands in the log. */
export function createReadModelStateSource(db: Db, name = 'readmodel'): StateSource {
  return {
    async stateOf(conversationId) {
      const [row] = await db.query<{ state: StoredState; messages: Message[]; last_seq: number; last_event_id: string | null; last_partition: number; last_offset: number }>(
        STATE_OF,
        [conversationId],
      );
      if (!row) return null;
      const state: ConversationState = { ...row.state, messages: row.messages };
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
