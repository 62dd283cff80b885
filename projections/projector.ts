import { SpanKind } from '@opentelemetry/api';
import type { EventLog, LogRecord, Subscription } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Logger } from '../telemetry/logger.ts';
import { LATENCY_BUCKETS_MS } from '../telemetry/metrics.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { contextFrom, tracerFor } from '../telemetry/trace.ts';
import { tracing } from '../telemetry/router.ts';
import { keysFor } from '../sealing/keys.ts';
import type { Keyring, KeyStore } from '../sealing/keys.ts';
import { applyBatches, readAhead, StaleReadAhead } from './apply.ts';
import { isoMs } from './iso-ms.ts';
import type { BatchResult, PartitionBatch, ReadAhead } from './apply.ts';
import { isUnavailable } from '../stores/sql.ts';
import type { Db } from '../stores/sql.ts';
import { within } from '../runtime/deadline.ts';

export type ProjectorOptions = {
  log: EventLog;
  db: Db;
  /** The conversations' data keys. */
  keys: KeyStore;
  metrics?: Metrics;
  logger?: Logger;
  /** The events topic as the broker names it (the namespace included), for the log lines (default gemello.events). */
  topicName?: string;
  /** The projection's name: its checkpoints' key and its consumer group `gemello-projection-<name>`. */
  name?: string;
  /**
   * Attempts at a batch (default 5), within `retryForMs` (default 5000), before the error
   * goes back to the log, which delivers the batch again (kafkajs: within ~0.1–2 s, then a
   * consumer restart every ~7 s while it keeps failing). Kept below Kafka's session
   * timeout: a member that holds a batch longer loses its partitions.
   */
  attempts?: number;
  retryForMs?: number;
  /**
   * Commit without waiting for PostgreSQL to flush its WAL (synchronous_commit off, for the
   * projector's transactions only; default true). A PostgreSQL crash can then lose the last
   * commits (within wal_writer_delay × 3, 600 ms by default), rows and checkpoints together:
   * the projector applies those events again from the log, so none is skipped or doubled.
   * It takes the disk's flush (1–2 ms, up to 20 ms on a busy disk) out of every batch's lag.
   */
  lazyCommit?: boolean;
  /**
   * How often to look for assigned partitions that are behind the log while the group
   * delivers nothing for them (its offsets are past this database's checkpoints).
   */
  idleCheckMs?: number;
  /**
   * A transaction not settled after this long (default 60 s) is taken as failed and retried:
   * its connection may be dead without a word (a half-open TCP connection is noticed by the
   * kernel's keepalive after ~11 min), and the partition's batches wait behind it. Should it
   * commit after all, the retry finds the checkpoint moved and applies nothing twice.
   */
  txTimeoutMs?: number;
  /**
   * A transaction's events or messages go by COPY once it has at least this many of them
   * (PostgreSQL; default 200; 0: never): about half the server's work per row when catching
   * up (bench projector). A batch tried again after a failure goes without COPY, so a row that
   * is there already (COPY has no ON CONFLICT) costs one failed transaction, not the partition.
   */
  copyRows?: number;
  /**
   * A small group's (under READ_AHEAD_RECORDS) checkpoints and prior states are read on another connection while its
   * transaction's BEGIN is on its way (PostgreSQL; default true), and checked under the
   * transaction's lock: three round trips one after the other instead of four, what a batch's
   * projection lag waits for. Only while fewer than READ_AHEAD_TXS of this projector's
   * transactions are open, and on a pool of more connections: at most that many wait for a
   * read, so the reads find a connection.
   */
  readAhead?: boolean;
};

