// kafkajs' Produce requests (v3–v7, uncompressed) written into one buffer. kafkajs 2.2.4 builds a
// request from an `Encoder` per record, per header and per batch, each starting with a
// zero-filled 512-byte `Buffer.alloc` outside the pool and growing by copies, and its varints
// through `Buffer.from` of an array: ≈ 45 µs of CPU per sealed event appended in batches of 500
// (2026-12-02), a third of it allocating. Here the request is sized first and written once.
// The producer still decides everything else (partitions, producer id, epoch and sequences,
// retries, the response); a compressed request goes through kafkajs' own encoder.
import { Buffer } from 'node:buffer';
import { crc32c } from './crc32c.ts';
import { kafkajsInternals } from './kafkajs-internal.ts';
import { sizeBatch, writeBatch } from './record-batch.ts';
import type { BatchRecord } from './record-batch.ts';

type Value = Buffer | string | number | null | undefined;
/** A message as kafkajs' producer hands it to its Produce request. */
export type KafkajsMessage = { key?: Value; value?: Value; headers?: Record<string, Value | Value[]>; timestamp?: number | string | null };
export type KafkajsTopicData = Array<{ topic: string; partitions: Array<{ partition: number; firstSequence?: number; messages: KafkajsMessage[] }> }>;
export type KafkajsProduceArgs = { acks: number; timeout: number; compression?: number; topicData: KafkajsTopicData; transactionalId?: string | null; producerId?: unknown; producerEpoch?: number };
type Versioned = (args: KafkajsProduceArgs) => { request: { apiVersion: number; encode: () => Promise<unknown> }; response: unknown };
type Definitions = { versions: string[]; protocol: (o: { version: number }) => Versioned; [PATCHED]?: true };
type LongClass = { fromValue(v: unknown): { value: bigint } };
type EncoderClass = new (size?: number) => { buf: Buffer; offset: number };

const PATCHED = Symbol.for('gemello.kafkajs.produce.oneBuffer');

/** A key, value or header as kafkajs writes it: a Buffer as it is, anything else as its string. */
const asBytes = (v: Value): Buffer | null => (v == null ? null : Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8'));

/** What the encoding needs of kafkajs: its Long, Encoder and Produce request definitions. */
function kafkajsParts(): { Long: LongClass; Encoder: EncoderClass; produce: Definitions } | null {
  const require = kafkajsInternals();
  if (!require) return null;
  return {
    Long: require('kafkajs/src/utils/long.js'),
    Encoder: require('kafkajs/src/protocol/encoder.js'),
    produce: require('kafkajs/src/protocol/requests/produce/index.js'),
  };
}

/** The bytes of one Produce request body (v3–v7 share it), what kafkajs' encoder writes, in one buffer. */
export function produceBody(args: KafkajsProduceArgs, crc32C: (b: Buffer) => number, Long: LongClass): Buffer {
  const tx = args.transactionalId ?? null;
  const producerId = Long.fromValue(args.producerId ?? -1).value;
  const epoch = args.producerEpoch ?? 0;
  const txBytes = tx === null ? null : Buffer.from(tx, 'utf8');
  let size = 2 + (txBytes?.length ?? 0) + 2 + 4 + 4;
  const topics = args.topicData.map(({ topic, partitions }) => {
    const name = Buffer.from(topic, 'utf8');
    size += 2 + name.length + 4;
    const parts = partitions.map(({ partition, firstSequence, messages }) => {
      const now = Date.now();
      // As kafkajs does: the timestamps given, sorted (as strings), else now.
      const given = messages.map((m) => m.timestamp).filter((t) => t != null).sort() as Array<number | string>;
      const first = given.length ? given[0]! : now;
      const max = given.length ? given[given.length - 1]! : now;
      const deltas: number[] = [];
      const records: BatchRecord[] = messages.map((m) => {
        const headers: Array<[Buffer, Buffer | null]> = [];
        for (const k of Object.keys(m.headers ?? {})) {
          const v = m.headers![k];
          for (const one of Array.isArray(v) ? v : [v]) headers.push([Buffer.from(k, 'utf8'), asBytes(one)]);
        }
        deltas.push(Number(m.timestamp || now) - Number(first));
        return { key: asBytes(m.key), value: asBytes(m.value), headers };
      });
      const sized = sizeBatch(records, deltas);
      size += 4 + 4 + sized.bytes;
      return { partition, firstSequence: firstSequence ?? 0, first, max, sized };
    });
    return { name, parts };
  });

  const b = Buffer.allocUnsafe(size);
  let at = 0;
  b.writeInt16BE(txBytes ? txBytes.length : -1, at);
  at += 2;
  if (txBytes) at += txBytes.copy(b, at);
  b.writeInt16BE(args.acks, at);
  b.writeInt32BE(args.timeout, at + 2);
  b.writeInt32BE(topics.length, at + 6);
  at += 10;
  for (const t of topics) {
    b.writeInt16BE(t.name.length, at);
    at += 2;
    at += t.name.copy(b, at);
    b.writeInt32BE(t.parts.length, at);
    at += 4;
    for (const p of t.parts) {
      b.writeInt32BE(p.partition, at);
      b.writeInt32BE(p.sized.bytes, at + 4); // the record set's length
      at = writeBatch(b, at + 8, p.sized, {
        transactional: !!tx,
        firstTimestamp: Long.fromValue(p.first).value,
        maxTimestamp: Long.fromValue(p.max).value,
        producerId,
        producerEpoch: epoch,
        firstSequence: p.firstSequence,
      }, crc32C);
    }
  }
  if (at !== size) throw new Error(`produce request: wrote ${at} of ${size} bytes`);
  return b;
}

let written = 0;
/** Produce requests written by `produceBody` in this process so far (the contract suite checks the real broker takes this path). */
export const contiguousKafkajsProduces = () => written;

/**
 * kafkajs' Produce requests from v3 on, uncompressed, encoded by `produceBody` (the response and
 * everything around the request stay kafkajs'). Applied once per process, to the copy of
 * kafkajs this module imports.
 */
export function writeKafkajsProducesContiguously(): void {
  const parts = kafkajsParts();
  if (!parts) return;
  const { produce, Long, Encoder } = parts;
  if (produce[PATCHED] || typeof produce.protocol !== 'function') return;
  const protocol = produce.protocol;
  produce.protocol = ({ version }) => {
    const make = protocol({ version });
    if (version < 3) return make;
    return (args) => {
      const out = make(args);
      if ((args.compression ?? 0) !== 0) return out;
      out.request.encode = async () => {
        // CRC-32C eight bytes a step (log/crc32c.ts): kafkajs' own goes byte by byte, a fifth of the request's CPU.
        const buf = produceBody(args, crc32c, Long);
        written++;
        const e = new Encoder(0);
        e.buf = buf;
        e.offset = buf.length;
        return e;
      };
      return out;
    };
  };
  produce[PATCHED] = true;
}
