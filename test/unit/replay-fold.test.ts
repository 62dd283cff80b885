// A replay folds with the messages' text still sealed and opens, at the end, what the states
// keep (actors/replay-fold.ts): its states must be the states of an eager decode and fold.
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createReplayFold } from '../../actors/replay-fold.ts';
import type { Replayed } from '../../actors/replay-fold.ts';
import { evolve, initialState, SeqGap } from '../../actors/state.ts';
import { decodeEvent, encodeSealedEvent, envelope } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';
import type { LogRecord } from '../../log/port.ts';
import { ERASED_TEXT, newDataKey } from '../../sealing/seal.ts';

const at = (id: string, lastSeq: number, events: DomainEvent[]): EventEnvelope[] =>
  envelope(id, lastSeq, events, { causationId: null, correlationId: null, traceparent: null, now: new Date('2026-12-02T01:00:00Z'), newId: randomUUID });

const started: DomainEvent = { type: 'ConversationStarted', data: { twinId: 't', twinName: 'Twin', userId: null, metadata: {} } };
const prompt = (text: string): DomainEvent => ({ type: 'PromptReceived', data: { text, requestId: null } });
const reply = (promptSeq: number, text: string): DomainEvent => ({ type: 'ReplyGenerated', data: { promptSeq, text, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } });

/** A conversation of `turns` prompt/reply pairs after its start. */
function chat(id: string, turns: number): EventEnvelope[] {
  const domain: DomainEvent[] = [started];
  for (let i = 0; i < turns; i++) {
    domain.push(prompt(`question ${i} of ${id}`));
    domain.push(reply(domain.length, `answer ${i} to ${id}`));
  }
  return at(id, 0, domain);
}

/** The records of `events`, sealed with their conversation's key, one partition in this order. */
const recordsOf = (events: EventEnvelope[], keys: Map<string, Uint8Array>): LogRecord[] =>
  events.map((e, offset) => ({ ...encodeSealedEvent(e, keys.get(e.conversationId)), topic: 'events', partition: 0, offset, timestamp: 0 }));

/** What a replay gave before: every event decoded with its content opened, then folded. */
function eager(records: LogRecord[], ring: Map<string, Uint8Array>, keep: number): Map<string, Replayed> {
  const states = new Map<string, Replayed>();
  for (const r of records) {
    const e = decodeEvent(r, ring);
    states.set(e.conversationId, { state: evolve(states.get(e.conversationId)?.state ?? initialState(e.conversationId), e, keep), position: e.position });
  }
  return states;
}

function lazy(records: LogRecord[], ring: Map<string, Uint8Array>, keep: number) {
  const fold = createReplayFold(keep);
  for (const r of records) fold.add(r, ring);
  return fold.finish();
}

/** Conversations' events interleaved, as live traffic writes them. */
function interleave(...lists: EventEnvelope[][]): EventEnvelope[] {
  const out: EventEnvelope[] = [];
  for (let i = 0; i < Math.max(...lists.map((l) => l.length)); i++) for (const l of lists) if (l[i]) out.push(l[i]!);
  return out;
}

