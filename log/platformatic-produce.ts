// The producer's Produce requests written into one contiguous buffer, for @platformatic/kafka's
// idempotent producer (log/platformatic.ts). The library writes every field of every record as a
// buffer of its own (≈ 24 for a sealed event with its four headers) and then joins those lists
// twice per batch (for the CRC and for the socket): at 500 records a batch that is ≈ 12,000
// buffers walked twice, most of the producer's CPU. Here each request is sized first and
// written once. The library still decides everything else: the producer id, epoch and
// sequences it hands in, retries, metadata, the connection, and the parsing of the answer.
import { Buffer } from 'node:buffer';
import { promisify } from 'node:util';
import { crc32c, groupByProperty, kGetApi, produceV11, Writer } from '@platformatic/kafka';
import type { Connection } from '@platformatic/kafka';
import { bytesSize, uvarintSize, writeUvarint, zigzag } from './record-varint.ts';

/** What the producer hands its Produce API per message, after its serializers ran. */
export type ProduceMessage = { topic: string; partition?: number; key?: Buffer | null; value?: Buffer | null; headers?: Map<Buffer | undefined, Buffer | undefined>; timestamp?: bigint | number };
/** The producer's options for one request (NumericMap's getWithDefault for the sequences). */
export type ProduceOptions = { compression?: string; producerId?: bigint; producerEpoch?: number; sequences?: { getWithDefault(key: string, fallback: number): number }; transactionalId?: string | null; partitionLeaderEpoch?: number };
type Callback = (err: Error | null, response?: unknown) => void;
type ProduceApi = ((connection: Connection, acks: number, timeout: number, messages: ProduceMessage[], options: ProduceOptions, cb: Callback) => void) & { key: number; version: number };
type Internal = { [kGetApi](name: string, cb: (err: Error | null, api?: unknown) => void): void };

/** Produce v11 is the layout written here (the newest the library speaks; Kafka 4.1 answers it). */
const VERSION = 11;
const MAGIC = 2;
const IS_TRANSACTIONAL = 0x10;
/** Base offset 8, batch length 4, leader epoch 4, magic 1, CRC 4: the part before what the CRC covers. */
const BEFORE_CRC = 21;
/** Attributes 2, last offset delta 4, first and max timestamp 16, producer id 8, epoch 2, base sequence 4, record count 4. */
const CRC_HEADER = 40;

class Out {
  buf: Buffer;
  at = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  uvarint(n: number) {
    this.at = writeUvarint(this.buf, this.at, n);
  }
  varint(n: number) {
    this.uvarint(zigzag(n));
  }
  bytes(v: Buffer | null | undefined) {
    if (v == null) return this.varint(-1);
    this.varint(v.length);
    this.at += v.copy(this.buf, this.at);
  }
  compactString(s: string | null | undefined) {
    if (s == null) return this.uvarint(0);
    const n = Buffer.byteLength(s, 'utf-8');
    this.uvarint(n + 1);
    this.at += this.buf.write(s, this.at, 'utf-8');
  }
}

/** One record's bytes after its length prefix. */
function recordSize(m: ProduceMessage, offsetDelta: number, timestampDelta: number): number {
  let size = 1 + uvarintSize(zigzag(timestampDelta)) + uvarintSize(zigzag(offsetDelta)) + bytesSize(m.key) + bytesSize(m.value);
  const headers = m.headers;
  size += uvarintSize(zigzag(headers?.size ?? 0));
  if (headers) for (const [k, v] of headers) size += bytesSize(k) + bytesSize(v);
  return size;
}

type Batch = { messages: ProduceMessage[]; sizes: number[]; deltas: number[]; first: bigint; max: bigint; length: number };

/** Timestamps settled (as the library does, on the messages themselves), each record's size. */
function plan(messages: ProduceMessage[]): Batch {
  const now = BigInt(Date.now());
  const first = (messages[0]!.timestamp as bigint | undefined) ?? now;
  let max = first;
  const sizes: number[] = [];
  const deltas: number[] = [];
  let length = BEFORE_CRC + CRC_HEADER;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    let ts = m.timestamp ?? now;
    if (typeof ts === 'number') ts = BigInt(ts);
    m.timestamp = ts;
    if (ts > max) max = ts;
    const delta = Number(ts - first);
    const size = recordSize(m, i, delta);
    sizes.push(size);
    deltas.push(delta);
    length += uvarintSize(zigzag(size)) + size;
  }
  return { messages, sizes, deltas, first, max, length };
}

