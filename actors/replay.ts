import { decodeEvent, isEventRecord } from '../events/codec.ts';
import type { LogPosition } from '../events/schemas.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { keysFor } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
import { evolve, HISTORY_MESSAGES, initialState } from './state.ts';
import type { ConversationState } from './state.ts';

/** A conversation as the replay left it: its state and the position of its last event. */
export type Replayed = { state: ConversationState; position: LogPosition };

export type ReplayOptions = {
  log: EventLog;
  /** The conversations' data keys; without them sealed content reads as erased. */
  keys?: KeyStore | null;
  /** The partitions to replay (default: all), read side by side. */
  partitions?: number[];
  /** Messages each state keeps (GEMELLO_HISTORY_MESSAGES). */
  keep?: number;
  /** Called with each batch's record count, for progress. */
  onRecords?: (n: number) => void;
};

/**
 * Full replay: reads partitions from offset 0 to their end and folds every conversation's
 * events (the log rule of evolve: the first event with a seq wins, a gap throws). Returns
 * each conversation's state; `events` counts the events folded.
 */
export async function replayLog(options: ReplayOptions): Promise<{ states: Map<string, Replayed>; events: number }> {
  const { log } = options;
  const keep = options.keep ?? HISTORY_MESSAGES;
  const parts = options.partitions ?? Array.from({ length: log.partitions }, (_, p) => p);
  const states = new Map<string, Replayed>();
  let events = 0;
  await Promise.all(parts.map((p) => log.read(TOPICS.events, p, 0, async (records) => {
    const ring = await keysFor(options.keys, records);
    for (const r of records) {
      if (!isEventRecord(r)) continue;
      const e = decodeEvent(r, ring);
      const before = states.get(e.conversationId);
      states.set(e.conversationId, { state: evolve(before?.state ?? initialState(e.conversationId), e, keep), position: e.position });
      events++;
    }
    options.onRecords?.(records.length);
  })));
  return { states, events };
}
