import type { SnapshotStore } from '../actors/ports.ts';
import { REPLAY_SHARE, REPLAY_WORKERS, replayLog } from '../actors/replay.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { Progress } from './progress.ts';

/**
 * `gemello snapshots rebuild`: folds every conversation from the log (the whole-log replay of
 * actors/replay.ts: partitions read side by side, decoding and folding in a worker thread
 * beside this one, only the kept messages' text opened) and writes each one's snapshot;
 * returns how many. An erased conversation keeps none.
 */
export async function rebuildSnapshots(deps: { log: EventLog; snapshots: SnapshotStore; keys: KeyStore; progress: Progress; historyMessages?: number }): Promise<number> {
  const ends = await deps.log.endOffsets(TOPICS.events);
  deps.progress.start('reading the log', ends.reduce((a, b) => a + b, 0));
  const { states } = await replayLog({
    log: deps.log,
    keys: deps.keys,
    keep: deps.historyMessages,
    workers: REPLAY_WORKERS,
    share: REPLAY_SHARE,
    onRecords: (n) => deps.progress.advance(n),
  });
  deps.progress.done();
  deps.progress.start('writing snapshots', states.size);
  let n = 0;
  for (const [id, { state, position }] of states) {
    await deps.snapshots.delete(id);
    deps.progress.advance(1);
    if (state.erased) continue;
    await deps.snapshots.put({ conversationId: id, seq: state.seq, eventId: state.lastEventId, position, state });
    n++;
  }
  deps.progress.done();
  return n;
}
