import { Buffer } from 'node:buffer';
import { Admin, ConfigResourceTypes, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import type { Message, MessagesStream } from '@platformatic/kafka';
import { createAppendQueue } from './append-queue.ts';
import { fetchPlain } from './platformatic-fetch.ts';
import { decodeGroupFetches } from './platformatic-group-fetch.ts';
import { createFetchFloors } from './fetch-floors.ts';
import { writeProducesContiguously } from './platformatic-produce.ts';
import type { KafkaLogOptions } from './kafka-options.ts';
import type { ConsumeOptions, EventLog, LogRecord, OutgoingRecord, Subscription } from './port.ts';
import { UnknownTopic, retentionFrom, topicConfigOf } from './port.ts';
import { COMMIT_EVERY_MS, createLanes } from './lanes.ts';
import { kafkaErrorText, removeGroupMembers } from './kafka-errors.ts';

/** The longest wait between two tries to reopen a consumer while the broker is away: it is back within this of the broker. */
const REOPEN_MAX_MS = 400;
/** Reader connections per log: partitions read side by side in a replay. */
const READERS = 4;
/**
 * Bytes of a partition a bounded read fetches at once. @platformatic/kafka keeps a response as
 * the list of socket chunks it came in (64 KB each here) and every field it reads walks that
 * list from its start, so a record costs more the larger the fetch: ≈ 5 µs a record in 8 MB
 * fetches, ≈ 2.5 µs in fetches of about one record batch.
 */
const READ_FETCH_BYTES = 256 * 1024;
/** A control batch (transaction marker) carries no records of ours. */
const IS_CONTROL = 1 << 5;

type Str = Consumer<string, string, string, string>;

/**
 * The producer's serializer of header keys and values: the bytes of a short one made once and
 * used again (event types, schema versions, `sealed`: the same few strings in every record),
 * the rest made each time (a traceparent is new in each). The producer only reads them.
 * Per sealed event it is 7 buffers fewer of the 8 its 4 headers took (≈ 1 µs of its ≈ 9).
 */
function headerBytes(): (s?: string) => Buffer | undefined {
  const made = new Map<string, Buffer>();
  return (s) => {
    if (typeof s !== 'string') return undefined;
    let b = made.get(s);
    if (!b) {
      b = Buffer.from(s, 'utf-8');
      if (s.length <= 32 && made.size < 1024) made.set(s, b);
    }
    return b;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The event log on Apache Kafka through @platformatic/kafka (maintained, pure TypeScript,
 * runs unchanged on Deno). Same behaviour as the kafkajs adapter (log/kafka.ts): the contract
 * suite runs against both.
 */
export function createPlatformaticLog(options: KafkaLogOptions): EventLog {
  const ns = options.namespace ?? '';
  const full = (name: string) => ns + name;
  const clientId = options.clientId ?? 'gemello';
  const maxWaitTime = options.maxWaitMs ?? 100;
  const defaultMaxWait = maxWaitTime;
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  // A member learns that the group rebalances with its next heartbeat: frequent heartbeats
  // are what let a partition move in a fraction of a second once its owner is gone or has
  // left. A consumer may ask for another interval (ConsumeOptions.heartbeatMs; the gateway feed: 250 ms).
  const defaultHeartbeat = Math.min(50, Math.floor(sessionTimeout / 4));
  // Bounded retries everywhere: while the broker is away an append or a read fails after a few
  // seconds (the caller answers `unavailable` or tries again) instead of waiting for ever.
  // Metadata at most a second old: after a broker dies, leaders and the group coordinator move,
  // and the clients look them up again within a second.
  const base = { clientId, bootstrapBrokers: options.brokers, retries: 6, retryDelay: 250, timeout: 5_000, connectTimeout: 2_000, metadataMaxAge: 1_000 };
  const warn = (what: string, err: unknown) => console.error(`${new Date().toISOString()} warn kafka ${what}: ${kafkaErrorText(err)}`);

  let admin: Admin | null = null;
  const adminClient = () => (admin ??= new Admin(base));
  // A few consumers that never join a group list offsets and fetch for bounded reads. They stay
  // connected (a host taking a partition over reads at once, without a connection to set up),
  // and each one's fetches go one at a time: a fetch session belongs to a connection and moves
  // on with each fetch, so fetches of different partitions cannot overlap on one. Partition p
  // reads through reader p mod READERS, so a replay reads that many partitions side by side.
  const readers: Array<{ client: Str; fetching: Promise<unknown> }> = [];
  const readerFor = (partition: number) => {
    const i = partition % READERS;
    return (readers[i] ??= { client: new Consumer({ ...base, clientId: `${clientId}-reader-${i}`, groupId: full('gemello-reader'), deserializers: stringDeserializers }), fetching: Promise.resolve() });
  };
  const reader = (): Str => readerFor(0).client;
  const oneAtATime = <T>(partition: number, f: () => Promise<T>): Promise<T> => {
    const r = readerFor(partition);
    const mine = r.fetching.catch(() => {}).then(f);
    r.fetching = mine;
    return mine;
  };
  // Idempotent: a retried send after a lost acknowledgement is not written twice.
  const producer = new Producer({ ...base, idempotent: true, acks: -1, retries: 6, serializers: { ...stringSerializers, headerKey: headerBytes(), headerValue: headerBytes() } });
  writeProducesContiguously(producer);
  const subscriptions = new Set<Subscription>();

  const appends = createAppendQueue(async (request) => {
    const messages = [];
    for (const a of request) for (const r of a.records) messages.push({ topic: a.topic, partition: a.partition, key: r.key, value: r.value, headers: r.headers });
    const result = await producer.send({ messages });
    return new Map((result.offsets ?? []).map((o) => [`${o.topic}/${o.partition}`, Number(o.offset)]));
  });

  async function endOffsets(topic: string): Promise<number[]> {
    const offsets = await reader().listOffsets({ topics: [full(topic)] }).catch((err: Error) => {
      throw /unknown topic/i.test(err.message) ? new UnknownTopic(full(topic)) : err;
    });
    const out = new Array<number>(options.partitions).fill(0);
    (offsets.get(full(topic)) ?? []).forEach((o, p) => (out[p] = Number(o)));
    return out;
  }

  async function consume(opts: ConsumeOptions): Promise<Subscription> {
    const topic = full(opts.topic);
    const maxWaitTime = opts.maxWaitMs ?? defaultMaxWait;
    const heartbeatInterval = Math.min(opts.heartbeatMs ?? defaultHeartbeat, Math.floor(sessionTimeout / 4));
    const consumer: Str = new Consumer({
      ...base,
      groupId: full(opts.group),
      sessionTimeout,
      heartbeatInterval,
      rebalanceTimeout: 10_000,
      maxWaitTime,
      autocommit: false,
      deserializers: stringDeserializers,
    });
    let assigned = new Set<number>();
    let stopped = false;
    /** Set when stop() begins: a failing batch is no longer retried here. */
    let closing = false;
    let wake!: () => void;
    const closingNow = new Promise<void>((r) => (wake = r));
    let stream: MessagesStream<string, string, string, string> | null = null;
    /** Set while the next fetch waits for the handlers of the last one (holdFetch). */
    let holding = false;
    const lanes = createLanes({
      topic,
      consume: opts,
      partitions: options.partitions,
      stopped: () => stopped || closing,
      leaving: () => closing,
      leavingNow: closingNow,
      // The stream is paused while too many records wait for their handlers.
      press: (on) => (on ? stream?.pause() : stream?.resume()),
      warn,
    });

    /**
     * After handing over a fetch's records the stream asks for the next fetch on
     * process.nextTick, which Node runs before any promise continuation: the handlers' work
     * after their first `await` (deciding, sealing, the append of the answer) waited behind
     * the building and sending of that fetch, ≈0.15 ms per consumer hop here. So the stream
     * is paused once the records are handed over and resumed when this turn's handlers have
     * run up to their first real wait (setImmediate): the next fetch goes out right after.
     */
    function holdFetch() {
      if (holding) return;
      holding = true;
      process.nextTick(() => {
        const s = stream;
        if (!s || lanes.pressed || stopped) {
          holding = false;
          return;
        }
        s.pause();
        setImmediate(() => {
          holding = false;
          if (!lanes.pressed && s === stream) s.resume();
        });
      });
    }

    // Emitted as a heartbeat is answered "rebalance in progress", before the member rejoins.
    if (opts.onRebalancing) consumer.on('consumer:group:rebalance', () => opts.onRebalancing!());
    // A committing group's new partitions start at their committed offsets, whatever the library's stream held for them.
    const floors = opts.commit === false ? null : createFetchFloors({
      committed: async (partitions) => (await consumer.listCommittedOffsets({ topics: [{ topic, partitions }] })).get(topic) ?? [],
      onFloor: (p, offset) => lanes.release(p, offset),
      closed: () => stopped || closing,
      warn,
    });
    /** The membership of the last join: a member that was not there for every generation since may have lost its partitions meanwhile. */
    let lastJoin: { memberId: string | undefined; generationId: number | undefined } | null = null;
    consumer.on('consumer:group:join', (payload) => {
      const mine = (payload.assignments ?? []).find((a) => a.topic === topic)?.partitions ?? [];
      const { memberId, generationId } = payload as { memberId?: string; generationId?: number };
      // A member frozen past its session, or removed on its lease, comes back as a new member (or
      // generations later) without having heard that its partitions moved: what it had of them
      // is stale, and every partition counts as new.
      const continued = lastJoin !== null && lastJoin.memberId === memberId && generationId !== undefined && lastJoin.generationId !== undefined && generationId === lastJoin.generationId + 1;
      lastJoin = { memberId, generationId };
      const added = mine.filter((p) => !continued || !assigned.has(p));
      assigned = new Set(mine);
      lanes.keep(assigned);
      if (floors) {
        for (const p of added) lanes.hold(p);
        floors.assigned(assigned, added);
      }
      void opts.onAssigned?.([...assigned].sort((a, b) => a - b));
    });

    // The library rejoins by itself after a heartbeat says so; should that rejoin fail (its
    // retries spent, say on connections a long stall left closed), it emits 'error' on the
    // consumer, which without a listener killed the process (a host thawed after 6 s of
    // SIGSTOP, in the failover test). The member is out of the group then: it owns nothing
    // until it has joined again, which is tried here until it succeeds or the subscription stops.
    let rejoining = false;
    consumer.on('error', (err: unknown) => {
      if (stopped || closing) return;
      warn(`rejoining ${full(opts.group)} failed; joining again`, err);
      if (assigned.size) {
        assigned = new Set();
        lanes.keep(assigned);
        void opts.onAssigned?.([]);
      }
      if (rejoining) return;
      rejoining = true;
      void (async () => {
        for (let delay = 200; !stopped && !closing; delay = Math.min(delay * 2, REOPEN_MAX_MS)) {
          try {
            await consumer.joinGroup({ sessionTimeout, heartbeatInterval, rebalanceTimeout: 10_000 });
            return;
          } catch (e) {
            if (stopped || closing) return;
            warn(`joining ${full(opts.group)}`, e);
            await sleep(delay);
          }
        }
      })().finally(() => (rejoining = false));
    });

    /** Records of one partition handed over: they go to its lane, and its handler starts once the fetch's records are all in. */
    function handOver(p: number) {
      // Messages of one fetch arrive synchronously: they are handed over together, before the next fetch is sent.
      lanes.start(p, process.nextTick);
      holdFetch();
    }

    // The library's messages: what a fetch the plain path left to it returned.
    function onMessage(m: Message<string, string, string, string>) {
      const p = m.partition;
      if (!assigned.has(p)) return;
      const offset = Number(m.offset);
      lanes.push(p, offset, () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of m.headers) if (v != null) headers[k] = v;
        return { topic: opts.topic, partition: p, offset, key: m.key ?? '', value: m.value ?? '', headers, timestamp: Number(m.timestamp) };
      });
      handOver(p);
    }
    decodeGroupFetches(consumer, topic, opts.topic, (p, records) => {
      if (!assigned.has(p)) return;
      lanes.pushAll(p, records);
      handOver(p);
    }, floors ? (topics) => floors.raise(topics) : undefined);

    async function commit() {
      const taken = lanes.takeCommits(assigned);
      if (!taken.length) return;
      try {
        await consumer.commit({ offsets: taken.map(([partition, offset]) => ({ topic, partition, offset: BigInt(offset), leaderEpoch: -1 })) });
      } catch (err) {
        // A rebalance is under way: the next owner starts from the last commit and the
        // handlers are idempotent; put them back for the next tick while they are still ours.
        lanes.putBack(taken, assigned);
        if (!stopped) warn(`commit on ${topic}`, err);
      }
    }
    const committer = opts.commit === false ? null : setInterval(() => void commit(), COMMIT_EVERY_MS);

    /** A feed from 'latest': each partition's end when it subscribed (read at the first open). */
    let startAt: Map<number, number> | null = null;
    /** Starts (or, after the stream failed, restarts) fetching; retries with backoff while the broker is away. */
    async function open(): Promise<void> {
      let delay = 200;
      for (;;) {
        try {
          // A committing group resumes after its commits. A feed starts at `from` ('latest': the
          // log's end when it subscribes), and when its stream is opened again (the broker was
          // away) it goes on after what it was handed, or from that start in a partition that
          // handed nothing yet: starting at the end again would skip what was written in between.
          if (opts.commit === false && opts.from === 'latest') startAt ??= new Map((await endOffsets(opts.topic)).map((end, p) => [p, end]));
          const resumeAt = new Map(startAt ?? []);
          for (const [p, next] of lanes.seen()) resumeAt.set(p, Math.max(next, resumeAt.get(p) ?? 0));
          const seen = [...resumeAt].map(([partition, next]) => ({ topic, partition, offset: BigInt(next) }));
          const mode = opts.commit !== false ? 'committed' : seen.length ? 'manual' : opts.from;
          const s = await consumer.consume({
            topics: [topic],
            mode,
            ...(mode === 'manual' ? { offsets: seen } : {}),
            fallbackMode: opts.from,
            autocommit: false,
            maxWaitTime,
            sessionTimeout,
            heartbeatInterval,
            rebalanceTimeout: 10_000,
            // Fetches of the size asked for, so handling one overlaps fetching the next (its
            // default, 50 MB, decodes a whole backlog before the first record is handed over).
            ...(opts.batchBytes ? { maxBytes: 4 * opts.batchBytes, maxBytesPerPartition: opts.batchBytes } : {}),
          });
          stream = s;
          s.on('data', onMessage);
          s.on('error', (err) => {
            if (stopped) return;
            warn(`consumer of ${topic}`, err);
            stream = null;
            void s.close().catch(() => {}).then(() => (stopped ? undefined : open()));
          });
          return;
        } catch (err) {
          if (stopped) return;
          warn(`joining ${full(opts.group)}`, err);
          await sleep(delay);
          delay = Math.min(delay * 2, REOPEN_MAX_MS);
        }
      }
    }
    await open();

    const sub: Subscription = {
      memberId: () => consumer.memberId,
      stillMember: (timeoutMs) => new Promise<boolean | null>((resolve) => {
        // Heartbeats go one at a time: one that starts after this call and ends well proves it.
        let started = false;
        const onStart = () => (started = true);
        const onEnd = () => started && done(true);
        const onLost = () => done(false);
        const timer = setTimeout(() => done(null), timeoutMs);
        function done(v: boolean | null) {
          clearTimeout(timer);
          consumer.off('consumer:heartbeat:start', onStart);
          consumer.off('consumer:heartbeat:end', onEnd);
          consumer.off('consumer:group:rebalance', onLost);
          consumer.off('consumer:group:join', onLost);
          resolve(v);
        }
        if (stopped || closing) return done(false);
        consumer.on('consumer:heartbeat:start', onStart);
        consumer.on('consumer:heartbeat:end', onEnd);
        consumer.on('consumer:group:rebalance', onLost);
        consumer.on('consumer:group:join', onLost);
      }),
      async stop() {
        if (stopped || closing) return;
        closing = true;
        wake();
        subscriptions.delete(sub);
        // Let handlers in flight finish so their offsets are committed, then leave the group.
        await lanes.drain(5_000);
        stopped = true;
        if (committer) clearInterval(committer);
        if (opts.commit !== false) await commit();
        await stream?.close().catch(() => {});
        await consumer.close(true).catch(() => {});
      },
    };
    subscriptions.add(sub);
    return sub;
  }

  /**
   * One fetch of a partition from `offset` (below `stop`): its records, and the offset after the
   * last batch it returned (`offset` itself when it returned nothing).
   */
  async function fetchRange(name: string, partition: number, offset: number, stop: number): Promise<{ records: LogRecord[]; next: number }> {
    const topic = full(name);
    const r = readerFor(partition).client;
    const metadata = await r.metadata({ topics: [topic] });
    const t = metadata.topics.get(topic);
    if (!t) throw new Error(`topic ${topic} not found`);
    const leader = t.partitions[partition]!.leader;
    const broker = metadata.brokers.get(leader);
    const plain = broker ? await oneAtATime(partition, () => fetchPlain(r, broker, name, t.id, partition, offset, stop, READ_FETCH_BYTES, maxWaitTime)) : null;
    if (plain) return plain;
    const response = await oneAtATime(partition, () => r.fetch({
      node: leader,
      topics: [{ topicId: t.id, partitions: [{ partition, fetchOffset: BigInt(offset), partitionMaxBytes: READ_FETCH_BYTES, currentLeaderEpoch: -1, lastFetchedEpoch: -1 }] }],
      maxWaitTime,
      minBytes: 1,
      maxBytes: READ_FETCH_BYTES,
      isolationLevel: 0,
    }));
    const records: LogRecord[] = [];
    let next = offset;
    for (const tr of response.responses) {
      for (const pr of tr.partitions) {
        if (pr.partitionIndex !== partition) continue;
        for (const batch of pr.records ?? []) {
          const first = Number(batch.firstOffset);
          const last = first + batch.lastOffsetDelta;
          if (!(batch.attributes & IS_CONTROL)) {
            const firstTimestamp = Number(batch.firstTimestamp);
            for (const rec of batch.records) {
              const o = first + rec.offsetDelta;
              if (o < offset || o >= stop) continue;
              const headers: Record<string, string> = {};
              for (const [k, v] of rec.headers) if (k && v) headers[k.toString()] = v.toString();
              records.push({ topic: name, partition, offset: o, key: rec.key?.toString() ?? '', value: rec.value?.toString() ?? '', headers, timestamp: firstTimestamp + Number(rec.timestampDelta) });
            }
          }
          if (last + 1 > next) next = last + 1;
        }
      }
    }
    return { records, next };
  }

  /**
   * Reads one partition from `from` to `end`, fetch by fetch, on a consumer that never joins a
   * group. The next fetch goes out before a batch is handed over: the broker and the network
   * work while the handler does.
   */
  async function readRange(name: string, partition: number, from: number, end: number, handle: (records: LogRecord[]) => void | Promise<void>) {
    let offset = from;
    // Marked handled at once: one that fails while a batch is being handled is awaited (and throws) after it.
    const fetchAt = (at: number) => {
      const f = fetchRange(name, partition, at, end);
      f.catch(() => {});
      return f;
    };
    let pending: Promise<{ records: LogRecord[]; next: number }> | null = fetchAt(offset);
    while (pending) {
      const { records, next } = await pending;
      pending = null;
      const moved = next > offset;
      offset = next;
      if (offset < end && moved) pending = fetchAt(offset);
      if (records.length) await handle(records);
      if (offset < end && !pending) {
        // Nothing came although the end is ahead (a leader change, an empty fetch): try again shortly.
        if (!moved) await sleep(20);
        pending = fetchAt(offset);
      }
    }
  }

  const partitionLocks = new Map<string, Promise<unknown>>();

  return {
    kind: 'kafka',
    partitions: options.partitions,
    async ensureTopics(topics, topicOptions) {
      const a = adminClient();
      const existing = new Set(await a.listTopics());
      // One request per set of settings (a request's settings apply to each topic in it).
      for (const topic of topics.filter((t) => !existing.has(full(t)))) {
        const config = topicConfigOf(topic, topicOptions);
        const configs = config ? Object.entries(config).map(([name, value]) => ({ name, value })) : undefined;
        await a.createTopics({ topics: [full(topic)], partitions: options.partitions, replicas: -1, configs }).catch((err) => {
          // Another process created it in the meantime: fine.
          if (!/already exists/i.test(JSON.stringify((err as { errors?: unknown }).errors ?? (err as Error).message))) throw err;
        });
      }
      // Wait until every partition has a leader, so the first append does not fail.
      const until = Date.now() + 10_000;
      for (;;) {
        // A broker of a fresh cluster may not know a topic just created: asked again until the deadline.
        const meta = await a.metadata({ topics: topics.map(full), forceUpdate: true }).catch((err) => {
          if (Date.now() > until) throw err;
          return null;
        });
        let ready = meta !== null;
        for (const name of topics.map(full)) {
          const t = meta?.topics.get(name);
          if (!t) { ready = false; continue; }
          if (t.partitionsCount !== options.partitions) {
            throw Object.assign(new Error(`topic ${name} has ${t.partitionsCount} partitions but GEMELLO_PARTITIONS is ${options.partitions}; they must match`), { code: 'bad_config' });
          }
          if (t.partitions.some((p) => p.leader < 0)) ready = false;
        }
        if (ready) {
          // Connect the readers now: a takeover reads at once.
          await Promise.all(Array.from({ length: Math.min(READERS, options.partitions) }, (_, p) => readerFor(p).client.metadata({ topics: topics.map(full) }).catch(() => {})));
          break;
        }
        if (Date.now() > until) throw new Error(`topics ${topics.join(', ')} have no leader after 10 s`);
        await sleep(50);
      }
    },
    async retentionOf(topic) {
      const [d] = await adminClient().describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: full(topic), configurationKeys: ['retention.ms', 'retention.bytes'] }] });
      return retentionFrom(Object.fromEntries((d?.configs ?? []).map((c) => [c.name, c.value])));
    },
    append(topic, partition, records: OutgoingRecord[]) {
      return appends.append(full(topic), partition, records);
    },
    pendingAppends() {
      return appends.pending();
    },
    consume,
    async prepareReads(topic) {
      // Every reader connected (and the topic's metadata at hand) before the first read.
      await Promise.all(Array.from({ length: READERS }, (_, i) => readerFor(i).client.metadata({ topics: [full(topic)] })));
    },
    async read(topic, partition, from, handle, knownEnd) {
      const end = knownEnd ?? (await endOffsets(topic))[partition]!;
      if (from >= end) return end;
      // One read per partition at a time: a second waits for the first.
      const lockKey = `${topic}/${partition}`;
      const prev = partitionLocks.get(lockKey) ?? Promise.resolve();
      const mine = prev.catch(() => {}).then(() => readRange(topic, partition, from, end, handle));
      partitionLocks.set(lockKey, mine);
      await mine;
      return end;
    },
    endOffsets,
    async evict(group, memberIds) {
      if (!memberIds.length) return;
      await removeGroupMembers(adminClient(), full(group), memberIds, 'liveness lease ran out');
    },
    async ping() {
      await adminClient().metadata({ topics: [], forceUpdate: true });
    },
    async close() {
      await Promise.allSettled([...subscriptions].map((s) => s.stop()));
      await Promise.allSettled(readers.map((r) => r.client.close(true)));
      await Promise.allSettled([producer.close(true), admin?.close()]);
    },
  };
}
