// Kafka's record batch (magic 2, uncompressed), sized first and then written once into a buffer:
// what both produce encoders put in their requests (log/platformatic-produce.ts,
// log/kafkajs-produce.ts), each from its library's messages.
import type { Buffer } from 'node:buffer';
import { bytesSize, uvarintSize, writeUvarint, zigzag } from './record-varint.ts';

type Bytes = Uint8Array | null | undefined;
/** One record: its key, value and headers as bytes (null or undefined: absent, written as length −1). */
export type BatchRecord = { key?: Bytes; value?: Bytes; headers?: ReadonlyMap<Bytes, Bytes> | ReadonlyArray<readonly [Bytes, Bytes]> };
/** The batch's header fields that the producer decides. */
export type BatchHeader = { transactional: boolean; firstTimestamp: bigint; maxTimestamp: bigint; producerId: bigint; producerEpoch: number; firstSequence: number; partitionLeaderEpoch?: number };
/** Records with each one's timestamp delta, sized: `bytes` is the whole batch, base offset included. */
export type SizedBatch = { records: readonly BatchRecord[]; deltas: readonly number[]; sizes: number[]; bytes: number };

const MAGIC = 2;
const TRANSACTIONAL = 0x10;
/** Base offset 8, batch length 4, leader epoch 4, magic 1, CRC 4: what comes before the part the CRC covers. */
const BEFORE_CRC = 21;
/** Attributes 2, last offset delta 4, first and max timestamp 16, producer id 8, epoch 2, base sequence 4, record count 4. */
const CRC_HEADER = 40;

const headerCount = (h: BatchRecord['headers']): number => (h == null ? 0 : 'size' in h ? h.size : h.length);

/** One record's bytes after its length prefix. */
function recordSize(r: BatchRecord, offsetDelta: number, timestampDelta: number): number {
  let size = 1 + uvarintSize(zigzag(timestampDelta)) + uvarintSize(zigzag(offsetDelta)) + bytesSize(r.key) + bytesSize(r.value) + uvarintSize(zigzag(headerCount(r.headers)));
  if (r.headers) for (const [k, v] of r.headers) size += bytesSize(k) + bytesSize(v);
  return size;
}

/** Sizes a batch of `records`, `deltas[i]` the timestamp delta of record i. */
export function sizeBatch(records: readonly BatchRecord[], deltas: readonly number[]): SizedBatch {
  const sizes: number[] = [];
  let bytes = BEFORE_CRC + CRC_HEADER;
  for (let i = 0; i < records.length; i++) {
    const size = recordSize(records[i]!, i, deltas[i]!);
    sizes.push(size);
    bytes += uvarintSize(zigzag(size)) + size;
  }
  return { records, deltas, sizes, bytes };
}

/** Writes the batch at `at` in `buf` (which has `b.bytes` there), its CRC32C by `crc`; returns where it ends. */
export function writeBatch(buf: Buffer, at: number, b: SizedBatch, h: BatchHeader, crc: (bytes: Buffer) => number): number {
  const start = at;
  const n = b.records.length;
  buf.writeBigInt64BE(0n, start); // base offset: the broker gives it
  buf.writeInt32BE(b.bytes - 12, start + 8);
  buf.writeInt32BE(h.partitionLeaderEpoch ?? 0, start + 12);
  buf.writeInt8(MAGIC, start + 16);
  at = start + BEFORE_CRC;
  buf.writeInt16BE(h.transactional ? TRANSACTIONAL : 0, at);
  buf.writeInt32BE(n - 1, at + 2);
  buf.writeBigInt64BE(h.firstTimestamp, at + 6);
  buf.writeBigInt64BE(h.maxTimestamp, at + 14);
  buf.writeBigInt64BE(h.producerId, at + 22);
  buf.writeInt16BE(h.producerEpoch, at + 30);
  buf.writeInt32BE(h.firstSequence, at + 32);
  buf.writeInt32BE(n, at + 36);
  at += CRC_HEADER;
  const varint = (v: number) => void (at = writeUvarint(buf, at, zigzag(v)));
  const bytes = (v: Bytes) => {
    if (v == null) return varint(-1);
    varint(v.length);
    buf.set(v, at);
    at += v.length;
  };
  for (let i = 0; i < n; i++) {
    const r = b.records[i]!;
    varint(b.sizes[i]!);
    buf[at++] = 0; // attributes
    varint(b.deltas[i]!);
    varint(i);
    bytes(r.key);
    bytes(r.value);
    varint(headerCount(r.headers));
    if (r.headers) for (const [k, v] of r.headers) {
      bytes(k);
      bytes(v);
    }
  }
  buf.writeUInt32BE(crc(buf.subarray(start + BEFORE_CRC, at)), start + 17);
  return at;
}
