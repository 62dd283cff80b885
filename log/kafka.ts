import { randomUUID } from 'node:crypto';
import { logLevel } from 'kafkajs';
import type { Admin, Consumer, Producer } from 'kafkajs';
import { createAppendQueue } from './append-queue.ts';
import { newKafka } from './kafkajs-request-queue.ts';
import type { KafkaLogOptions } from './kafka-options.ts';
import type { ConsumeOptions, EventLog, LogRecord, OutgoingRecord, Subscription } from './port.ts';
import { UnknownTopic, retentionFrom, topicConfigOf } from './port.ts';
import { COMMIT_EVERY_MS, createLanes } from './lanes.ts';
import { kafkaErrorText, removeGroupMembers } from './kafka-errors.ts';

export type { KafkaLogOptions } from './kafka-options.ts';

const toRecord = (topic: string, partition: number, m: { key: Buffer | null; value: Buffer | null; headers?: Record<string, unknown>; offset: string; timestamp: string }): LogRecord => {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) if (v != null) headers[k] = String(v);
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key?.toString() ?? '',
    value: m.value?.toString() ?? '',
    headers,
    timestamp: Number(m.timestamp),
  };
};

// kafkajs 2.2.4 arms its request queue's throttle timer with a negative delay when it is not
// throttled, which Node turns into 1 ms with a TimeoutNegativeWarning printed on stderr each
// time: harmless, and noise to every user of the CLI. Dropped here, where kafkajs comes in,
// rather than with a node flag in every place that starts a process.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
  if (type === 'TimeoutNegativeWarning' || (warning as { name?: string })?.name === 'TimeoutNegativeWarning') return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

