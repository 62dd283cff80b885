import type { Db } from '../stores/sql.ts';

/**
 * Empties the projected tables and the projection's checkpoints in one transaction, so
 * the read model is rebuilt from offset 0: a projector started afterwards finds its
 * checkpoints behind the consumer group and reads the log from the start. Run it with the
 * projector stopped. digital_twins and audio_cache are not projections and are kept.
 */
export async function resetReadModel(db: Db, name = 'readmodel'): Promise<void> {
  await db.tx(async (q) => {
    await q.exec('TRUNCATE conversations, messages, confirmed_data, events');
    await q.query('DELETE FROM projection_checkpoints WHERE projection = $1', [name]);
  });
}
