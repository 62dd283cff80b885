import { randomUUID } from 'node:crypto';
import { decodeEventValue, openDeferred } from '../events/codec.ts';
import type { Deferred, Later } from '../events/codec.ts';
import type { EventEnvelope, EventType, LoggedEvent, LogPosition } from '../events/schemas.ts';
import type { LogRecord } from '../log/port.ts';
import type { Keyring } from '../sealing/keys.ts';
import { evolve, initialState } from './state.ts';
import type { ConversationState } from './state.ts';

/** A conversation as the replay left it: its state and the position of its last event. */
export type Replayed = { state: ConversationState; position: LogPosition };

/**
 * The types whose sealed text evolve only copies into a message (it never looks inside it,
 * nor puts it anywhere else): a replay folds them with the text still sealed and opens, at
 * the end, only the messages the states still hold (the last `keep`). The others are opened
 * as they are decoded: evolve reads ReplyStopped's text (what was heard, whether anything
 * was), DataConfirmed's and DataProposed's fields, a flow's values and results.
 */
export const OPENED_AT_THE_END: ReadonlySet<EventType> = new Set<EventType>(['PromptReceived', 'ReplyGenerated', 'MessageSaid']);

/** Content left sealed, by the seq of the event (and so of the message) it belongs to. */
type Pending = { seq: number; deferred: Deferred };

/**
 * The fold of a replay: decodes and folds events one at a time (evolve's log rule: the first
 * event with a seq wins, a gap throws), with the text of OPENED_AT_THE_END left sealed, and
 * opens in `finish` what the final states hold. Its states are the states an eager decode
 * gives, with one AES-GCM open per message kept instead of one per event.
 */
export function createReplayFold(keep: number) {
  // Each conversation's state and the position of its last event, changed in place as events
  // come (one object a conversation, not one an event); the Replayed are made in `finish`.
  const states = new Map<string, { state: ConversationState; partition: number; offset: number }>();
  const pending = new Map<string, Pending[]>();
  // A fresh random placeholder: no text read from the log can be it, so a message that holds
  // it at the end is one whose text is still sealed (ReplyStopped can replace a message's text).
  const later: Later = { types: OPENED_AT_THE_END, placeholder: `\u0000sealed ${randomUUID()}`, taken: null };
  let events = 0;

  function foldAt(e: EventEnvelope, partition: number, offset: number, deferred: Deferred | null): void {
    const r = states.get(e.conversationId);
    const before = r?.state ?? initialState(e.conversationId);
    const state = evolve(before, e, keep);
    if (r) {
      r.state = state;
      r.partition = partition;
      r.offset = offset;
    } else states.set(e.conversationId, { state, partition, offset });
    events++;
    // An event with a seq already folded is ignored (first seq wins): its content with it.
    if (e.seq <= before.seq) return;
    let list = pending.get(e.conversationId);
    if (deferred) {
      if (!list) pending.set(e.conversationId, (list = []));
      list.push({ seq: e.seq, deferred });
    }
    if (!list) return;
    // Messages leave a state from the front only: what is before the first one kept never comes back.
    const first = state.messages[0]?.seq ?? Infinity;
    let drop = 0;
    while (drop < list.length && list[drop]!.seq < first) drop++;
    if (drop) list.splice(0, drop);
  }

  return {
    /** Folds one decoded event; `deferred`: its text, left sealed (the event holds the placeholder). */
    fold(e: LoggedEvent, deferred: Deferred | null): void {
      foldAt(e, e.position.partition, e.position.offset, deferred);
    },
    /** Decodes one event record (`keys`: the batch's, see keysFor) and folds it. */
    add(record: LogRecord, keys: Keyring | undefined): void {
      foldAt(decodeEventValue(record.value, keys, undefined, later), record.partition, record.offset, later.taken);
    },
    /** Decodes one event record's value, at that partition and offset, and folds it. */
    addValue(value: string, partition: number, offset: number, keys: Keyring | undefined): void {
      foldAt(decodeEventValue(value, keys, undefined, later), partition, offset, later.taken);
    },
    /** The states, each message's text opened, and the events folded. Call once. */
    finish(): { states: Map<string, Replayed>; events: number } {
      const out = new Map<string, Replayed>();
      for (const [id, r] of states) {
        const list = pending.get(id);
        let state = r.state;
        if (list?.length) {
          const bySeq = new Map(list.map((p) => [p.seq, p.deferred]));
          const messages = state.messages.map((m) => {
            const d = m.content === later.placeholder ? bySeq.get(m.seq) : undefined;
            return d ? { ...m, content: openDeferred(d) } : m;
          });
          state = { ...state, messages };
        }
        out.set(id, { state, position: { partition: r.partition, offset: r.offset } });
      }
      states.clear();
      pending.clear();
      return { states: out, events };
    },
  };
}
