import { describe, expect, it } from 'vitest';
import { decodeEventValue, encodeEvent, UndecodableEvent } from '../../events/codec.ts';
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
    const e: EventEnvelope = { ...base, schemaVersion: 1, type: 'PromptReceived', data: { text: 'hi', requestId: 'req-1' } };
    const record = encodeEvent(e);
    expect(record.key).toBe('c1');
    expect(record.headers).toEqual({ 'event-type': 'PromptReceived', 'schema-version': '1', traceparent: base.traceparent });
    expect(decodeEventValue(record.value)).toEqual(e);
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