/** A record batch (magic 2, uncompressed) for one partition's messages, written at `out.at`. */
function writeBatch(out: Out, b: Batch, options: ProduceOptions) {
  const { messages } = b;
  const buf = out.buf;
  const start = out.at;
  buf.writeBigInt64BE(0n, start);
  buf.writeInt32BE(b.length - 12, start + 8);
  buf.writeInt32BE(options.partitionLeaderEpoch ?? 0, start + 12);
  buf.writeInt8(MAGIC, start + 16);
  const crcAt = start + 17;
  let at = start + BEFORE_CRC;
  buf.writeInt16BE(options.transactionalId ? IS_TRANSACTIONAL : 0, at);
  buf.writeInt32BE(messages.length - 1, at + 2);
  buf.writeBigInt64BE(b.first, at + 6);
  buf.writeBigInt64BE(b.max, at + 14);
  buf.writeBigInt64BE(options.producerId ?? -1n, at + 22);
  buf.writeInt16BE(options.producerEpoch ?? 0, at + 30);
  const m0 = messages[0]!;
  buf.writeInt32BE(options.sequences ? options.sequences.getWithDefault(`${m0.topic}:${m0.partition}`, 0) : 0, at + 32);
  buf.writeInt32BE(messages.length, at + 36);
  out.at = at + CRC_HEADER;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    out.varint(b.sizes[i]!);
    buf[out.at++] = 0; // attributes
    out.varint(b.deltas[i]!);
    out.varint(i);
    out.bytes(m.key);
    out.bytes(m.value);
    out.varint(m.headers?.size ?? 0);
    if (m.headers) for (const [k, v] of m.headers) {
      out.bytes(k);
      out.bytes(v);
    }
  }
  buf.writeUInt32BE(crc32c(Writer.create().append(buf.subarray(start + BEFORE_CRC, out.at)).dynamicBuffer), crcAt);
}

/**
 * Produce v11's request body (what follows the request header): the same bytes as the library's
 * `produceV11.createRequest` for an uncompressed request, in one buffer.
 */
export function produceRequest(acks: number, timeout: number, messages: ProduceMessage[], options: ProduceOptions): Writer {
  const now = BigInt(Date.now());
  for (const m of messages) {
    m.partition ??= 0;
    m.timestamp ??= now;
  }
  const topics = groupByProperty(messages, 'topic') as Array<[string, ProduceMessage[]]>;
  const planned = topics.map(([topic, list]) => [topic, (groupByProperty(list, 'partition') as Array<[string, ProduceMessage[]]>).map(([p, ms]) => [Number(p), plan(ms)] as const)] as const);
  const tx = options.transactionalId;
  let size = (tx == null ? 1 : uvarintSize(Buffer.byteLength(tx) + 1) + Buffer.byteLength(tx)) + 2 + 4 + uvarintSize(planned.length + 1) + 1;
  for (const [topic, parts] of planned) {
    const n = Buffer.byteLength(topic);
    size += uvarintSize(n + 1) + n + uvarintSize(parts.length + 1) + 1;
    for (const [, b] of parts) size += 4 + uvarintSize(b.length + 1) + b.length + 1;
  }
  const out = new Out(size);
  out.compactString(tx);
  out.buf.writeInt16BE(acks, out.at);
  out.buf.writeInt32BE(timeout, out.at + 2);
  out.at += 6;
  out.uvarint(planned.length + 1);
  for (const [topic, parts] of planned) {
    out.compactString(topic);
    out.uvarint(parts.length + 1);
    for (const [partition, b] of parts) {
      out.buf.writeInt32BE(partition, out.at);
      out.at += 4;
      out.uvarint(b.length + 1);
      writeBatch(out, b, options);
      out.buf[out.at++] = 0; // the partition's tagged fields
    }
    out.buf[out.at++] = 0; // the topic's tagged fields
  }
  out.buf[out.at++] = 0; // the request's tagged fields
  if (out.at !== size) throw new Error(`produce request: wrote ${out.at} of ${size} bytes`);
  const writer = Writer.create().append(out.buf);
  if (acks === 0) writer.context.noResponse = true;
  return writer;
}

let written = 0;
/** Produce requests written by `produceRequest` in this process so far (the contract suite checks the real broker takes this path). */
export const contiguousProduces = () => written;

/** The library's Produce API with its requests written by `produceRequest`; compressed requests stay the library's. */
function contiguous(api: ProduceApi): ProduceApi {
  const send = ((connection, acks, timeout, messages, options, cb) => {
    if ((options.compression ?? 'none') !== 'none') return api(connection, acks, timeout, messages, options, cb);
    connection.send(api.key, api.version, () => {
      written++;
      return produceRequest(acks, timeout, messages, options);
    }, produceV11.parseResponse, true, true, cb);
  }) as ProduceApi;
  send.key = api.key;
  send.version = api.version;
  // As the library's APIs carry it (the producer calls `api(...)` today; `api.async` would work too).
  (send as ProduceApi & { async?: unknown }).async = promisify(send);
  return send;
}

/**
 * Makes `client` (a Producer) send its Produce requests through `produceRequest` when the broker
 * and the library agree on v11; any other version goes through the library as before.
 */
export function writeProducesContiguously(client: object): void {
  const c = client as unknown as Internal;
  const own = c[kGetApi].bind(c);
  let wrapped: ProduceApi | null = null;
  c[kGetApi] = (name, cb) =>
    own(name, (err, api) => {
      if (err || name !== 'Produce' || (api as ProduceApi).version !== VERSION) return cb(err, api);
      wrapped ??= contiguous(api as ProduceApi);
      cb(null, wrapped);
    });
}
