import { fold } from '../actors/state.ts';
import type { SnapshotStore } from '../actors/ports.ts';
import type { EventLog } from '../log/port.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { Progress } from './progress.ts';
import { forEachConversation } from './verify.ts';

/** `gemello snapshots rebuild`: folds every conversation from the log and writes its snapshot; returns how many. */
export async function rebuildSnapshots(deps: { log: EventLog; snapshots: SnapshotStore; keys: KeyStore; progress: Progress; historyMessages?: number }): Promise<number> {
  let n = 0;
  await forEachConversation(deps.log, deps.progress, async (id, events) => {
    const state = fold(id, events, undefined, deps.historyMessages);
    const last = events[events.length - 1]!;
    await deps.snapshots.delete(id);
    if (state.erased) return; // an erased conversation keeps no snapshot
    await deps.snapshots.put({ conversationId: id, seq: state.seq, eventId: state.lastEventId, position: last.position, state });
    n++;
  }, deps.keys);
  return n;
}
