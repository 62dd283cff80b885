import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../log/crc32c.ts';
import { produceBody } from '../../log/kafkajs-produce.ts';
import type { KafkajsProduceArgs } from '../../log/kafkajs-produce.ts';

const require = createRequire(import.meta.url);
const Long = require('kafkajs/src/utils/long.js');
const v3 = require('kafkajs/src/protocol/requests/produce/v3/request.js');
const v7 = require('kafkajs/src/protocol/requests/produce/v7/request.js');

const message = (i: number) => ({
  key: `conv-${i}`,
  value: JSON.stringify({ i, text: 'Grüße, ünïcödé ✓'.repeat(i % 5) }),
  headers: { 'event-type': 'PromptReceived', 'schema-version': '1', traceparent: `00-${String(i).padStart(32, '0')}-0000000000000001-01` },
});

/** A deep copy that keeps Buffers Buffers (structuredClone makes them Uint8Arrays). */
const copy = <T>(v: T): T => (Buffer.isBuffer(v) ? (Buffer.from(v) as T) : Array.isArray(v) ? (v.map(copy) as T) : v && typeof v === 'object' ? (Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)])) as T) : v);

/** kafkajs' own bytes for a request (the same arguments, copied: it reads them only). */
const theirs = async (request: (a: unknown) => { encode(): Promise<{ buffer: Buffer }> }, args: KafkajsProduceArgs) => Buffer.from((await request(copy(args)).encode()).buffer);

describe('kafkajs Produce requests written in one buffer', () => {
  it('are byte for byte what kafkajs writes (v3 and v7): topics, partitions, producer id, epoch and sequences, no timestamps given', async () => {
    const args: KafkajsProduceArgs = {
      acks: -1,
      timeout: 30_000,
      producerId: 4242,
      producerEpoch: 3,
      topicData: [
        { topic: 'gemello.events', partitions: [{ partition: 0, firstSequence: 17, messages: Array.from({ length: 30 }, (_, i) => message(i)) }, { partition: 7, firstSequence: 0, messages: [message(99)] }] },
        { topic: 'gemello.commands', partitions: [{ partition: 11, firstSequence: 2_147_480_000, messages: [message(5), message(6)] }] },
      ],
    };
    const at = Date.now;
    Date.now = () => 1_764_000_000_000; // one clock for both encoders
    try {
      const ours = produceBody(copy(args), crc32c, Long);
      expect(ours.equals(await theirs(v3, args))).toBe(true);
      expect(ours.equals(await theirs(v7, args))).toBe(true);
    } finally {
      Date.now = at;
    }
  });

  it('are byte for byte kafkajs\' for null and Buffer keys and values, header arrays, given timestamps, a transactional id and a big value', async () => {
    const args: KafkajsProduceArgs = {
      acks: 1,
      timeout: 5_000,
      transactionalId: 'tx-ü',
      producerId: -1,
      producerEpoch: 0,
      topicData: [{ topic: 't', partitions: [{ partition: 3, messages: [
        { key: null, value: Buffer.from('raw'), headers: {}, timestamp: 1_700_000_000_050 },
        { key: Buffer.from('k'), value: null, headers: { many: ['a', Buffer.from('b')] }, timestamp: 1_700_000_000_000 },
        { key: 'big', value: 'x'.repeat(70_000), timestamp: 1_700_000_000_009 },
      ] }] }],
    };
    const ours = produceBody(copy(args), crc32c, Long);
    expect(ours.equals(await theirs(v7, args))).toBe(true);
  });
});
