import { isEventRecord } from '../events/codec.ts';
import { keysFor } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { LogPosition } from '../events/schemas.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { CorruptSnapshot } from './ports.ts';
import { createReplayFold } from './replay-fold.ts';
import type { Snapshot, SnapshotStore, StateSource } from './ports.ts';
import { fold, HISTORY_MESSAGES, initialState, keptMessages } from './state.ts';
import type { ConversationState } from './state.ts';
import type { TailIndex } from './tail.ts';

export type Tier = 'memory' | 'snapshot' | 'readmodel' | 'replay';

export type Recovered = {
  state: ConversationState;
  /** Position of the last event folded in, or null for a conversation with no events. */
  position: LogPosition | null;
  tier: Exclude<Tier, 'memory'>;
  /** How many log events were folded on top of the base. */
  folded: number;
  /** Why faster tiers were passed over, for logs and metrics. */
  skipped: string[];
};

export type RecoveryDeps = {
  log: EventLog;
  snapshots: SnapshotStore;
  readModel: StateSource | null;
  keys?: KeyStore | null;
  /** Messages the recovered state keeps (GEMELLO_HISTORY_MESSAGES). */
  historyMessages?: number;
};

/**
 * Rebuilds a conversation that is not in memory, fastest tier first:
 * snapshot + tail, then projected state + tail, then a replay of the partition.
 * A base (snapshot or projected state) is used only if the tail provably continues it.
 */
export function createRecovery(deps: RecoveryDeps) {
  /** Why `base` cannot be continued by the tail, or null when it can. */
  function mismatch(base: Snapshot, partition: number, tail: TailIndex): string | null {
    if (base.position.partition !== partition) return `it is for partition ${base.position.partition}`;
    const events = tail.eventsOf(base.conversationId);
    if (base.position.offset >= tail.start) {
      const at = events.find((e) => e.position.offset === base.position.offset);
      if (!at || at.eventId !== base.eventId || at.seq !== base.seq) return `the log has no event ${base.eventId} at seq ${base.seq} and offset ${base.position.offset}`;
      const winner = events.find((e) => e.seq === base.seq);
      if (winner !== at) return `seq ${base.seq} was first written by another event`;
    } else {
      const next = events.find((e) => e.seq > base.seq);
      if (next && next.seq !== base.seq + 1) return `it stops at seq ${base.seq} but the tail resumes at ${next.seq}`;
      if (!next && events.length && events[events.length - 1]!.seq < base.seq) return `it is ahead of the log`;
    }
    return null;
  }

  const keep = deps.historyMessages ?? HISTORY_MESSAGES;

  function continueFrom(base: Snapshot | null, conversationId: string, tail: TailIndex) {
    const events = tail.eventsOf(conversationId).filter((e) => !base || e.seq > base.seq);
    // A base written by an earlier version may hold the whole transcript: cut to what is kept.
    const start = base ? { ...base.state, messages: keptMessages(base.state.messages, base.state.pendingPrompts, base.state.pendingAudio, keep) } : initialState(conversationId);
    const state = fold(conversationId, events, start, keep);
    const last = events[events.length - 1];
    return { state, position: last ? last.position : (base?.position ?? null), folded: events.length };
  }

  /** The conversation's events from offset 0 folded: its messages' text opened for those it keeps only (actors/replay-fold.ts). */
  async function replay(conversationId: string, partition: number, tail: TailIndex) {
    const replayed = createReplayFold(keep);
    await deps.log.read(TOPICS.events, partition, 0, async (records) => {
      const mine = records.filter((r) => r.offset < tail.start && r.key === conversationId && isEventRecord(r));
      const ring = await keysFor(deps.keys, mine);
      for (const r of mine) replayed.add(r, ring);
    });
    for (const e of tail.eventsOf(conversationId)) replayed.fold(e, null);
    const { states, events } = replayed.finish();
    const r = states.get(conversationId);
    return { state: r?.state ?? initialState(conversationId), position: r?.position ?? null, folded: events };
  }

  return {
    /** `snapshot`: the conversation's snapshot as read ahead (at a takeover), instead of reading it now. */
    async recover(conversationId: string, partition: number, tail: TailIndex, snapshot?: Promise<Snapshot | null>): Promise<Recovered> {
      const skipped: string[] = [];
      try {
        const snap = await (snapshot ?? deps.snapshots.get(conversationId));
        if (snap) {
          const why = mismatch(snap, partition, tail);
          if (!why) return { ...continueFrom(snap, conversationId, tail), tier: 'snapshot', skipped };
          skipped.push(`snapshot: ${why}`);
        } else skipped.push('snapshot: none');
      } catch (err) {
        skipped.push(`snapshot: ${err instanceof CorruptSnapshot ? 'corrupt' : 'unavailable'} (${(err as Error).message})`);
      }
      if (deps.readModel) {
        try {
          const covered = await deps.readModel.coveredUntil(partition);
          // The projection must have applied everything before the tail, or events between
          // its state and the tail could be missing.
          if (covered !== null && covered >= tail.start) {
            const projected = await deps.readModel.stateOf(conversationId);
            const why = projected ? mismatch(projected, partition, tail) : null;
            if (!why) return { ...continueFrom(projected, conversationId, tail), tier: 'readmodel', skipped };
            skipped.push(`read model: ${why}`);
          } else skipped.push(`read model: covers partition ${partition} up to ${covered ?? 'nothing'}, tail starts at ${tail.start}`);
        } catch (err) {
          skipped.push(`read model: unavailable (${(err as Error).message})`);
        }
      }
      if (tail.start === 0) return { ...continueFrom(null, conversationId, tail), tier: 'replay', skipped };
      return { ...(await replay(conversationId, partition, tail)), tier: 'replay', skipped };
    },
  };
}
