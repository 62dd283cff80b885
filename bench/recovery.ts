// Actor activation by recovery tier, full replay and projection lag, on real Kafka, Redis
// and Postgres, with Emmett (PostgreSQL event store) rebuilding the same conversations on
// the same Postgres as the peer.
//
//   BENCH_CONVERSATIONS (10000) × BENCH_EVENTS (50) events on 12 partitions; a Redis
//   snapshot at seq EVENTS-10 and the last 10 events after it, so the snapshot tier is
//   snapshot + a 10-event tail. BENCH_SAMPLE (2000) timed activations per tier after
//   BENCH_WARMUP (200) untimed ones; BENCH_PEER_STREAMS (1000) Emmett streams;
//   BENCH_LAG_RATE (1000) events/s for BENCH_LAG_SECONDS (10) s for the projection lag.
//   BENCH_ONLY=lag: the log, the catch-up and the projection lag only (no recovery tiers,
//   peer or replay); it prints its figures and leaves bench/results/recovery.json alone.
//   BENCH_FLOW_EVERY (10): every 10th conversation runs the reference flow (bench/flow-conversations.ts);
//   its Redis and Postgres tiers are timed apart too.
//   With BENCH_CONVERSATIONS=1000 it takes about a minute.
import { randomBytes, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql';
import { createRecovery } from '../actors/recovery.ts';
import { replayLog } from '../actors/replay.ts';
import type { Recovered } from '../actors/recovery.ts';
import type { Snapshot, SnapshotStore } from '../actors/ports.ts';
import { evolve, fold, initialState } from '../actors/state.ts';
import type { ConversationState } from '../actors/state.ts';
import { TailIndex } from '../actors/tail.ts';
import { decodeEvent, encodeSealedEvent, isEventRecord } from '../events/codec.ts';
import { keysFor } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { DomainEvent, EventEnvelope, LogPosition } from '../events/schemas.ts';
import { createKafkaLog } from '../log/kafka.ts';
import { partitionFor } from '../log/partition.ts';
import { TOPICS } from '../log/port.ts';
import type { EventLog, OutgoingRecord } from '../log/port.ts';
import { createPostgresDb } from '../stores/db-postgres.ts';
import { migrate } from '../projections/migrate.ts';
import { createFileLog } from '../log/file.ts';
import { createLoggedKeyStore } from '../sealing/key-store.ts';
import { fingerprint } from '../sealing/master-key.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProjector } from '../projections/projector.ts';
import type { Db } from '../stores/sql.ts';
import { createReadModelStateSource } from '../projections/state-source.ts';
import { createRedisSnapshotStore } from '../stores/snapshots/redis.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../test/support/env.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { flowConversationEvents } from './flow-conversations.ts';
import { envelopeAt } from './synthetic.ts';
import { measureLag } from './projection-lag.ts';
import { loadNow, percentile, report, round, startRun } from './report.ts';

// The data keys' home for this run: a keys topic in a private file log (the measured paths
// read keys from the database cache, as every gemello process does), one master key per run.
const benchMasterKey = new Uint8Array(randomBytes(32));
const benchMaster = { key: benchMasterKey, id: fingerprint(benchMasterKey), source: 'bench' };
let benchKeyLog: EventLog | null = null;
const benchKeys = (db: Db) => createLoggedKeyStore({ log: (benchKeyLog ??= createFileLog({ dir: mkdtempSync(join(tmpdir(), 'gemello-bench-keys-')), partitions: 12 })), db, master: benchMaster });

const env = process.env;
const N = Number(env.BENCH_CONVERSATIONS ?? 10_000);
const EVENTS = Number(env.BENCH_EVENTS ?? 50);
const TAIL = Math.min(10, EVENTS - 1);
const SNAP_AT = EVENTS - TAIL;
const SAMPLE = Number(env.BENCH_SAMPLE ?? 2_000);
/** Every BENCH_FLOW_EVERY-th conversation runs the reference flow (0: none); its tiers are also timed apart. */
const FLOW_EVERY = Number(env.BENCH_FLOW_EVERY ?? 10);
const WARMUP = Number(env.BENCH_WARMUP ?? 200);
const PEER_STREAMS = Number(env.BENCH_PEER_STREAMS ?? 1_000);
const LAG_RATE = Number(env.BENCH_LAG_RATE ?? 1_000);
const LAG_SECONDS = Number(env.BENCH_LAG_SECONDS ?? 10);
const PARTITIONS = 12;
const ONLY_LAG = env.BENCH_ONLY === 'lag';
/** Personal content sealed with each conversation's data key, as the actor host writes it (BENCH_SEAL=0: in the clear). */
const SEAL = env.BENCH_SEAL !== '0';
/** Records per append: ~700 B each, well under the broker's 1 MB batch limit. */
const APPEND_BATCH = 500;

type Conv = {
  id: string;
  index: number;
  partition: number;
  key: Uint8Array | null;
  state: ConversationState;
  /** The state and log position at seq SNAP_AT. */
  snap: { state: ConversationState; position: LogPosition | null } | null;
  /** A flow conversation's events (the reference flow), or null for a chat. */
  flow?: DomainEvent[] | null;
};

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.log(`[recovery ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

/** Prints `what` every `ms` while `fn` runs. */
async function withProgress<T>(what: () => string, fn: () => Promise<T>, ms = 5_000): Promise<T> {
  const t = setInterval(() => log(what()), ms);
  try {
    return await fn();
  } finally {
    clearInterval(t);
  }
}

const stats = (xs: number[], digits = 3) => ({ p50: round(percentile(xs, 50), digits), p95: round(percentile(xs, 95), digits), p99: round(percentile(xs, 99), digits), max: round(Math.max(0, ...xs), digits) });

export async function run(): Promise<void> {
  const tag = randomUUID().slice(0, 8);
  const namespace = `benchrec${tag}.`;
  const schema = `bench_rec_${tag}`;
  const peerSchema = `bench_emmett_${tag}`;
  const kafkaLog = createKafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace, clientId: 'gemello-bench-recovery' });
  // The load generator of the lag phase has a producer of its own.
  const loadLog = createKafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace, clientId: 'gemello-bench-load' });
  const db = createPostgresDb({ url: DATABASE_URL, schema });
  const snapshots = createRedisSnapshotStore({ url: REDIS_URL, prefix: `${namespace}gemello:` });
  const postgresModule = (await import('postgres')).default;
  const admin = postgresModule(DATABASE_URL, { max: 1, onnotice: () => {} });
  const peerUrl = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${peerSchema}`)}`;
  let peer: ReturnType<typeof getPostgreSQLEventStore> | null = null;
  let stopProjector: (() => Promise<void>) | null = null;
  const leftovers = { brokers: KAFKA_BROKERS, namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [schema, peerSchema] };
  const disarm = onInterrupt(() => cleanUp(leftovers));
  const run = startRun();
  log(`namespace ${namespace}, schema ${schema}; ${N} conversations × ${EVENTS} events, ${PARTITIONS} partitions, snapshot at seq ${SNAP_AT}`);
  try {
    await migrate(db);
    await kafkaLog.ensureTopics([TOPICS.events]);

    // ---- 1. the log: seqs 1..SNAP_AT, snapshots, then the tail ------------------------
    const convs: Conv[] = Array.from({ length: N }, (_, index) => {
      const id = randomUUID();
      const flow = FLOW_EVERY > 0 && index % FLOW_EVERY === 0 ? flowConversationEvents(id, index, EVENTS) : null;
      return { id, index, partition: partitionFor(id, PARTITIONS), key: null as Uint8Array | null, state: initialState(id), snap: null, flow };
    });
    if (SEAL) {
      log(`making ${N} data keys (conversation_keys)`);
      const maker = benchKeys(db);
      await pool(convs, 16, async (c) => void (c.key = await maker.create(c.id)));
    }
    const byPartition = Array.from({ length: PARTITIONS }, (_, p) => convs.filter((c) => c.partition === p));
    let appended = 0;
    let appendBytes = 0;
    let appendMs = 0;
    const appendPhase = async (from: number, to: number) => {
      const t0 = now();
      await withProgress(() => `appended ${appended.toLocaleString()} / ${(N * EVENTS).toLocaleString()} events`, () =>
        Promise.all(byPartition.map(async (list, p) => {
          let records: OutgoingRecord[] = [];
          let owners: { c: Conv; seq: number; state: ConversationState }[] = [];
          const flush = async () => {
            if (!records.length) return;
            const base = await kafkaLog.append(TOPICS.events, p, records);
            owners.forEach((o, k) => {
              if (o.seq === SNAP_AT) o.c.snap = { state: o.state, position: { partition: p, offset: base + k } };
            });
            appended += records.length;
            records = [];
            owners = [];
          };
          // Conversations interleave in the log, as they do under real traffic.
          for (let seq = from; seq <= to; seq++) {
            for (const c of list) {
              const e = envelopeAt(c, seq);
              c.state = evolve(c.state, e);
              const r = encodeSealedEvent(e, c.key);
              appendBytes += r.value.length;
              records.push(r);
              owners.push({ c, seq, state: c.state });
              if (records.length >= APPEND_BATCH) await flush();
            }
          }
          await flush();
        })),
      );
      appendMs += now() - t0;
    };
    log(`appending seqs 1..${SNAP_AT}`);
    await appendPhase(1, SNAP_AT);
    log(`writing ${N} Redis snapshots at seq ${SNAP_AT}`);
    let snapshotBytes = 0;
    let flowSnapshotBytes = 0;
    await pool(convs, 64, async (c) => {
      const s: Snapshot = { conversationId: c.id, seq: SNAP_AT, eventId: c.snap!.state.lastEventId, position: c.snap!.position!, state: c.snap!.state };
      snapshotBytes += JSON.stringify(s).length;
      if (c.flow) flowSnapshotBytes += JSON.stringify(s).length;
      await snapshots.put(s);
    });
    const tailStart = await kafkaLog.endOffsets(TOPICS.events);
    for (let p = 0; p < PARTITIONS; p++) await snapshots.putCheckpoint(p, tailStart[p]!);
    log(`appending the tail, seqs ${SNAP_AT + 1}..${EVENTS}`);
    await appendPhase(SNAP_AT + 1, EVENTS);
    const appendRate = appended / (appendMs / 1000);
    log(`${appended.toLocaleString()} events appended at ${Math.round(appendRate).toLocaleString()} events/s; mean event ${Math.round(appendBytes / appended)} B, snapshot ${Math.round(snapshotBytes / N)} B`);

    // ---- 2. the projector catches up ---------------------------------------------------
    const checkpointSum = async () => {
      const rows = await db.query<{ n: number }>(`SELECT coalesce(sum(next_offset), 0)::bigint AS n FROM projection_checkpoints WHERE projection = 'readmodel'`);
      return Number(rows[0]?.n ?? 0);
    };
    const ends = await kafkaLog.endOffsets(TOPICS.events);
    const total = ends.reduce((a, b) => a + b, 0);
    let projected = 0;
    const t1 = now();
    const projector = createProjector({ log: kafkaLog, db, keys: benchKeys(db), name: 'readmodel', attempts: 20 });
    stopProjector = () => projector.stop();
    await projector.start();
    await withProgress(() => `projected ${projected.toLocaleString()} / ${total.toLocaleString()} events`, async () => {
      const poll = setInterval(() => void checkpointSum().then((n) => (projected = n), () => {}), 1000);
      try {
        await projector.caughtUp({ timeoutMs: 30 * 60_000 });
      } finally {
        clearInterval(poll);
      }
    });
    const projectRate = total / ((now() - t1) / 1000);
    await projector.stop();
    stopProjector = null;
    log(`projector caught up: ${total.toLocaleString()} events at ${Math.round(projectRate).toLocaleString()} events/s`);
    if (ONLY_LAG) {
      const r = await measureLag({ db, kafkaLog, loadLog, keys: () => benchKeys(db), firstIndex: N, rate: LAG_RATE, seconds: LAG_SECONDS, log, seal: SEAL, onProjector: (stop) => (stopProjector = stop) });
      log(`BENCH_ONLY=lag (${N} × ${EVENTS} events before): lag p50 / p95 / p99 ${r.lag.p50} / ${r.lag.p95} / ${r.lag.p99} ms at ${Math.round(r.offeredRate)} events/s; catch-up ${Math.round(projectRate).toLocaleString()} events/s; not written to bench/results`);
      return;
    }

    // ---- 3. each partition's tail, from where the last-10 phase began ------------------
    const t2 = now();
    const tails = tailStart.map((s) => new TailIndex(s));
    let tailEvents = 0;
    // As the host takes a partition over: each batch's keys in one call, then synchronous decoding.
    const tailKeys = SEAL ? benchKeys(db) : null;
    await Promise.all(tails.map((tail, p) => kafkaLog.read(TOPICS.events, p, tail.start, async (records) => {
      const ring = await keysFor(tailKeys, records);
      for (const r of records) if (isEventRecord(r)) {
        tail.add(decodeEvent(r, ring));
        tailEvents++;
      }
    })));
    const tailMs = now() - t2;
    log(`tail index built: ${tailEvents.toLocaleString()} events in ${tailMs.toFixed(0)} ms (includes the reader joining its group)`);

    // ---- 4. the peer: Emmett on the same Postgres ----------------------------------------
    await admin.unsafe(`CREATE SCHEMA IF NOT EXISTS "${peerSchema}"`);
    peer = getPostgreSQLEventStore(peerUrl);
    await peer.schema.migrate(); // once, before concurrent appends race to create it
    const peerConvs = convs.slice(0, Math.min(PEER_STREAMS, N));
    let peerDone = 0;
    const t3 = now();
    await withProgress(() => `Emmett: ${peerDone} / ${peerConvs.length} streams appended`, () =>
      pool(peerConvs, 4, async (c) => {
        const events = Array.from({ length: EVENTS }, (_, k) => {
          const e = envelopeAt(c, k + 1);
          return { type: e.type, data: e as unknown as Record<string, unknown> };
        });
        await peer!.appendToStream(`conversation-${c.id}`, events);
        peerDone++;
      }),
    );
    const peerAppendRate = (peerConvs.length * EVENTS) / ((now() - t3) / 1000);
    log(`Emmett: ${peerConvs.length} streams × ${EVENTS} events appended at ${Math.round(peerAppendRate).toLocaleString()} events/s`);
    const peerEvolve = (s: ConversationState, e: { data: unknown }) => evolve(s, e.data as EventEnvelope);

    // ---- 5. activation latency by tier, interleaved so machine noise hits each alike -----
    const recoveryKeys: KeyStore | null = SEAL ? benchKeys(db) : null;
    const recovery = createRecovery({ log: kafkaLog, snapshots, readModel: createReadModelStateSource(db), keys: recoveryKeys });
    const nothing: SnapshotStore = { ...snapshots, kind: 'redis', get: async () => null };
    const recoveryNoRedis = createRecovery({ log: kafkaLog, snapshots: nothing, readModel: createReadModelStateSource(db), keys: recoveryKeys });
    const resident = new Map(convs.map((c) => [c.id, { id: c.id, state: c.state }]));
    const pick = (list: Conv[]) => list[Math.floor(Math.random() * list.length)]!;
    const check = (r: Recovered, c: Conv, tier: string, folded: number) => {
      if (r.tier !== tier) throw new Error(`${c.id} recovered from ${r.tier}, expected ${tier}: ${r.skipped.join('; ')}`);
      if (r.folded !== folded || r.state.seq !== EVENTS || r.state.lastEventId !== c.state.lastEventId) throw new Error(`${c.id}: recovered seq ${r.state.seq} after folding ${r.folded}, expected ${EVENTS} after ${folded}`);
    };
    const tiers = {
      floor: async (c: Conv) => {
        const t = now();
        const text = await snapshots.redis.get(snapshots.key(c.id));
        JSON.parse(text!);
        return now() - t;
      },
      redis: async (c: Conv) => {
        const t = now();
        const r = await recovery.recover(c.id, c.partition, tails[c.partition]!);
        const ms = now() - t;
        check(r, c, 'snapshot', TAIL);
        return ms;
      },
      postgres: async (c: Conv) => {
        const t = now();
        const r = await recoveryNoRedis.recover(c.id, c.partition, tails[c.partition]!);
        const ms = now() - t;
        check(r, c, 'readmodel', 0);
        return ms;
      },
      emmett: async (c: Conv) => {
        const t = now();
        const r = await peer!.aggregateStream(`conversation-${c.id}`, { evolve: peerEvolve, initialState: () => initialState(c.id) });
        const ms = now() - t;
        if (r.state.seq !== EVENTS) throw new Error(`Emmett rebuilt ${c.id} at seq ${r.state.seq}`);
        return ms;
      },
      memory: async (c: Conv) => {
        // What the host does for a resident actor: one Map lookup.
        const t = now();
        const a = resident.get(c.id);
        const ms = now() - t;
        if (!a) throw new Error('not resident');
        return ms;
      },
    };
    type TierName = keyof typeof tiers;
    const samples: Record<TierName, number[]> = { floor: [], redis: [], postgres: [], emmett: [], memory: [] };
    const source = (t: TierName) => (t === 'emmett' ? peerConvs : convs);
    log(`warming up (${WARMUP} activations per tier, not timed)`);
    for (const t of Object.keys(tiers) as TierName[]) for (let i = 0; i < WARMUP; i++) await tiers[t](pick(source(t)));
    // The correctness of what is timed: the recovered state is the fold of the whole log.
    for (const c of convs.slice(0, 20)) {
      const r = await recovery.recover(c.id, c.partition, tails[c.partition]!);
      if (!isDeepStrictEqual(r.state, c.state)) throw new Error(`recovered state of ${c.id} differs from the fold of its events`);
      const p = await recoveryNoRedis.recover(c.id, c.partition, tails[c.partition]!);
      if (!isDeepStrictEqual(p.state, c.state)) throw new Error(`read-model state of ${c.id} differs from the fold of its events`);
    }
    const BLOCK = 250;
    await withProgress(() => `activations: ${Object.entries(samples).map(([k, v]) => `${k} ${v.length}`).join(', ')} / ${SAMPLE}`, async () => {
      for (let done = 0; done < SAMPLE; done += BLOCK) {
        for (const t of Object.keys(tiers) as TierName[]) {
          for (let i = 0; i < Math.min(BLOCK, SAMPLE - done); i++) samples[t].push(await tiers[t](pick(source(t))));
        }
      }
    });

    // Flow conversations, the same tiers timed apart: their state holds the flow's definition, memory and node.
    const flowConvs = convs.filter((c) => c.flow);
    const flowSamples = { redis: [] as number[], postgres: [] as number[] };
    for (let i = 0; flowConvs.length && i < Math.min(SAMPLE, 1_000); i++) {
      flowSamples.redis.push(await tiers.redis(pick(flowConvs)));
      flowSamples.postgres.push(await tiers.postgres(pick(flowConvs)));
    }
    const fs = { redis: stats(flowSamples.redis), postgres: stats(flowSamples.postgres) };

    // The replay tier for one conversation: the partition from offset 0 up to the tail.
    const recoveryReplay = createRecovery({ log: kafkaLog, snapshots: nothing, readModel: null, keys: recoveryKeys });
    const replayTierMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = pick(convs);
      const t = now();
      const r = await recoveryReplay.recover(c.id, c.partition, tails[c.partition]!);
      replayTierMs.push(now() - t);
      check(r, c, 'replay', EVENTS);
    }

    // ---- 6. full replay: read + decode + fold every event of every partition ------------
    log('full replay of every partition');
    const progress = new Array<string>(PARTITIONS).fill('-');
    const replayOnce = async (parts: number[]) => {
      // A fresh key store: its keys are loaded as the replay meets them, as after a restart.
      const replayKeys = SEAL ? benchKeys(db) : null;
      const t = now();
      const r = await replayLog({ log: kafkaLog, keys: replayKeys, partitions: parts, onRecords: (_n, p, last) => (progress[p] = `at offset ${last}`) });
      return { events: r.events, ms: now() - t, states: r.states };
    };
    // Partition by partition (what "full partition replay" means: one partition from offset
    // 0 to its end), then all twelve at once (a host taking every partition over together).
    const perPartition: { events: number; ms: number }[] = [];
    await withProgress(() => `replaying partition ${perPartition.length}: ${progress[perPartition.length] ?? '-'}`, async () => {
      for (let p = 0; p < PARTITIONS; p++) {
        const r = await replayOnce([p]);
        for (const c of byPartition[p]!.slice(0, 5)) if (r.states.get(c.id)?.state.lastEventId !== c.state.lastEventId) throw new Error(`replay of ${c.id} ended elsewhere`);
        perPartition.push({ events: r.events, ms: r.ms });
      }
    });
    const seq = { events: perPartition.reduce((a, r) => a + r.events, 0), ms: perPartition.reduce((a, r) => a + r.ms, 0) };
    const slowest = Math.min(...perPartition.map((r) => r.events / (r.ms / 1000)));
    const all = await withProgress(() => `replaying all partitions at once… ${progress.join(' ')}`, () => replayOnce(Array.from({ length: PARTITIONS }, (_, p) => p)));
    for (const c of convs.slice(0, 50)) if (all.states.get(c.id)?.state.lastEventId !== c.state.lastEventId) throw new Error(`replay of ${c.id} ended elsewhere`);
    log(`replayed ${seq.events.toLocaleString()} events partition by partition in ${seq.ms.toFixed(0)} ms (slowest partition ${Math.round(slowest).toLocaleString()} events/s); all at once in ${all.ms.toFixed(0)} ms`);
    all.states.clear();

    // ---- 7. projection lag under load ---------------------------------------------------
    const lagRun = await measureLag({ db, kafkaLog, loadLog, keys: () => benchKeys(db), firstIndex: N, rate: LAG_RATE, seconds: LAG_SECONDS, log, seal: SEAL, onProjector: (stop) => (stopProjector = stop) });
    const { lag, offeredRate } = lagRun;

    // ---- report ---------------------------------------------------------------------
    const s = { floor: stats(samples.floor), redis: stats(samples.redis), postgres: stats(samples.postgres), emmett: stats(samples.emmett), memory: stats(samples.memory, 5) };
    const metrics = {
      memory_p99_ms: s.memory.p99,
      redis_tail_p50_ms: s.redis.p50,
      redis_tail_p95_ms: s.redis.p95,
      redis_tail_p99_ms: s.redis.p99,
      postgres_tail_p50_ms: s.postgres.p50,
      postgres_tail_p95_ms: s.postgres.p95,
      postgres_tail_p99_ms: s.postgres.p99,
      full_replay_events_per_s: Math.round(seq.events / (seq.ms / 1000)),
      slowest_partition_replay_events_per_s: Math.round(slowest),
      full_replay_concurrent_events_per_s: Math.round(all.events / (all.ms / 1000)),
      replay_tier_p50_ms: round(percentile(replayTierMs, 50), 1),
      projection_lag_p50_ms: lag.p50,
      projection_lag_p95_ms: lag.p95,
      projection_lag_p99_ms: lag.p99,
      projection_lag_max_ms: lag.max,
      projection_delivery_p50_ms: lagRun.delivery.p50,
      projection_delivery_p99_ms: lagRun.delivery.p99,
      projection_wait_p50_ms: lagRun.waiting.p50,
      projection_wait_p99_ms: lagRun.waiting.p99,
      projection_batch_tx_p50_ms: lagRun.tx.p50,
      projection_batch_tx_p99_ms: lagRun.tx.p99,
      projection_fetch_cycle_p50_ms: lagRun.cycle.p50,
      projection_fetch_cycle_log_share_p50_ms: lagRun.logCycle.p50,
      projection_events_per_tx_p50: lagRun.eventsPerTx.p50,
      projection_partitions_per_tx_p50: lagRun.partitionsPerTx.p50,
      peer_emmett_rehydrate_p50_ms: s.emmett.p50,
      peer_emmett_rehydrate_p95_ms: s.emmett.p95,
      peer_emmett_rehydrate_p99_ms: s.emmett.p99,
      redis_get_floor_p50_ms: s.floor.p50,
      redis_get_floor_p99_ms: s.floor.p99,
      snapshot_bytes: Math.round(snapshotBytes / N),
      flow_conversations: flowConvs.length,
      flow_snapshot_bytes: flowConvs.length ? Math.round(flowSnapshotBytes / flowConvs.length) : 0,
      flow_redis_tier_p50_ms: fs.redis.p50,
      flow_redis_tier_p99_ms: fs.redis.p99,
      flow_postgres_tier_p50_ms: fs.postgres.p50,
      flow_postgres_tier_p99_ms: fs.postgres.p99,
      event_bytes: Math.round(appendBytes / appended),
      append_events_per_s: Math.round(appendRate),
      projection_catchup_events_per_s: Math.round(projectRate),
      tail_index_build_ms: Math.round(tailMs),
      lag_offered_events_per_s: Math.round(offeredRate),
      lag_append_p50_ms: lagRun.append.p50,
      peer_emmett_append_events_per_s: Math.round(peerAppendRate),
    };
    const ratio = s.emmett.p99 > 0 ? round(s.redis.p99 / s.emmett.p99, 2) : 0;
    report({
      name: 'recovery',
      params: {
        conversations: N,
        events_per_conversation: EVENTS,
        partitions: PARTITIONS,
        snapshot_at_seq: SNAP_AT,
        tail_events: TAIL,
        flow_every: FLOW_EVERY ? `every ${FLOW_EVERY}th conversation runs the reference flow (flows/examples/onboarding.flow.json) through the real deciders` : 'none',
        sealed: SEAL ? 'personal content AES-256-GCM sealed per conversation (conversation_keys), as the actor host writes it' : 'in the clear',
        sample: SAMPLE,
        warmup: WARMUP,
        peer: '@event-driven-io/emmett-postgresql 0.42 (aggregateStream), same Postgres',
        peer_streams: peerConvs.length,
        lag_rate_events_per_s: LAG_RATE,
        lag_seconds: LAG_SECONDS,
        lag_measured: 'append call → COMMIT of the projector transaction holding the row returned',
        ...run.params(),
      },
      metrics,
      table: [
        ['memory (resident actor: Map lookup) p99', `${s.memory.p99} ms`, '—'],
        ['Redis snapshot + 10-event tail p50 / p95 / p99', `${s.redis.p50} / ${s.redis.p95} / ${s.redis.p99} ms`, 'p99 < 2 ms, ≤ peer'],
        ['Redis GET + JSON.parse floor p50 / p99', `${s.floor.p50} / ${s.floor.p99} ms`, '(floor)'],
        ['Postgres read model + tail (no Redis) p50 / p95 / p99', `${s.postgres.p50} / ${s.postgres.p95} / ${s.postgres.p99} ms`, 'p99 < 5 ms'],
        [`flow conversations (${flowConvs.length}): Redis tier / Postgres tier p50 / p99`, `${fs.redis.p50} / ${fs.redis.p99} ms, ${fs.postgres.p50} / ${fs.postgres.p99} ms`, '(as for chats)'],
        [`peer: Emmett aggregateStream of ${EVENTS} events p50 / p95 / p99`, `${s.emmett.p50} / ${s.emmett.p95} / ${s.emmett.p99} ms`, '(peer)'],
        ['Redis tier p99 / Emmett p99', `${ratio}×`, '≤ 1×'],
        [`full replay, every partition from 0, one after another (read + decode + fold, ${(seq.events / 1000).toFixed(0)}k events)`, `${metrics.full_replay_events_per_s.toLocaleString()} events/s`, '≥ 50,000 events/s'],
        ['  slowest partition', `${metrics.slowest_partition_replay_events_per_s.toLocaleString()} events/s`, ''],
        ['  all 12 partitions at once', `${metrics.full_replay_concurrent_events_per_s.toLocaleString()} events/s`, ''],
        ['replay tier, one conversation (its partition from 0)', `${metrics.replay_tier_p50_ms} ms`, ''],
        [`projection lag at ${Math.round(offeredRate)} events/s p50 / p95 / p99`, `${lag.p50} / ${lag.p95} / ${lag.p99} ms`, 'p99 < 100 ms'],
        ['  p50 split: Kafka delivery / waiting / transaction', `${lagRun.delivery.p50} / ${lagRun.waiting.p50} / ${lagRun.tx.p50} ms`, ''],
        ['  fetch cycle p50, of it after the projector is done', `${lagRun.cycle.p50} ms, ${lagRun.logCycle.p50} ms`, ''],
        ['projector catch-up', `${metrics.projection_catchup_events_per_s.toLocaleString()} events/s`, ''],
        ['append (batches of 500, acks=all)', `${metrics.append_events_per_s.toLocaleString()} events/s`, ''],
        ['snapshot / event size', `${metrics.snapshot_bytes} B / ${metrics.event_bytes} B`, '~5 KB snapshot'],
        ['flow conversation snapshot size', `${metrics.flow_snapshot_bytes} B`, '≤ 32 KB'],
        ['machine load (1-min average) at start / end', `${run.loadStart} / ${loadNow()}`, '(2 cores, shared)'],
      ],
    });
  } finally {
    await stopProjector?.().catch(() => {});
    await peer?.close().catch(() => {});
    await kafkaLog.close().catch(() => {});
    await loadLog.close().catch(() => {});
    await snapshots.close().catch(() => {});
    await db.close().catch(() => {});
    await admin.end({ timeout: 5 }).catch(() => {});
    const problems = await cleanUp(leftovers);
    disarm();
    log(problems.length ? `clean-up problems: ${problems.join('; ')}` : `cleaned up (topics and groups ${namespace}*, Redis keys ${namespace}*, schemas ${schema}, ${peerSchema})`);
  }
}
