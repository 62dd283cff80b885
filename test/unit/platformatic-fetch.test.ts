import { Buffer } from 'node:buffer';
import { createRecordsBatch, readRecordsBatches, Reader } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { decodeBatches, Unplain } from '../../log/platformatic-fetch.ts';

type Msg = { key: string | null; value: string | null; headers: Array<[string, string | null]> };

/** Record batches as the broker stores them (the library's encoder), at `base`, compressed or not. */
function batchOf(base: number, msgs: Msg[], compression: 'none' | 'gzip' = 'none'): Buffer {
  const messages = msgs.map((m, i) => ({
    topic: 't',
    partition: 0,
    key: m.key === null ? undefined : Buffer.from(m.key),
    value: m.value === null ? undefined : Buffer.from(m.value),
    headers: new Map(m.headers.map(([k, v]) => [Buffer.from(k), v === null ? undefined : Buffer.from(v)])),
    timestamp: 1_700_000_000_000n + BigInt(i * 3),
  }));
  const b = Buffer.from(createRecordsBatch(messages as never, { compression }).buffer);
  b.writeBigInt64BE(BigInt(base), 0);
  return b;
}

const msgs = (n: number, from: number): Msg[] => Array.from({ length: n }, (_, i) => ({
  key: `conv-${from + i}`,
  value: JSON.stringify({ i: from + i, text: 'Grüße, ünïcödé ✓' }),
  headers: [['event-type', 'PromptReceived'], ['schema-version', '1'], ['empty', ''], ['gone', null]],
}));

describe('decoding record batches from a fetch response (platformatic bounded reads)', () => {
  it('gives what the library decodes: offsets, keys, values, headers (an empty value kept, a null one left out), timestamps', () => {
    const bytes = Buffer.concat([batchOf(100, msgs(3, 0)), batchOf(103, [...msgs(2, 3), { key: null, value: null, headers: [] }])]);
    const { records, next } = decodeBatches(bytes, 'events', 2, 100, 1_000);
    const lib = readRecordsBatches(Reader.from(bytes) as never).flatMap((batch: any) => batch.records.map((r: any) => ({
      offset: Number(batch.firstOffset) + r.offsetDelta,
      key: r.key?.toString() ?? '',
      value: r.value?.toString() ?? '',
      headers: Object.fromEntries(r.headers.filter(([k, v]: [unknown, unknown]) => k && v).map(([k, v]: [Buffer, Buffer]) => [k.toString(), v.toString()])),
      timestamp: Number(batch.firstTimestamp + r.timestampDelta),
    })));
    expect(records.map(({ offset, key, value, headers, timestamp }) => ({ offset, key, value, headers, timestamp }))).toEqual(lib);
    expect(records.map((r) => r.offset)).toEqual([100, 101, 102, 103, 104, 105]);
    expect(records[0]).toMatchObject({ topic: 'events', partition: 2, headers: { 'event-type': 'PromptReceived', 'schema-version': '1', empty: '' } });
    expect(JSON.parse(records[4]!.value).text).toBe('Grüße, ünïcödé ✓');
    expect(records[5]).toMatchObject({ key: '', value: '', headers: {} });
    expect(next).toBe(106);
  });

  it('keeps only the offsets asked for, and stops before a batch the fetch cut short', () => {
    const whole = Buffer.concat([batchOf(0, msgs(4, 0)), batchOf(4, msgs(4, 4))]);
    const cut = whole.subarray(0, whole.length - 10);
    const { records, next } = decodeBatches(cut, 't', 0, 2, 3);
    expect(records.map((r) => r.offset)).toEqual([2]);
    expect(next).toBe(4); // the cut batch is fetched again from its start
    expect(decodeBatches(whole.subarray(0, 30), 't', 0, 0, 10)).toEqual({ records: [], next: 0 });
  });

  it('refuses a compressed batch (the caller fetches it through the library instead)', () => {
    expect(() => decodeBatches(batchOf(0, msgs(3, 0), 'gzip'), 't', 0, 0, 10)).toThrow(Unplain);
  });
});