export type Projector = {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves once every partition's checkpoint reaches the log's end offsets as of the call (the database away meanwhile is waited out too, until the timeout). */
  caughtUp(options?: { timeoutMs?: number }): Promise<void>;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Records in one transaction before further partitions' batches get one of their own (see the queue in createProjector). */
const GROUP_RECORDS = 4_000;
/**
 * How much of a partition the log may deliver at once (see ConsumeOptions.batchBytes): a
 * projector catching up writes ~3,000 events of a partition per transaction instead of
 * ~1,400, so a conversation's row is upserted (and its prior state read) once for several
 * of its events rather than about once per event (bench projector).
 */
const BATCH_BYTES = 2 * 1024 * 1024;
const tracer = tracerFor('gemello-projections');
/** Transactions open at most for a group's state to be read ahead (see ProjectorOptions.readAhead); the pool has 10 connections by default. */
const READ_AHEAD_TXS = 3;
/** A group of fewer records is a follower's, read ahead (a catch-up's large ones gain nothing: their round trips overlap). */
const READ_AHEAD_RECORDS = 200;

/** Projects the events topic into the read-model tables (conversations, messages, confirmed data, events). */
export function createProjector(options: ProjectorOptions): Projector {
  const { log, db } = options;
  const keyStore = options.keys;
  const name = options.name ?? 'readmodel';
  const attempts = options.attempts ?? 5;
  const retryForMs = options.retryForMs ?? 5_000;
  const idleCheckMs = options.idleCheckMs ?? 5_000;
  const lazyCommit = options.lazyCommit ?? true;
  const txTimeoutMs = options.txTimeoutMs ?? 60_000;
  const copyRows = options.copyRows ?? 200;
  // Each transaction waiting for its read holds a connection: the pool must have one more.
  const readsAhead = (options.readAhead ?? true) && db.kind === 'postgres' && (db.connections ?? 1) > READ_AHEAD_TXS;
  /** Transactions open (write's). */
  let open = 0;
  const logger = options.logger;
  const labels = { projection: name };
  const m = options.metrics && {
    lag: options.metrics.histogram('gemello_projection_lag_ms', 'Time from an event to its projection (now - occurredAt)', LATENCY_BUCKETS_MS),
    applied: options.metrics.counter('gemello_projection_events_total', 'Events applied to the read models'),
    rejected: options.metrics.counter('gemello_projection_rejected_total', 'Events the projection could not apply, by kind'),
    failures: options.metrics.counter('gemello_projection_failures_total', 'Transactions that failed to commit (retried)'),
    fills: options.metrics.counter('gemello_projection_fills_total', 'Stretches of the log read directly because the read model stood before what the group delivers, by why (hole: its first batch started after the checkpoint; idle: nothing delivered for a partition behind the log)'),
    queue: options.metrics.gauge('gemello_projection_queue_batches', 'Batches waiting for or in a transaction (bound: two per partition, the group\'s and a fill\'s)'),
    fillsRunning: options.metrics.gauge('gemello_projection_fills_running', 'Partitions whose log is being read directly'),
  };
  let sub: Subscription | null = null;
  let stopped = false;
  options.metrics?.onCollect(() => {
    m?.queue.set(queue.length + busy.size, labels);
    m?.fillsRunning.set(fills.size, labels);
  });
  const waiters = new Set<() => void>();

  /** Batches (one per partition) in one transaction, once (by COPY where it pays, unless `copy` is false); throws what the transaction threw. */
  async function write(batches: PartitionBatch[], copy = true): Promise<BatchResult[]> {
    const started = performance.now();
    const records = batches.reduce((n, b) => n + b.records.length, 0);
    // A small group on a first try.
    const ahead = copy && readsAhead && records < READ_AHEAD_RECORDS && open < READ_AHEAD_TXS ? readAhead(db, name, batches) : undefined;
    ahead?.catch(() => {}); // awaited in the transaction; should BEGIN fail first, not unobserved
    const apply = (keys: Keyring | undefined, read: Promise<ReadAhead> | undefined) =>
      within(db.tx(async (q) => applyBatches(q, name, batches, { keys, lazyCommit, copyRows: copy ? copyRows : 0, ahead: read && (await read) })), txTimeoutMs, `the transaction did not settle within ${txTimeoutMs} ms`);
    let results: BatchResult[];
    open++;
    try {
      // Before the transaction: cached keys cost no query, and PGlite's one connection is free.
      const keys = await keysFor(keyStore, batches.flatMap((b) => b.records));
      try {
        results = await apply(keys, ahead);
      } catch (err) {
        // Another writer committed between the read and the lock: rolled back; again, reading under the lock.
        if (!(err instanceof StaleReadAhead)) throw err;
        logger?.info(`projection ${name}: ${err.message}; applying again`);
        results = await apply(keys, undefined);
      }
    } finally {
      open--;
    }
    const now = Date.now();
    const traced = tracing();
    let applied = 0;
    for (const [i, r] of results.entries()) {
      const partition = batches[i]!.partition;
      for (const e of r.applied) {
        if (e.type === 'ConversationErased') keyStore.forget(e.conversationId);
        // One span per applied event, in the trace of the prompt that caused it, covering the batch's transaction.
        if (traced) tracer.startSpan('projection.apply', {
          kind: SpanKind.CONSUMER,
          startTime: started,
          attributes: { 'conversation.id': e.conversationId, 'event.seq': e.seq, 'event.type': e.type, 'projection.name': name, 'messaging.kafka.partition': partition, 'messaging.kafka.offset': e.position.offset },
        }, contextFrom(e.traceparent)).end();
        if (!m) continue;
        const at = isoMs(e.occurredAt);
        if (!Number.isNaN(at)) m.lag.observe(Math.max(0, now - at), labels);
      }
      applied += r.applied.length;
      for (const x of r.rejected) {
        m?.rejected.inc({ ...labels, kind: x.kind });
        logger?.error(`partition ${partition} offset ${x.offset} not projected (${x.kind}): ${x.reason}`);
      }
    }
    if (applied) m?.applied.inc(labels, applied);
    for (const w of [...waiters]) w();
    return results;
  }

  /** A batch whose transaction failed, tried again alone with backoff; throws once the budget is spent. */
  async function retry(b: PartitionBatch, err: unknown, first: number): Promise<BatchResult> {
    for (let attempt = 1; ; attempt++) {
      const ms = Math.min(2000, 100 * 2 ** (attempt - 1));
      if (stopped || attempt >= attempts || Date.now() - first + ms > retryForMs) {
        logger?.error(`partition ${b.partition} batch at ${b.records[0]?.offset} failed ${attempt} times: ${(err as Error).message}; the log delivers it again`);
        throw err;
      }
      // Postgres down or restarting: back off, then the same batch in a new transaction.
      logger?.warn(`partition ${b.partition} batch at ${b.records[0]?.offset} failed (${(err as Error).message}); retry in ${ms} ms`);
      await sleep(ms);
      try {
        return (await write([b], false))[0]!;
      } catch (e) {
        m?.failures.inc(labels);
        err = e;
      }
    }
  }

  // Batches wait here until the current turn of the event loop is over, then go to the
  // database together: one transaction takes a batch of each partition that has one waiting.
  // kafkajs hands over the batches of all partitions of a fetch at once and fetches again
  // only when every one is done; with a transaction per partition, each fetch waited for the
  // slowest of a dozen transactions competing for the same two cores. Large batches
  // (catching up) still get a transaction each, side by side, so both cores keep working.
  type Waiting = PartitionBatch & { resolve: (r: BatchResult) => void; reject: (err: unknown) => void };
  let queue: Waiting[] = [];
  /** Partitions with a batch in a transaction or being retried: their next batch waits, so a partition's batches apply in order. */
  const busy = new Set<number>();
  let scheduled = false;

  function submit(b: PartitionBatch): Promise<BatchResult> {
    return new Promise((resolve, reject) => {
      queue.push({ ...b, resolve, reject });
      schedule();
    });
  }

  function schedule(): void {
    if (scheduled || !queue.length) return;
    scheduled = true;
    // After the I/O callback at hand: kafkajs hands over a fetch's batches within one.
    setImmediate(() => {
      scheduled = false;
      flush();
    });
  }

  function flush(): void {
    let group: Waiting[] = [];
    let size = 0;
    const rest: Waiting[] = [];
    for (const w of queue) {
      if (busy.has(w.partition)) {
        rest.push(w);
        continue;
      }
      busy.add(w.partition);
      group.push(w);
      size += w.records.length;
      if (size >= GROUP_RECORDS) {
        void commit(group);
        group = [];
        size = 0;
      }
    }
    queue = rest;
    if (group.length) void commit(group);
  }

  async function commit(group: Waiting[]): Promise<void> {
    const first = Date.now();
    const done = (w: Waiting) => {
      busy.delete(w.partition);
      schedule();
    };
    try {
      const results = await write(group);
      for (const [i, w] of group.entries()) {
        done(w);
        w.resolve(results[i]!);
      }
    } catch (err) {
      m?.failures.inc(labels);
      // Each batch on its own from here, so one that Postgres refuses holds up its own partition only.
      for (const w of group) void retry(w, err, first).then(w.resolve, w.reject).finally(() => done(w));
    }
  }

  // The database's checkpoints are the truth, the consumer group's offsets only where to
  // start fetching. When the group is ahead (a new, reset or restored database), it would
  // never deliver what lies between, so that stretch is read from the log directly.
  const assigned = new Set<number>();
  /** Partitions the group delivered something for since the last idle check. */
  const delivered = new Set<number>();
  const fills = new Map<number, Promise<void>>();

  function fill(partition: number, from: number, why: 'hole' | 'idle'): Promise<void> {
    let running = fills.get(partition);
    if (!running) {
      m?.fills.inc({ ...labels, reason: why });
      logger?.warn(`partition ${partition}: the read model stops at offset ${from}, before what the consumer group delivers; reading the log from there`);
      running = log
        .read(TOPICS.events, partition, from, async (batch) => {
          if (stopped) throw new Error('the projector stopped');
          await submit({ partition, records: batch });
        })
        .then(() => {})
        .finally(() => fills.delete(partition));
      fills.set(partition, running);
    }
    return running;
  }

  /**
   * Every batch must start at its partition's checkpoint: one that starts after it (the group
   * ahead of the database, a batch fetched before a rebalance, records the client dropped
   * while the partition moved) would leave a stretch of the log out of the read model for
   * good, so that stretch is read from the log first. gemello's producers write no
   * transaction markers, so offsets are dense and a gap is always a hole (another producer's
   * marker costs one read of the log from the checkpoint, which finds the batch's records).
   */
  async function handle(partition: number, records: LogRecord[]): Promise<void> {
    delivered.add(partition);
    const r = await submit({ partition, records, contiguous: true });
    if (r.hole) {
      await fill(partition, r.hole.from, 'hole');
      await submit({ partition, records });
    }
  }

  /**
   * Fills assigned partitions that are behind the log but got nothing from the group since
   * the last check. Not while batches wait for or are in a transaction: then the group is
   * not idle but waiting for this projector (kafkajs fetches again only once every batch of
   * a fetch is handled), and reading the same stretch from the log beside it only doubled
   * the work of a projector already behind (what the collapse of issue 15 logged).
   */
  async function checkIdle(): Promise<void> {
    const waitingForUs = queue.length > 0 || busy.size > 0;
    const idle = waitingForUs ? [] : [...assigned].filter((p) => !delivered.has(p) && !fills.has(p));
    delivered.clear();
    if (!idle.length) return;
    const ends = await log.endOffsets(TOPICS.events);
    const rows = await db.query<{ partition: number; next_offset: number }>('SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1', [name]);
    const at = new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
    for (const p of idle) {
      const from = at.get(p) ?? 0;
      if (from < (ends[p] ?? 0) && !stopped && assigned.has(p)) {
        fill(p, from, 'idle').catch((err) => logger?.error(`partition ${p}: reading the log from ${from} failed: ${(err as Error).message}; trying again later`));
      }
    }
  }
  let idleTimer: ReturnType<typeof setInterval> | null = null;

  return {
    async start() {
      if (sub) return;
      stopped = false;
      await log.ensureTopics([TOPICS.events]);
      sub = await log.consume({
        group: `gemello-projection-${name}`,
        topic: TOPICS.events,
        from: 'earliest',
        onAssigned(partitions) {
          assigned.clear();
          for (const p of partitions) assigned.add(p);
          delivered.clear();
        },
        handle,
        batchBytes: BATCH_BYTES,
      });
      idleTimer = setInterval(() => {
        checkIdle().catch((err) => logger?.warn(`idle check failed: ${(err as Error).message}`));
      }, idleCheckMs);
      logger?.info(`projection ${name} consuming ${options.topicName ?? TOPICS.events} from its checkpoints`);
    },
    async stop() {
      stopped = true;
      if (idleTimer) clearInterval(idleTimer);
      idleTimer = null;
      const s = sub;
      sub = null;
      await s?.stop();
      await Promise.allSettled([...fills.values()]);
      assigned.clear();
      for (const w of [...waiters]) w();
    },
    async caughtUp({ timeoutMs = Infinity } = {}) {
      const ends = await log.endOffsets(TOPICS.events);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let rows: Array<{ partition: number; next_offset: number }>;
        try {
          rows = await db.query<{ partition: number; next_offset: number }>(
            'SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1',
            [name],
          );
        } catch (err) {
          // A database that is away or coming back (a connection opened during an outage can
          // still time out after it is back) is waited for like the projection is, until the
          // deadline; an error in the statement itself is not.
          if (!isUnavailable(err) || Date.now() >= deadline) throw err;
          await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
          continue;
        }
        const at = new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
        const behind = ends.flatMap((end, p) => (end > (at.get(p) ?? 0) ? [`${p}: ${at.get(p) ?? 0}/${end}`] : []));
        if (!behind.length) return;
        if (Date.now() >= deadline) throw new Error(`projection ${name} is behind the log (partition: checkpoint/end) ${behind.join(', ')}`);
        // Woken by a commit here; the timer covers other processes of the same group.
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            waiters.delete(wake);
            resolve();
          };
          const timer = setTimeout(wake, Math.min(100, Math.max(0, deadline - Date.now())));
          waiters.add(wake);
        });
      }
    },
  };
}