/** The longest wait between two tries to restart a crashed consumer while the broker is away: it is back within this of the broker. */
const REOPEN_MAX_MS = 400;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Error types (kafkajs names them) that say the metadata asked from names a broker that does not lead the partition (any more). */
const STALE_LEADER = new Set(['NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE', 'UNKNOWN_TOPIC_OR_PARTITION', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH']);
function staleLeader(err: unknown): boolean {
  for (let e = err as { type?: string; name?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if ((e.type && STALE_LEADER.has(e.type)) || e.name === 'KafkaJSBrokerNotFound') return true;
  }
  return false;
}

/** How long the bounded reader's fetch loop waits between fetches while it reads nothing (kafkajs sleeps that long). */
const READER_WAIT_MS = 20;

/** The event log on Apache Kafka through kafkajs. */
export function createKafkaLog(options: KafkaLogOptions): EventLog {
  const kafka = newKafka({
    clientId: options.clientId ?? 'gemello',
    brokers: options.brokers,
    logLevel: logLevel.ERROR,
    // One plain line per problem instead of kafkajs' JSON with stacks.
    logCreator: () => ({ namespace, log }) => {
      const extra = log.topic !== undefined ? ` (${String(log.topic)}/${String(log.partition)})` : '';
      const cause = typeof log.error === 'string' ? `: ${log.error}` : log.stack ? `: ${String(log.stack).split('\n')[0]}` : '';
      console.error(`${new Date().toISOString()} warn kafka ${namespace}: ${log.message}${extra}${cause}`);
    },
    // Short waits between tries: after a broker outage the clients are back within half a second of it.
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 500 },
  });
  const maxWaitTimeInMs = options.maxWaitMs ?? 100;
  const ns = options.namespace ?? '';
  const full = (name: string) => ns + name;
  let admin = kafka.admin();
  let adminReady: Promise<void> | null = null;
  const connectedAdmin = async () => {
    const a = admin;
    adminReady ??= a.connect().catch((err) => {
      if (admin === a) adminReady = null;
      throw err;
    });
    await adminReady;
    return a;
  };
  /**
   * kafkajs' admin keeps the topics' metadata (who leads each partition) for 5 minutes and
   * cannot be told otherwise; a ListOffsets answered "not the leader" fails without refreshing
   * it, so every later call asks the same broker again. A new admin starts from fresh metadata.
   */
  const replaceAdmin = (stale: Admin) => {
    if (admin !== stale) return;
    admin = kafka.admin();
    adminReady = null;
    void stale.disconnect().catch(() => {});
  };
  /** The end offset of each partition; a stale leader is asked again (fresh metadata) for at most ~1.5 s. */
  async function endsOf(topic: string): Promise<number[]> {
    for (let attempt = 0; ; attempt++) {
      const a = await connectedAdmin();
      try {
        const offsets = await a.fetchTopicOffsets(topic);
        const out = new Array<number>(options.partitions).fill(0);
        for (const o of offsets) out[o.partition] = Number(o.high);
        return out;
      } catch (err) {
        if (!staleLeader(err) || attempt >= 4) throw err;
        // "Not the leader" for every partition of a topic that is not there at all.
        if (!(await a.listTopics().catch(() => [topic])).includes(topic)) throw new UnknownTopic(topic);
        replaceAdmin(a);
        await sleep(100 * 2 ** attempt);
      }
    }
  }
  // Idempotent: a retried send after a lost acknowledgement is not written twice.
  const newProducer = (): Producer => kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  let producer = newProducer();
  let producerReady: Promise<void> | null = null;
  const subscriptions = new Set<Subscription>();

  // kafkajs' admin cannot remove a member from a group: the LeaveGroup on the dead member's
  // behalf goes through @platformatic/kafka's admin, loaded only when it is needed and kept
  // (a takeover does not wait for a connection to be set up).
  type PlatformaticAdmin = InstanceType<typeof import('@platformatic/kafka').Admin>;
  let evictor: Promise<PlatformaticAdmin> | null = null;
  const evictClient = () => (evictor ??= import('@platformatic/kafka').then(({ Admin }) => new Admin({ clientId: `${options.clientId ?? 'gemello'}-evict`, bootstrapBrokers: options.brokers, retries: 2, retryDelay: 100, metadataMaxAge: 1_000 })));
  /** Connects that client when a group member first joins: a takeover does not wait for it. */
  const warmEvictor = () => void evictClient().then((a) => a.metadata({ topics: [] })).catch(() => {});
  async function evictMembers(group: string, memberIds: string[]): Promise<void> {
    if (!memberIds.length) return;
    await removeGroupMembers(await evictClient(), full(group), memberIds, 'liveness lease ran out');
  }

  /**
   * A consumer crashes when the broker is away for longer than its retries. It comes back as a
   * new member, and its old one, which could not leave while the broker was away, would hold
   * the group's next rebalance until its session times out: it is removed on its behalf as
   * soon as the broker answers (retried while the coordinator is loading the group). A crash
   * kafkajs does not restart from is restarted here.
   */
  function onCrash(consumer: Consumer, group: string, c: { member: () => string | null; forget: () => void; stopping: () => boolean; restart: () => Promise<void>; what: string }) {
    consumer.on(consumer.events.CRASH, (e) => {
      const stale = c.member();
      c.forget();
      if (stale) {
        void (async () => {
          for (const until = Date.now() + 30_000; !c.stopping() && c.member() === null && Date.now() < until; await sleep(300)) {
            try {
              await evictMembers(group, [stale]);
              return;
            } catch {
              // tried again while the broker is away
            }
          }
        })();
      }
      if (!e.payload.restart && !c.stopping()) {
        void (async () => {
          for (let delay = 200; !c.stopping(); delay = Math.min(2 * delay, REOPEN_MAX_MS)) {
            await sleep(delay);
            try {
              await c.restart();
              return;
            } catch (err) {
              console.error(`${new Date().toISOString()} warn kafka restarting ${c.what}: ${(err as Error).message}`);
            }
          }
        })();
      }
    });
  }

  /**
   * A consumer group member. kafkajs heartbeats only from its fetch loop, between batches, and
   * a rebalance waits for the batches being handled: with the handler inside that loop a member
   * heard of a rebalance only once its slowest handler was done (0.65 s after a dead member was
   * removed, in one failover run), and a handler that failed while the broker was away crashed
   * the consumer. So the loop only hands records over: each partition's records wait in a lane
   * for its handler, and the fetch goes on (its position is resolved at once; the offsets
   * committed are those handled), so heartbeats go out every fetch.
   */
  async function consume(opts: ConsumeOptions): Promise<Subscription> {
    const topic = full(opts.topic);
    const consumer = kafka.consumer({
      groupId: full(opts.group),
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      rebalanceTimeout: 10_000,
      // Frequent heartbeats: a member learns of a rebalance (a dead member removed) with its next one.
      heartbeatInterval: Math.min(opts.heartbeatMs ?? 50, Math.floor((options.sessionTimeoutMs ?? 10_000) / 4)),
      maxWaitTimeInMs: opts.maxWaitMs ?? maxWaitTimeInMs,
      allowAutoTopicCreation: false,
      ...(opts.batchBytes ? { maxBytesPerPartition: opts.batchBytes, maxBytes: Math.max(10 * 1024 * 1024, 4 * opts.batchBytes) } : {}),
    });
    let assigned = new Set<number>();
    let memberId: string | null = null;
    let stopping = false;
    let wake!: () => void;
    const stoppingNow = new Promise<void>((r) => (wake = r));
    const warn = (message: string, err: unknown) => console.error(`${new Date().toISOString()} warn kafka ${message}: ${kafkaErrorText(err)}`);
    // Fetching paused because too many records wait: kept here, since a consumer that restarted
    // after a crash fetches everything again (and pausing throws while it is down).
    let pressed = false;
    const applyPress = () => {
      try {
        if (pressed) consumer.pause([{ topic }]);
        else consumer.resume([{ topic }]);
      } catch {
        // Down (crashed, restarting): applied when it joins again.
      }
    };
    const lanes = createLanes({
      topic,
      consume: opts,
      partitions: options.partitions,
      stopped: () => stopping,
      leaving: () => stopping,
      leavingNow: stoppingNow,
      press: (on) => {
        pressed = on;
        applyPress();
      },
      warn,
    });
    // A subscription that keeps no offsets goes on, after every join, from the offset after what
    // it was handed: kafkajs starts a member without commits at the log's end (or its start), and
    // a feed whose consumer crashed while the broker was away and joined again as a new member
    // skipped what was written meanwhile (replies appended before it was back never reached their
    // sockets: prompts silent after a broker restart, and after a leader's SIGKILL in a 3-broker
    // cluster). "latest" is the log's end when it subscribes.
    const resumeAt = new Map<number, number>();
    if (opts.commit === false && opts.from === 'latest') (await endsOf(topic)).forEach((end, p) => resumeAt.set(p, end));
    // Emitted when the fetch loop hears "rebalance in progress" (or a new generation), before it rejoins.
    if (opts.onRebalancing) consumer.on(consumer.events.REBALANCING, () => opts.onRebalancing!());
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      if (memberId === null && opts.commit !== false) warmEvictor();
      memberId = e.payload.memberId;
      const mine = (e.payload.memberAssignment[topic] ?? []).slice().sort((a, b) => a - b);
      assigned = new Set(mine);
      lanes.keep(assigned);
      if (opts.commit === false) {
        for (const [p, next] of lanes.seen()) resumeAt.set(p, Math.max(next, resumeAt.get(p) ?? 0));
        for (const p of mine) {
          const at = resumeAt.get(p);
          // Before the first fetch of this join: the event is emitted as the group is joined.
          if (at !== undefined) consumer.seek({ topic, partition: p, offset: String(at) });
        }
      }
      if (pressed) applyPress();
      void opts.onAssigned?.(mine);
    });

    async function commit() {
      const offsets = lanes.takeCommits(assigned);
      if (!offsets.length) return;
      try {
        await consumer.commitOffsets(offsets.map(([partition, offset]) => ({ topic, partition, offset: String(offset) })));
      } catch {
        // A rebalance is under way: the next owner starts from the last commit and the
        // handlers are idempotent; put them back for the next tick while they are still ours.
        lanes.putBack(offsets, assigned);
      }
    }
    const committer = opts.commit === false ? null : setInterval(() => void commit(), COMMIT_EVERY_MS);

    onCrash(consumer, opts.group, {
      member: () => memberId,
      forget: () => (memberId = null),
      stopping: () => stopping,
      restart: () => startRunning(),
      what: `the consumer of ${topic}`,
    });
    const startRunning = async () => {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: opts.from === 'earliest' });
      // Commits go out at most once a second (and on stop), of what the handlers are done with.
      await consumer.run({
        partitionsConsumedConcurrently: options.partitions,
        eachBatchAutoResolve: false,
        autoCommit: false,
        eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
          if (!isRunning() || isStale() || batch.messages.length === 0) return;
          const p = batch.partition;
          if (!assigned.has(p) || stopping) return;
          for (const m of batch.messages) lanes.push(p, Number(m.offset), () => toRecord(opts.topic, p, m));
          // The fetch goes on after what was handed over.
          resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
          lanes.start(p);
        },
      });
    };
    await startRunning();
    const sub: Subscription = {
      memberId: () => memberId,
      // kafkajs heartbeats from its fetch loop, between fetches, not on request. The group's
      // description answers instead: a member of a group that is stable was in every rebalance
      // since it was assigned (a member that misses one is removed, and comes back with a new
      // id), so nobody else was given its partitions.
      async stillMember(timeoutMs) {
        const asked = (async () => {
          const a = await connectedAdmin();
          const { groups } = await a.describeGroups([full(opts.group)]);
          const g = groups[0];
          return g?.state === 'Stable' && memberId !== null && g.members.some((m) => m.memberId === memberId);
        })().catch(() => null);
        return Promise.race([asked, new Promise<null>((r) => setTimeout(() => r(null), timeoutMs))]);
      },
      async stop() {
        if (stopping) return;
        stopping = true;
        wake();
        subscriptions.delete(sub);
        // Let handlers in flight finish so their offsets are committed, then leave the group.
        await lanes.drain(5_000);
        if (committer) clearInterval(committer);
        if (opts.commit !== false) await commit();
        await consumer.disconnect();
      },
    };
    subscriptions.add(sub);
    return sub;
  }

  /**
   * Bounded reads of one partition. kafkajs cannot assign partitions by hand, so one
   * consumer in a group of its own holds every partition, all paused; a read seeks one
   * partition, resumes it until the end offset taken at the start, and pauses it again.
   * A consumer that crashed (the broker away) and restarted has forgotten its pauses and
   * seeks: each join pauses again what is not being read and sends a read under way on from
   * where it got to.
   */
  function createReader(name: string) {
    const topic = full(name);
    const groupId = `gemello-reader-${randomUUID()}`;
    // Its partitions are paused between reads, and kafkajs sleeps its wait between fetches of
    // none: a short one, so a read (a partition taken over) starts within READER_WAIT_MS.
    const consumer = kafka.consumer({ groupId: full(groupId), maxWaitTimeInMs: Math.min(maxWaitTimeInMs, READER_WAIT_MS), sessionTimeout: 10_000, heartbeatInterval: 1_000 });
    const waiting = new Map<number, { next: number; end: number; handle: (r: LogRecord[]) => void | Promise<void>; done: () => void; fail: (e: unknown) => void }>();
    const all = Array.from({ length: options.partitions }, (_, p) => p);
    let assignedResolve!: () => void;
    const assigned = new Promise<void>((r) => (assignedResolve = r));
    let memberId: string | null = null;
    let stopped = false;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      memberId = e.payload.memberId;
      try {
        const idle = all.filter((p) => !waiting.has(p));
        if (idle.length) consumer.pause([{ topic, partitions: idle }]);
        for (const [p, w] of waiting) consumer.seek({ topic, partition: p, offset: String(w.next) });
      } finally {
        assignedResolve();
      }
    });
    const run = async () => {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        partitionsConsumedConcurrently: options.partitions,
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, isStale }) => {
          if (isStale()) return;
          const w = waiting.get(batch.partition);
          if (!w) {
            consumer.pause([{ topic, partitions: [batch.partition] }]);
            return;
          }
          const records: LogRecord[] = [];
          for (const m of batch.messages) {
            const offset = Number(m.offset);
            if (offset >= w.end) break;
            if (offset >= w.next) records.push(toRecord(name, batch.partition, m));
          }
          try {
            if (records.length) await w.handle(records);
          } catch (err) {
            waiting.delete(batch.partition);
            consumer.pause([{ topic, partitions: [batch.partition] }]);
            w.fail(err);
            return;
          }
          if (records.length) w.next = records[records.length - 1]!.offset + 1;
          // Without this kafkajs fetches the same batch again, and a read longer than one
          // batch never ends (each seek sets the position anew, so resolving is safe).
          if (batch.messages.length) resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
          if (w.next >= w.end || Number(batch.messages[batch.messages.length - 1]?.offset ?? -1) + 1 >= w.end) {
            waiting.delete(batch.partition);
            consumer.pause([{ topic, partitions: [batch.partition] }]);
            w.done();
          }
        },
      });
    };
    onCrash(consumer, groupId, { member: () => memberId, forget: () => (memberId = null), stopping: () => stopped, restart: run, what: `the reader of ${topic}` });
    const started = (async () => {
      await run();
      await assigned;
    })();
    return {
      started,
      async close() {
        stopped = true;
        await consumer.disconnect();
      },
      async read(partition: number, from: number, end: number, handle: (r: LogRecord[]) => void | Promise<void>): Promise<void> {
        await started;
        if (waiting.has(partition)) throw new Error(`partition ${partition} is already being read`);
        await new Promise<void>((done, fail) => {
          waiting.set(partition, { next: from, end, handle, done, fail });
          try {
            consumer.seek({ topic, partition, offset: String(from) });
            consumer.resume([{ topic, partitions: [partition] }]);
          } catch {
            // Down (crashed, restarting): its next join seeks to `from` and leaves the partition resumed.
          }
        });
      },
    };
  }
  const appends = createAppendQueue(async (request) => {
    producerReady ??= producer.connect().catch((err) => {
      producerReady = null;
      throw err;
    });
    await producerReady;
    const byTopic = new Map<string, Array<{ key: string; value: string; headers: Record<string, string>; partition: number }>>();
    for (const a of request) {
      let list = byTopic.get(a.topic);
      if (!list) byTopic.set(a.topic, (list = []));
      for (const r of a.records) list.push({ key: r.key, value: r.value, headers: r.headers, partition: a.partition });
    }
    const sending = producer;
    let meta;
    try {
      meta = await sending.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
    } catch (err) {
      // A send that failed may have landed (the broker wrote it and died before answering), and
      // kafkajs' idempotent producer does not move its sequence numbers past a failed send: the
      // next batch went out with the landed one's sequence, the broker took it for a duplicate
      // and answered with the landed one's offset, and the new records were never written (a
      // seq missing from the log, after a broker SIGKILL under traffic). A new producer gets a
      // new producer id, so nothing it sends can be taken for what the old one sent.
      if (producer === sending) {
        producer = newProducer();
        producerReady = null;
        void sending.disconnect().catch(() => {});
      }
      throw err;
    }
    const offsets = new Map(meta.map((m) => [`${m.topicName}/${m.partition}`, Number(m.baseOffset)]));
    // kafkajs 2.2.4 keeps the answers of a send by broker: when a retry finds a partition's new
    // leader among the brokers that already answered, that partition is not sent again and the
    // send resolves without it (after a leader was SIGKILLed in a 3-broker cluster). What it held
    // may have landed in the failed try, with sequence numbers kafkajs has taken back: the
    // appends fail (in doubt, read back by their writers) and the producer is replaced, as after
    // a failed send.
    if (request.some((a) => !offsets.has(`${a.topic}/${a.partition}`)) && producer === sending) {
      producer = newProducer();
      producerReady = null;
      void sending.disconnect().catch(() => {});
    }
    return offsets;
  });
  const readers = new Map<string, ReturnType<typeof createReader>>();
  const readerOf = (topic: string) => {
    let r = readers.get(topic);
    if (!r) {
      const made = (r = createReader(topic));
      readers.set(topic, made);
      // One that could not start (the broker away) is made anew by the next read.
      made.started.catch(() => {
        if (readers.get(topic) === made) readers.delete(topic);
        void made.close().catch(() => {});
      });
    }
    return r;
  };
  const partitionLocks = new Map<string, Promise<unknown>>();

  return {
    kind: 'kafka',
    partitions: options.partitions,
    async ensureTopics(topics, topicOptions) {
      const a = await connectedAdmin();
      const configEntries = (topic: string) => {
        const c = topicConfigOf(topic, topicOptions);
        return c ? Object.entries(c).map(([name, value]) => ({ name, value })) : undefined;
      };
      // kafkajs' createTopics waits for the leaders itself, and gives up on the first answer it
      // does not expect: a broker of a fresh cluster that does not know the new topic yet ("does
      // not host this topic-partition", retriable; the process did not start), and its wait
      // returns before every broker answers as the leader ("not the leader" on the first reads).
      // So: create what is missing and wait until each topic's offsets can be listed, again
      // while the answers are retriable (at most 10 s).
      for (const until = Date.now() + 10_000; ; ) {
        try {
          const existing = new Set(await a.listTopics());
          const missing = topics.filter((t) => !existing.has(full(t)));
          if (missing.length) {
            await a.createTopics({
              waitForLeaders: true,
              topics: missing.map((topic) => ({ topic: full(topic), numPartitions: options.partitions, replicationFactor: -1, configEntries: configEntries(topic) })),
            });
          }
          const meta = await a.fetchTopicMetadata({ topics: topics.map(full) });
          for (const t of meta.topics) {
            if (t.partitions.length !== options.partitions) {
              throw Object.assign(new Error(`topic ${t.name} has ${t.partitions.length} partitions but GEMELLO_PARTITIONS is ${options.partitions}; they must match`), { fatal: true, code: 'bad_config' });
            }
            if (t.partitions.some((p) => p.leader < 0)) throw new Error(`topic ${t.name} has a partition without a leader`);
          }
          await Promise.all(topics.map((t) => endsOf(full(t))));
          break;
        } catch (err) {
          if ((err as { fatal?: boolean }).fatal || Date.now() > until) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async retentionOf(topic) {
      const a = await connectedAdmin();
      const d = await a.describeConfigs({ resources: [{ type: 2 /* TOPIC (kafkajs' ConfigResourceTypes is not a named export of its CommonJS module) */, name: full(topic), configNames: ['retention.ms', 'retention.bytes'] }], includeSynonyms: false });
      return retentionFrom(Object.fromEntries((d.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue])));
    },
    append(topic, partition, records: OutgoingRecord[]) {
      return appends.append(full(topic), partition, records);
    },
    pendingAppends() {
      return appends.pending();
    },
    consume,
    async prepareReads(topic) {
      await readerOf(topic).started;
    },
    async read(topic, partition, from, handle, knownEnd) {
      const end = knownEnd ?? (await this.endOffsets(topic))[partition]!;
      if (from >= end) return end;
      const r = readerOf(topic);
      // One read per partition at a time: a second waits for the first.
      const lockKey = `${topic}/${partition}`;
      const prev = partitionLocks.get(lockKey) ?? Promise.resolve();
      const mine = prev.catch(() => {}).then(() => r.read(partition, from, end, handle));
      partitionLocks.set(lockKey, mine);
      await mine;
      return end;
    },
    evict: evictMembers,
    endOffsets: (topic) => endsOf(full(topic)),
    async ping() {
      const a = await connectedAdmin();
      await a.describeCluster();
    },
    async close() {
      await Promise.allSettled([...subscriptions].map((s) => s.stop()));
      await Promise.allSettled([...readers.values()].map((r) => r.close()));
      await Promise.allSettled([producer.disconnect(), admin.disconnect(), evictor?.then((a) => a.close())]);
    },
  };
}
