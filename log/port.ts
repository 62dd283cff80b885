/** A record to append: the key picks the partition, the value is JSON text. */
export type OutgoingRecord = { key: string; value: string; headers: Record<string, string> };

/** A record as stored in a partition. */
export type LogRecord = OutgoingRecord & {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
};

export type ConsumeOptions = {
  /** Consumer group: each partition is handled by one member of the group at a time. */
  group: string;
  topic: string;
  /** Where a group without a committed offset starts. */
  from: 'earliest' | 'latest';
  /** False for a reader that always starts at `from` and keeps no offsets (a gateway's push feed). */
  commit?: boolean;
  /** Called with this member's whole assignment each time the group settles. */
  onAssigned?: (partitions: number[]) => void | Promise<void>;
  /**
   * Called when this member hears that the group rebalances (another member joined or left),
   * as it rejoins: what it was assigned may be another member's once the group settles
   * (onAssigned follows). A writer of the partitions stops writing here until then: the next
   * owner reads a partition's end as soon as it is assigned.
   */
  onRebalancing?: () => void;
  /**
   * Handles a batch of one partition, in offset order. The offset after the batch is
   * committed only once this resolves: a crash before that delivers the batch again.
   * Commits may be batched (Kafka: at most once a second, and when the member stops), so
   * a crash or a rebalance can deliver again what was handled in the last second: handlers
   * are idempotent (the actor host by command id, projections by their checkpoints).
   */
  handle: (partition: number, records: LogRecord[]) => Promise<void>;
  /**
   * A partition's handler cannot start yet (the actor host is taking it over): what it
   * returns is awaited before a batch is taken, and what is fetched meanwhile is handed over
   * as one batch. Null (or absent) when the partition can be handled now.
   */
  ready?: (partition: number) => Promise<void> | null;
  /**
   * How much of one partition a delivery may carry, in bytes (default: the client's, about
   * 1 MB). A consumer that catches up on a backlog (the projector) asks for more: fewer,
   * larger batches. Deliveries stay in offset order whatever their size.
   */
  batchBytes?: number;
  /**
   * How long a fetch of this consumer waits on the broker for records (default: the log's).
   * A partition newly assigned is fetched only once the fetch under way comes back, so a
   * member that must serve a partition it takes over soon asks for a short one.
   */
  maxWaitMs?: number;
  /**
   * How often this member heartbeats (default 50 ms): it hears of a rebalance with its next
   * heartbeat (kafkajs: with its next fetch at most this often).
   */
  heartbeatMs?: number;
};

export type TopicOptions = { compacted?: boolean };

/**
 * Kafka settings of a compacted topic (the data keys' home): how long a superseded record
 * (an erased conversation's wrapped key) can stay on the brokers' disks. The active segment
 * is rolled after `segment.ms` and the cleaner must compact a record within
 * `max.compaction.lag.ms`, so an erased key is gone from every replica within about
 * 10 min + 1 h (plus the cleaner's backoff, 15 s by default).
 */
export const COMPACTED_TOPIC_CONFIG: Readonly<Record<string, string>> = {
  'cleanup.policy': 'compact',
  'segment.ms': String(10 * 60_000),
  'max.compaction.lag.ms': String(60 * 60_000),
  'min.compaction.lag.ms': '0',
  'min.cleanable.dirty.ratio': '0.01',
};

/**
 * Kafka settings of the topics that are the whole truth (events, and the kept voice clips):
 * kept forever, whatever the broker's default (7 days unless its operator set
 * `log.retention.ms=-1`). Everything but Kafka is rebuilt from them, from offset 0.
 */
export const FOREVER_TOPIC_CONFIG: Readonly<Record<string, string>> = { 'retention.ms': '-1', 'retention.bytes': '-1' };

/** What a topic is created with (its bare name, without the namespace): the commands topic takes the broker's defaults. */
export function topicConfigOf(topic: string, options?: TopicOptions): Readonly<Record<string, string>> | undefined {
  if (options?.compacted) return COMPACTED_TOPIC_CONFIG;
  return topic === TOPICS.events || topic === TOPICS.voice ? FOREVER_TOPIC_CONFIG : undefined;
}

