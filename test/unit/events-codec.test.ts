import { describe, expect, it } from 'vitest';
import { decodeEvent, decodeEventValue, decodeNotice, encodeEvent, encodeNotice, encodeSealedEvent, UndecodableEvent } from '../../events/codec.ts';
import { withoutContent } from '../../sealing/personal.ts';
import { keysFor } from '../../sealing/keys.ts';
import type { KeyStore } from '../../sealing/keys.ts';
import { ERASED_TEXT, newDataKey, seal } from '../../sealing/seal.ts';
import type { LogRecord, OutgoingRecord } from '../../log/port.ts';
import type { EventEnvelope } from '../../events/schemas.ts';
import { partitionFor } from '../../log/partition.ts';
import { Partitioners } from 'kafkajs';

const base = {
  eventId: '6f1c7a1e-4a8b-4c59-9a55-1a2b3c4d5e6f',
  conversationId: 'c1',
  seq: 1,
  occurredAt: '2026-01-01T00:00:00.000Z',
  causationId: 'cmd-1',
  correlationId: 'req-1',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
};

describe('events on the wire', () => {
  it('round-trips an event with its envelope, keyed by conversation, with type, version and traceparent headers', () => {
    const e: EventEnvelope = { ...base, schemaVersion: 2, type: 'PromptReceived', data: { text: 'hi', requestId: 'req-1' } };
    const record = encodeEvent(e);
    expect(record.key).toBe('c1');
    expect(record.headers).toEqual({ 'event-type': 'PromptReceived', 'schema-version': '2', traceparent: base.traceparent });
    expect(decodeEventValue(record.value)).toEqual(e);
  });

  it('reads a prompt, reply or confirmation written in the clear in schema v1 (before sealing) as the current version', () => {
    const prompt = decodeEventValue(JSON.stringify({ ...base, type: 'PromptReceived', schemaVersion: 1, data: { text: 'old prompt', requestId: null } }));
    expect(prompt).toMatchObject({ schemaVersion: 2, data: { text: 'old prompt' } });
    const confirmed = decodeEventValue(JSON.stringify({ ...base, type: 'DataConfirmed', schemaVersion: 1, data: { data: { name: 'Ada' }, requestId: null } }), new Map());
    expect(confirmed).toMatchObject({ schemaVersion: 2, data: { data: { name: 'Ada' } } });
  });

  it('reads a ConversationStarted written in schema v1 as the current version', () => {
    const old = JSON.stringify({ ...base, type: 'ConversationStarted', schemaVersion: 1, data: { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' } });
    const e = decodeEventValue(old);
    expect(e.schemaVersion).toBe(2);
    expect(e.data).toEqual({ twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: null, metadata: {} });
  });

  it('refuses records that are not events, naming what is wrong', () => {
    expect(() => decodeEventValue('nope')).toThrow(UndecodableEvent);
    expect(() => decodeEventValue(JSON.stringify({ ...base, type: 'PromptReceived', schemaVersion: 1, data: { text: 5 } }))).toThrow(/text/);
    expect(() => decodeEventValue(JSON.stringify({ ...base, type: 'PromptReceived', schemaVersion: 9, data: {} }))).toThrow(/newer/);
  });

  it('puts a conversation on the partition kafkajs\' default (Java-compatible) partitioner picks', () => {
    const kafkaPartition = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 12 }, (_, i) => ({ partitionId: i, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
    for (let i = 0; i < 500; i++) {
      const key = i % 2 ? `conversation-${i}` : crypto.randomUUID();
      expect(partitionFor(key, 12)).toBe(kafkaPartition({ topic: 't', partitionMetadata, message: { key, value: null } }));
    }
  });
});

/** A record as the log hands it back. */
const stored = (r: OutgoingRecord, offset = 0): LogRecord => ({ ...r, topic: 'gemello.events', partition: 0, offset, timestamp: 0 });

/** A key store in memory, counting its queries (the port's contract, without the database). */
function memoryKeys() {
  const keys = new Map<string, Uint8Array | null>();
  const store: KeyStore & { queries: number } = {
    queries: 0,
    async get(ids) {
      store.queries++;
      const out = new Map<string, Uint8Array>();
      for (const id of ids) if (keys.get(id)) out.set(id, keys.get(id)!);
      return out;
    },
    async create(id) {
      if (!keys.has(id)) keys.set(id, newDataKey());
      return keys.get(id)!;
    },
    async destroy(id) {
      const had = Boolean(keys.get(id));
      keys.set(id, null);
      return had;
    },
    forget() {},
  };
  return store;
}

describe('personal content in the log, sealed with the conversation\'s key', () => {
  const prompt: EventEnvelope = { ...base, schemaVersion: 2, type: 'PromptReceived', data: { text: 'my account number is 12345', requestId: 'req-1' } };
  const reply: EventEnvelope = { ...base, eventId: '7f1c7a1e-4a8b-4c59-9a55-1a2b3c4d5e6f', seq: 2, schemaVersion: 2, type: 'ReplyGenerated', data: { promptSeq: 1, text: 'noted: 12345', model: 'm', tokens: { prompt: 1, completion: 2, total: 3 }, latencyMs: 4, audio: false } };
  const confirmed: EventEnvelope = { ...base, eventId: '8f1c7a1e-4a8b-4c59-9a55-1a2b3c4d5e6f', seq: 3, schemaVersion: 2, type: 'DataConfirmed', data: { data: { email: 'ada@example.com', age: 36 }, requestId: null } };

  it('round-trips prompts, replies and confirmed data, and the plaintext is nowhere in the record', async () => {
    const keys = memoryKeys();
    const key = await keys.create('c1');
    const records = [prompt, reply, confirmed].map((e, i) => stored(encodeSealedEvent(e, key), i));
    for (const r of records) {
      expect(r.headers.sealed).toBe('1');
      expect(r.value).not.toMatch(/12345|ada@example/);
      expect(JSON.parse(r.value).data).toMatchObject({ [JSON.parse(r.value).type === 'DataConfirmed' ? 'data' : 'text']: { enc: 'a256gcm' } });
    }
    // What is not personal stays readable, sealed or not.
    expect(JSON.parse(records[1]!.value).data).toMatchObject({ promptSeq: 1, model: 'm', tokens: { total: 3 } });
    const ring = await keysFor(keys, records);
    expect(keys.queries).toBe(1); // one look-up for the whole batch
    expect(records.map((r) => decodeEvent(r, ring))).toEqual([prompt, reply, confirmed].map((e, i) => ({ ...e, position: { partition: 0, offset: i } })));
  });

  it('decodes the content as the erased marker once the key is destroyed, without throwing', async () => {
    const keys = memoryKeys();
    const records = [prompt, reply, confirmed].map(async (e, i) => stored(encodeSealedEvent(e, await keys.create('c1')), i));
    const batch = await Promise.all(records);
    await keys.destroy('c1');
    const decoded = batch.map((r) => decodeEvent(r, new Map()));
    expect(decoded.map((e) => e.data)).toEqual([
      { text: ERASED_TEXT, requestId: 'req-1' },
      { ...reply.data, text: ERASED_TEXT },
      { data: {}, requestId: null },
    ]);
    expect(decoded).toEqual(batch.map((r, i) => ({ ...withoutContent([prompt, reply, confirmed][i]!), position: { partition: 0, offset: r.offset } })));
  });

  it('leaves the content of the types a reader does not read unopened (the marker), and opens the rest', async () => {
    const key = newDataKey();
    const [p, r] = [prompt, reply].map((e, i) => stored(encodeSealedEvent(e, key), i));
    const ring = new Map([['c1', key]]);
    const skip = new Set(['PromptReceived'] as const);
    expect(decodeEvent(p!, ring, skip).data).toEqual({ text: ERASED_TEXT, requestId: 'req-1' });
    expect(decodeEvent(r!, ring, skip).data).toEqual(reply.data);
    expect(decodeEvent(p!, ring).data).toEqual(prompt.data);
  });

  it('does not open content with another conversation\'s key, nor content moved into another event', async () => {
    const mine = newDataKey();
    const record = stored(encodeSealedEvent(prompt, mine));
    expect(decodeEvent(record, new Map([['c1', newDataKey()]])).data).toMatchObject({ text: ERASED_TEXT });
    const moved = JSON.parse(record.value);
    moved.eventId = reply.eventId;
    expect(decodeEventValue(JSON.stringify(moved), new Map([['c1', mine]])).data).toMatchObject({ text: ERASED_TEXT });
    expect(decodeEventValue(record.value, new Map([['c1', mine]])).data).toMatchObject({ text: prompt.data.text });
  });

  it('never seals two contents with the same IV (GCM\'s one rule), across many seals', () => {
    const key = newDataKey();
    const ivs = new Set<string>();
    for (let i = 0; i < 3000; i++) ivs.add(seal(key, 'same text', 'c1|e|text').iv);
    expect(ivs.size).toBe(3000);
  });

  it('seals the confirmed data a notice carries', () => {
    const key = newDataKey();
    const n = { type: 'confirmed' as const, commandId: 'cmd-1', conversationId: 'c1', correlationId: null, seq: 3, data: { email: 'ada@example.com' } };
    const record = stored(encodeNotice(n, key));
    expect(record.value).not.toContain('ada@example.com');
    expect(decodeNotice(record, new Map([['c1', key]]))).toEqual(n);
    expect(decodeNotice(record, new Map())).toEqual({ ...n, data: {} });
  });
});
