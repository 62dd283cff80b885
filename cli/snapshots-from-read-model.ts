import type { SnapshotStore } from '../actors/ports.ts';
import { createReadModelStateSource } from '../projections/state-source.ts';
import { HISTORY_MESSAGES } from '../actors/state.ts';
import type { Db } from '../stores/sql.ts';
import type { Progress } from './progress.ts';

const PAGE = 1_000;

/**
 * Writes every conversation's snapshot from the read model just rebuilt (the restore's last
 * step): its projected state and last messages, as the read-model recovery tier serves them,
 * instead of reading and folding the log a second time. An erased conversation keeps no
 * snapshot. `concurrency` snapshots are read and written side by side; returns how many were written.
 */
export async function snapshotsFromReadModel(deps: { db: Db; snapshots: SnapshotStore; progress?: Progress; historyMessages?: number; concurrency?: number }): Promise<number> {
  const source = createReadModelStateSource(deps.db, 'readmodel', deps.historyMessages ?? HISTORY_MESSAGES);
  const [count] = await deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM conversations');
  deps.progress?.start('writing snapshots from the read model', Number(count?.n ?? 0));
  let written = 0;
  let after = '';
  for (;;) {
    const page = await deps.db.query<{ id: string }>('SELECT id FROM conversations WHERE id > $1 ORDER BY id LIMIT $2', [after, PAGE]);
    if (!page.length) break;
    after = page[page.length - 1]!.id;
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(deps.concurrency ?? 16, page.length) }, async () => {
      while (next < page.length) {
        const { id } = page[next++]!;
        const snap = await source.stateOf(id);
        if (!snap || snap.state.erased) await deps.snapshots.delete(id);
        else {
          await deps.snapshots.put(snap);
          written++;
        }
        deps.progress?.advance(1);
      }
    }));
  }
  deps.progress?.done();
  return written;
}