describe('replay opening the messages it keeps at the end', () => {
  it('gives the states of an eager decode, for every keep, with the text of the kept messages opened', () => {
    const ids = ['c-long', 'c-short', 'c-erased'];
    const keys = new Map(ids.map((id) => [id, newDataKey()]));
    const records = recordsOf(interleave(chat('c-long', 30), chat('c-short', 2), chat('c-erased', 5)), keys);
    // c-erased's key is gone (crypto-shredded): its text reads as the marker, as it did.
    const ring = new Map([...keys].filter(([id]) => id !== 'c-erased'));
    for (const keep of [1, 4, 40, Infinity]) {
      const r = lazy(records, ring, keep);
      expect(r.states).toEqual(eager(records, ring, keep));
      expect(r.events).toBe(records.length);
    }
    const r = lazy(records, ring, 4);
    expect(r.states.get('c-long')!.state.messages.map((m) => m.content)).toEqual(['question 28 of c-long', 'answer 28 to c-long', 'question 29 of c-long', 'answer 29 to c-long']);
    expect(r.states.get('c-erased')!.state.messages.map((m) => m.content)).toEqual(Array(4).fill(ERASED_TEXT));
    // No placeholder is left in any message (it starts with a NUL, which no text read here has).
    for (const { state } of r.states.values()) for (const m of state.messages) expect(m.content).not.toMatch(/^\u0000/);
  });

  it('keeps the text a stopped reply replaced, what a flow says, confirmed and proposed data, an erasure and content that does not open', () => {
    const id = 'c-mixed';
    const key = newDataKey();
    const keys = new Map([[id, key]]);
    const events = at(id, 0, [
      started,
      prompt('tell me a story'),
      reply(2, 'Once upon a time there was a long story'),
      // After the reply: the user heard only its first 9 characters; the history holds those.
      { type: 'ReplyStopped', data: { promptSeq: 2, text: 'Once upon a time there was a long story', heardChars: 9, replySeq: 3 } },
      prompt('and then?'),
      // Stopped before anything was heard: no message.
      { type: 'ReplyStopped', data: { promptSeq: 5, text: 'And', heardChars: 0 } },
      { type: 'MessageSaid', data: { task: 'ask', kind: 'say', node: null, text: 'What is your name?', awaitUntil: null } },
      { type: 'DataProposed', data: { replySeq: 3, data: { name: 'Ada', city: 'Turin' } } },
      { type: 'DataConfirmed', data: { data: { name: 'Ada' }, requestId: null } },
      prompt('bye'),
    ]);
    const records = recordsOf(events, keys);
    // One reply's ciphertext damaged: it does not authenticate, so it reads as the marker.
    const tampered = recordsOf(at(id, events.length, [reply(10, 'a reply that was tampered with')]), keys).map((r, i) => {
      const v = JSON.parse(r.value);
      v.data.text.ct = Buffer.from(Buffer.from(v.data.text.ct, 'base64').map((b, j) => (j === 0 ? b ^ 1 : b))).toString('base64');
      return { ...r, offset: records.length + i, value: JSON.stringify(v) };
    });
    const all = [...records, ...tampered];
    for (const keep of [2, 3, 40]) expect(lazy(all, keys, keep).states).toEqual(eager(all, keys, keep));
    const s = lazy(all, keys, 40).states.get(id)!.state;
    expect(s.messages.map((m) => m.content)).toEqual(['tell me a story', 'Once upon', 'and then?', 'What is your name?', 'bye', ERASED_TEXT]);
    expect(s.confirmedData).toEqual({ name: 'Ada' });
    expect(s.proposal?.data).toEqual({ city: 'Turin' });

    const erased = [...all, ...recordsOf(at(id, all.length, [{ type: 'ConversationErased', data: { by: null, via: 'api', reason: null, prompts: 3, replies: 3, confirmedFields: 1 } }]), keys).map((r) => ({ ...r, offset: all.length }))];
    expect(lazy(erased, keys, 40).states).toEqual(eager(erased, keys, 40));
    expect(lazy(erased, keys, 40).states.get(id)!.state.messages).toEqual([]);
  });

  it('keeps the first event with a seq (a later one with its seq is ignored, its content with it) and throws on a gap', () => {
    const id = 'c-dup';
    const keys = new Map([[id, newDataKey()]]);
    const events = chat(id, 3);
    // A fenced zombie wrote seq 4 again, with another reply: the first one wins.
    const zombie = { ...events[3]!, eventId: randomUUID(), data: { ...events[3]!.data, text: 'the zombie\'s reply' } } as EventEnvelope;
    const records = recordsOf([...events.slice(0, 4), zombie, ...events.slice(4)], keys);
    for (const keep of [2, 40]) expect(lazy(records, keys, keep).states).toEqual(eager(records, keys, keep));
    expect(lazy(records, keys, 40).states.get(id)!.state.messages.map((m) => m.content)).not.toContain('the zombie\'s reply');

    const gap = recordsOf([events[0]!, events[2]!], keys);
    expect(() => lazy(gap, keys, 40)).toThrow(SeqGap);
    expect(() => lazy(gap, keys, 40)).toThrow(/expected seq 2, got 3/);
  });
});