/** How long a topic keeps records, as the broker has it (null: forever); `bytes` likewise per partition. */
export type TopicRetention = { ms: number | null; bytes: number | null };

/** A topic's retention from its `retention.ms` / `retention.bytes` settings (-1: forever). */
export function retentionFrom(settings: Record<string, string | null | undefined>): TopicRetention {
  const read = (v: string | null | undefined) => (v === undefined || v === null || Number(v) < 0 ? null : Number(v));
  return { ms: read(settings['retention.ms']), bytes: read(settings['retention.bytes']) };
}

export type Subscription = {
  stop(): Promise<void>;
  /** This member's id in its group as the broker last gave it (null before it joined, or without groups). */
  memberId?(): string | null;
  /**
   * Whether the broker still counts this member in its group at the generation it was last
   * assigned in, as shown by a heartbeat sent after the call: true once one succeeds, false as
   * soon as the group rebalances or forgets the member (a rejoin follows, then `onAssigned`),
   * null when no heartbeat answered within `timeoutMs`.
   */
  stillMember?(timeoutMs: number): Promise<boolean | null>;
};

/** The append-only, partitioned log (Kafka, or files when embedded). */
export interface EventLog {
  readonly kind: 'kafka' | 'file';
  readonly partitions: number;
  /**
   * Creates the topics if they do not exist. A compacted topic keeps, in the end, only the
   * last record of each key: a record supersedes every earlier one with its key.
   */
  ensureTopics(topics: string[], options?: TopicOptions): Promise<void>;
  /** How long the broker keeps a topic's records (Kafka; the file log keeps everything, and has none). */
  retentionOf?(topic: string): Promise<TopicRetention>;
  /** Appends records to one partition, in order; resolves with the first record's offset once durable. */
  append(topic: string, partition: number, records: OutgoingRecord[]): Promise<number>;
  consume(options: ConsumeOptions): Promise<Subscription>;
  /**
   * Reads one partition from offset `from` up to its end as of the call, batch by batch.
   * Resolves with that end offset (the offset the next record will get). `end`, when the
   * caller has it already (from endOffsets), is read up to without asking the log again.
   */
  read(topic: string, partition: number, from: number, handle: (records: LogRecord[]) => void | Promise<void>, end?: number): Promise<number>;
  /**
   * Removes members known to be dead from a group at once (their partitions move without
   * waiting for the session timeout). Absent where the client cannot (kafkajs).
   */
  evict?(group: string, memberIds: string[]): Promise<void>;
  /** The next offset of each partition of a topic. */
  endOffsets(topic: string): Promise<number[]>;
  /**
   * Sets up ahead what bounded reads of the topic need (connections; kafkajs: the reading
   * consumer and its group), so the first read (a partition taken over) starts at once.
   */
  prepareReads?(topic: string): Promise<void>;
  /** Resolves when the backend answers; rejects with the reason otherwise. */
  ping(): Promise<void>;
  /** Appends accepted but not yet acknowledged, for /metrics (a log without a queue has none). */
  pendingAppends?(): { appends: number; bytes: number };
  close(): Promise<void>;
}

/** `voice`: the callers' kept utterances (GEMELLO_KEEP_VOICE), sealed, in segments; key = conversation id like the others. */
export const TOPICS = { commands: 'gemello.commands', events: 'gemello.events', keys: 'gemello.keys', voice: 'gemello.voice' } as const;

/** The topic does not exist on the broker (endOffsets): nothing was ever written to it. `topic` is its name on the broker, namespace included. */
export class UnknownTopic extends Error {
  readonly code = 'unknown_topic';
  readonly topic: string;
  constructor(topic: string) {
    super(`the broker has no topic ${topic}`);
    this.topic = topic;
  }
}

/**
 * An append refused because the appends waiting for the log already hold its bound: the
 * log is slower than what arrives. Retryable: the gateway answers `unavailable`, the actor
 * host's command batch is delivered again.
 */
export class LogBusy extends Error {
  readonly code = 'log_busy';
}
