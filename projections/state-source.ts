import type { Snapshot, StateSource } from '../actors/ports.ts';
import type { ConversationState } from '../actors/state.ts';
import type { Db } from './sql.ts';

/** The read model as a recovery tier: a conversation's projected state and where it stands in the log. */
export function createReadModelStateSource(db: Db, name = 'readmodel'): StateSource {
  return {
    async stateOf(conversationId) {
      const [row] = await db.query<{ state: ConversationState; last_seq: number; last_event_id: string | null; last_partition: number; last_offset: number }>(
        'SELECT state, last_seq, last_event_id, last_partition, last_offset FROM conversations WHERE id = $1',
        [conversationId],
      );
      if (!row) return null;
      return {
        conversationId,
        seq: Number(row.last_seq),
        eventId: row.last_event_id,
        position: { partition: Number(row.last_partition), offset: Number(row.last_offset) },
        state: row.state,
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
