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
import { writeBatch, sizeBatch } from './record-batch.ts';
import type { SizedBatch } from './record-batch.ts';
import { uvarintSize, writeUvarint } from './record-varint.ts';

/** What the producer hands its Produce API per message, after its serializers ran. */
export type ProduceMessage = { topic: string; partition?: number; key?: Buffer | null; value?: Buffer | null; headers?: Map<Buffer | undefined, Buffer | undefined>; timestamp?: bigint | number };
/** The producer's options for one request (NumericMap's getWithDefault for the sequences). */
export type ProduceOptions = { compression?: string; producerId?: bigint; producerEpoch?: number; sequences?: { getWithDefault(key: string, fallback: number): number }; transactionalId?: string | null; partitionLeaderEpoch?: number };
type Callback = (err: Error | null, response?: unknown) => void;
type ProduceApi = ((connection: Connection, acks: number, timeout: number, messages: ProduceMessage[], options: ProduceOptions, cb: Callback) => void) & { key: number; version: number };
type Internal = { [kGetApi](name: string, cb: (err: Error | null, api?: unknown) => void): void };

/** Produce v11 is the layout written here (the newest the library speaks; Kafka 4.1 answers it). */
const VERSION = 11;

class Out {
  buf: Buffer;
  at = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  uvarint(n: number) {
    this.at = writeUvarint(this.buf, this.at, n);
  }
  compactString(s: string | null | undefined) {
    if (s == null) return this.uvarint(0);
    const n = Buffer.byteLength(s, 'utf-8');
    this.uvarint(n + 1);
    this.at += this.buf.write(s, this.at, 'utf-8');
  }
}

type Batch = { messages: ProduceMessage[]; sized: SizedBatch; first: bigint; max: bigint };

/** Timestamps settled (as the library does, on the messages themselves), the batch sized. */
function plan(messages: ProduceMessage[]): Batch {
  const now = BigInt(Date.now());
  const first = (messages[0]!.timestamp as bigint | undefined) ?? now;
  let max = first;
  const deltas: number[] = [];
  for (const m of messages) {
    let ts = m.timestamp ?? now;
    if (typeof ts === 'number') ts = BigInt(ts);
    m.timestamp = ts;
    if (ts > max) max = ts;
    deltas.push(Number(ts - first));
  }
  return { messages, sized: sizeBatch(messages, deltas), first, max };
}

/** The library's CRC32C, of one contiguous slice (a DynamicBuffer of one buffer is not copied). */
const crc = (bytes: Buffer) => crc32c(Writer.create().append(bytes).dynamicBuffer);

/** A partition's record batch, written at `out.at`. */
function writePartitionBatch(out: Out, b: Batch, options: ProduceOptions) {
  const m0 = b.messages[0]!;
  out.at = writeBatch(out.buf, out.at, b.sized, {
    transactional: !!options.transactionalId,
    firstTimestamp: b.first,
    maxTimestamp: b.max,
    producerId: options.producerId ?? -1n,
    producerEpoch: options.producerEpoch ?? 0,
    firstSequence: options.sequences ? options.sequences.getWithDefault(`${m0.topic}:${m0.partition}`, 0) : 0,
    partitionLeaderEpoch: options.partitionLeaderEpoch,
  }, crc);
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
    for (const [, b] of parts) size += 4 + uvarintSize(b.sized.bytes + 1) + b.sized.bytes + 1;
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
      out.uvarint(b.sized.bytes + 1);
      writePartitionBatch(out, b, options);
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
