// The group consumer's fetches (log/platformatic.ts consume()) decoded straight from the
// response bytes, as bounded reads are (log/platformatic-fetch.ts), while the library's
// MessagesStream keeps everything else: membership, the offsets it fetches from, when it
// fetches (pause, resume), leader epochs and every error's handling.
import { kOptions } from '@platformatic/kafka';
import type { Connection, ConnectionPool, Consumer } from '@platformatic/kafka';
import { decodeBatches, plainVersion, sendFetch } from './platformatic-fetch.ts';
import type { FetchTopic, Version } from './platformatic-fetch.ts';
import type { LogRecord } from './port.ts';

/** A control batch: the stream tracks its offsets and hands over none of its records. */
const CONTROL = 1 << 5;
/** The library's default isolation (READ_COMMITTED), should the consumer's options not say. */
const READ_COMMITTED = 1;

type Str = Consumer<string, string, string, string>;
type Callback = (err: Error | null, response?: unknown) => void;
/** What MessagesStream passes to Consumer.fetch. */
type FetchOptions = { node: number; topics: FetchTopic[]; maxWaitTime?: number; minBytes?: number; maxBytes?: number; isolationLevel?: number; connectionPool?: ConnectionPool };
type Defaults = { maxWaitTime: number; minBytes: number; maxBytes: number; isolationLevel?: number };

/**
 * Replaces `consumer`'s fetch, for the stream its consume() opens, with one that decodes the
 * records of `topic` (its full name; `name` is what the records carry) itself and hands each
 * partition's to `deliver`, in offset order, before answering the stream. The stream is answered
 * with each partition's last offset as a control batch: it moves its fetch offsets on as after
 * any fetch and builds no message. Anything this path does not read (a Fetch version before 13,
 * an error code, aborted transactions, a preferred read replica, a compressed batch, another
 * topic, a partition it did not ask for, a failed connection)
 * goes through the library's fetch as before, and its messages come as the stream's 'data'.
 *
 * Why: the library makes buffers for each record's key, value and every header key and value,
 * reads each field through its list of socket chunks, then a message object per record with a
 * headers Map, an entries array, a commit closure and a diagnostic context: ≈ 15 % of a catching-up
 * projector's samples and much of its garbage (bench projector).
 */
export function decodeGroupFetches(
  consumer: Str,
  topic: string,
  name: string,
  deliver: (partition: number, records: LogRecord[]) => void,
  /**
   * Runs before every fetch goes out, either way, and may raise its offsets (see fetch-floors.ts);
   * it returns where the stream itself stood in the partitions it raised.
   */
  before?: (topics: FetchTopic[]) => Promise<ReadonlyMap<number, number> | null>,
): void {
  const library = consumer.fetch.bind(consumer) as (options: FetchOptions, callback: Callback) => void;
  const defaults = (consumer as unknown as { [kOptions]: Defaults })[kOptions];
  let version: Version | null | undefined;

  /** `raised`: where the stream itself stood in the partitions `before` raised (a raised fetch moves it on even when it brought nothing). */
  async function plain(options: FetchOptions, raised: ReadonlyMap<number, number> | null): Promise<{ response: unknown; delivered: Array<[number, LogRecord[]]> } | null> {
    // The consumer's Fetch version is asked once it is known, not before every fetch.
    const v = version !== undefined ? version : (version = await plainVersion(consumer));
    if (v === null) return null;
    const metadata = await consumer.metadata({ topics: [topic] });
    const t = metadata.topics.get(topic);
    const broker = metadata.brokers.get(options.node);
    if (!t || !broker || options.topics.some((x) => x.topicId !== t.id) || !options.connectionPool) return null;
    const connection: Connection = await options.connectionPool.get(broker);
    const parts = await sendFetch(connection, v, options.topics, {
      maxWaitMs: options.maxWaitTime ?? defaults.maxWaitTime,
      minBytes: options.minBytes ?? defaults.minBytes,
      maxBytes: options.maxBytes ?? defaults.maxBytes,
      isolationLevel: options.isolationLevel ?? defaults.isolationLevel ?? READ_COMMITTED,
    });
    const asked = new Map<number, number>();
    for (const x of options.topics) for (const p of x.partitions) asked.set(p.partition, Number(p.fetchOffset));
    const delivered: Array<[number, LogRecord[]]> = [];
    const partitions = [];
    for (const { partition, bytes } of parts) {
      const from = asked.get(partition);
      // Not asked for (a sessionless fetch returns only what it asked): left to the library.
      if (from === undefined) return null;
      const { records, next } = bytes ? decodeBatches(bytes, name, partition, from, Infinity) : { records: [], next: from };
      if (records.length) delivered.push([partition, records]);
      const batches = next > (raised?.get(partition) ?? from) ? [{ firstOffset: BigInt(next - 1), lastOffsetDelta: 0, firstTimestamp: 0n, attributes: CONTROL, partitionLeaderEpoch: -1, records: [] }] : undefined;
      partitions.push({ partitionIndex: partition, errorCode: 0, records: batches });
    }
    return { response: { throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses: [{ topicId: t.id, partitions }], nodeEndpoints: [] }, delivered };
  }

  (consumer as unknown as { fetch: (options: FetchOptions, callback?: Callback) => unknown }).fetch = (options, callback) => {
    if (!callback) return library(options, undefined as never);
    (before ? before(options.topics) : Promise.resolve(null))
      .then((raised) => plain(options, raised))
      .catch(() => null)
      .then((got) => {
        if (!got) return library(options, callback);
        // A handover that throws fails this fetch, as the library's own would: the stream is
        // answered either way (unanswered, it would keep the broker's fetches waiting).
        try {
          for (const [p, records] of got.delivered) deliver(p, records);
        } catch (err) {
          return callback(err as Error);
        }
        callback(null, got.response);
      });
    return undefined;
  };
}
