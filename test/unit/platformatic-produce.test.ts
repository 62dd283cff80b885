import { Buffer } from 'node:buffer';
import { produceV11, Reader, readRecordsBatches } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { produceRequest } from '../../log/platformatic-produce.ts';
import type { ProduceMessage, ProduceOptions } from '../../log/platformatic-produce.ts';

/** A NumericMap as the producer hands its sequences in. */
const sequences = (entries: Record<string, number>) => ({ getWithDefault: (k: string, d: number) => entries[k] ?? d });

const b = (s: string) => Buffer.from(s, 'utf-8');
const message = (topic: string, partition: number | undefined, i: number, extra: Partial<ProduceMessage> = {}): ProduceMessage => ({
  topic,
  partition,
  key: b(`conv-${i}`),
  value: b(JSON.stringify({ i, text: 'Grüße, ünïcödé ✓'.repeat(i % 5) })),
  headers: new Map([[b('event-type'), b('PromptReceived')], [b('schema-version'), b('1')], [b('empty'), b('')], [b('gone'), undefined]]),
  timestamp: 1_700_000_000_000n + BigInt(i * 7),
  ...extra,
});

/** The messages twice (each encoder settles timestamps on its own copy), the two requests' bytes. */
function both(acks: number, timeout: number, make: () => ProduceMessage[], options: ProduceOptions) {
  const ours = Buffer.from(produceRequest(acks, timeout, make(), options).buffer);
  const lib = Buffer.from(produceV11.createRequest(acks, timeout, make() as never, options as never).buffer);
  return { ours, lib };
}

describe('Produce requests written in one buffer (platformatic producer)', () => {
  it('are byte for byte what the library writes: several topics and partitions, sequences, producer id and epoch', () => {
    const make = () => [
      ...Array.from({ length: 40 }, (_, i) => message('gemello.events', i % 3, i)),
      ...Array.from({ length: 5 }, (_, i) => message('gemello.commands', 11, 100 + i)),
      message('gemello.events', 2, 200, { timestamp: 1_699_999_999_000n }), // earlier than the batch's first: a negative delta
    ];
    const { ours, lib } = both(-1, 5_000, make, { producerId: 4_242n, producerEpoch: 3, sequences: sequences({ 'gemello.events:1': 17, 'gemello.commands:11': 2_147_480_000 }) });
    expect(ours.length).toBe(lib.length);
    expect(ours.equals(lib)).toBe(true);
  });

  it('are byte for byte the library\'s for null and empty keys and values, no headers, a transactional id, acks 1', () => {
    const make = () => [
      message('t', 0, 1, { key: null, value: b(''), headers: new Map() }),
      message('t', 0, 2, { key: b(''), value: null, headers: undefined }),
      message('t', 0, 3, { value: b('x'.repeat(70_000)) }), // multi-byte varint lengths
    ];
    const { ours, lib } = both(1, 30_000, make, { producerId: 9n, producerEpoch: 0, transactionalId: 'tx-ü', sequences: sequences({}) });
    expect(ours.equals(lib)).toBe(true);
  });

  it('settle a missing partition and timestamp as the library does, and the library reads the batch back', () => {
    const at = 1_750_000_000_000;
    const make = () => [{ ...message('t', undefined, 1), timestamp: undefined }, { ...message('t', undefined, 2), timestamp: BigInt(at + 5) }];
    const msgs = make();
    const ours = produceRequest(-1, 1_000, msgs, {});
    expect(msgs[0]!.partition).toBe(0);
    expect(typeof msgs[0]!.timestamp).toBe('bigint');
    // The records batch starts after: tx id (1), acks (2), timeout (4), topics (1), name (1 + 1), partitions (1), index (4), length varint.
    const buf = Buffer.from(ours.buffer);
    const reader = Reader.from(buf.subarray(15 + (buf[15]! >= 0x80 ? 2 : 1)));
    const [batch] = readRecordsBatches(reader as never) as any[];
    expect(batch.records.map((r: any) => [r.key.toString(), JSON.parse(r.value.toString()).i, r.offsetDelta])).toEqual([['conv-1', 1, 0], ['conv-2', 2, 1]]);
    expect(Number(batch.firstTimestamp + BigInt(batch.records[1].timestampDelta))).toBe(at + 5);
    expect(batch.producerId).toBe(-1n);
  });
});
