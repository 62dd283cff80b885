// The projector on each Kafka client in one run: catch-up (a fresh read model projecting a
// full log into PostgreSQL, rows and checkpoints in one transaction per batch group), then
// the projection lag at a steady BENCH_LAG_RATE (1000) events/s for BENCH_LAG_SECONDS (10) s.
//
//   BENCH_CONVERSATIONS (2000) × BENCH_EVENTS (50) events on 12 partitions, sealed.
import { TOPICS } from '../log/port.ts';
import type { KafkaClient } from '../log/kafka-client.ts';
import { createProjector } from '../projections/projector.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { Db } from '../stores/sql.ts';
import { appendAll, batches, CLIENTS, CONVERSATIONS, conversations, logger, makeKeys, now, PARTITIONS, runScope, SEAL } from './data-fixture.ts';
import { measureLag } from './projection-lag.ts';
import { loadNow, report, round, startRun } from './report.ts';
import { pgCpu } from './pg-cpu.ts';
import { profiled } from './profile.ts';
import { gcMeter } from './gc-meter.ts';

const log = logger('projector');
const LAG_RATE = Number(process.env.BENCH_LAG_RATE ?? 1_000);
const LAG_SECONDS = Number(process.env.BENCH_LAG_SECONDS ?? 10);

async function measure(client: KafkaClient, scope: ReturnType<typeof runScope>, keys: () => KeyStore) {
  const db = await scope.db(client);
  const pg = pgCpu(db, db.app);
  // A projection (and so a consumer group) of each client's own: the topic is shared.
  const name = `readmodel_${client}`;
  const kafka = await scope.log(client, 'projector');
  const load = await scope.log(client, 'load');
  let stop: (() => Promise<void>) | null = null;
  try {
    // The whole log: what was written for this run, and the lag phases of the clients before.
    const total = (await kafka.endOffsets(TOPICS.events)).reduce((a, b) => a + b, 0);
    const load0 = loadNow();
    await pg.start();
    const cpu0 = process.cpuUsage();
    const gc = gcMeter();
    const t = now();
    // Transactions counted, and the busiest moment's, to show how the log's deliveries group.
    let txs = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let firstTx = 0;
    const counted: Db = { ...db, query: db.query.bind(db), exec: db.exec.bind(db), ping: db.ping.bind(db), close: db.close.bind(db), tx: async (fn) => {
      if (!txs++) firstTx = now();
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        return await db.tx(fn);
      } finally {
        inFlight--;
      }
    } };
    const projector = createProjector({ log: kafka, db: counted, keys: keys(), name, attempts: 20 });
    stop = () => projector.stop();
    await profiled(`projector-catchup-${client}`, async () => {
      await projector.start();
      await projector.caughtUp({ timeoutMs: 30 * 60_000 });
    });
    const ms = now() - t;
    const cpu = process.cpuUsage(cpu0);
    const gcs = gc.stop();
    const gcUs = ((gcs.minorMs + gcs.majorMs) * 1000) / total;
    const nodeUs = (cpu.user + cpu.system) / total;
    const pgUs = ((await pg.read()) * 1000) / total;
    await projector.stop();
    stop = null;
    const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
    if (Number(rows[0]!.n) !== total) throw new Error(`${client}: ${rows[0]!.n} event rows after catching up, expected ${total}`);
    const catchup = Math.round(total / (ms / 1000));
    log(`${client}: caught up ${total.toLocaleString()} events in ${(ms / 1000).toFixed(1)} s: ${catchup.toLocaleString()} events/s in ${txs} transactions, at most ${maxInFlight} at once, the first ${((firstTx - t) / 1000).toFixed(1)} s after the start; CPU per event ${nodeUs.toFixed(1)} µs here + ${pgUs.toFixed(1)} µs PostgreSQL; GC pauses ${gcUs.toFixed(1)} µs an event (young generation ${Math.round(gcs.minorMs)} ms, the rest ${Math.round(gcs.majorMs)} ms), heap at most ${gcs.maxHeapMb} MB (load ${load0} → ${loadNow()})`);
    const lag = await profiled(`projector-lag-${client}`, () => measureLag({ db, kafkaLog: kafka, loadLog: load, keys, firstIndex: CONVERSATIONS, rate: LAG_RATE, seconds: LAG_SECONDS, log, seal: SEAL, name, onProjector: (s) => (stop = s) }));
    return {
      catchup_events: total,
      catchup_events_per_s: catchup,
      catchup_s: Math.round(ms / 100) / 10,
      catchup_events_per_tx: Math.round(total / txs),
      catchup_first_tx_s: Math.round((firstTx - t) / 100) / 10,
      catchup_node_cpu_us_per_event: round(nodeUs, 1),
      catchup_pg_cpu_us_per_event: round(pgUs, 1),
      catchup_gc_pause_us_per_event: round(gcUs, 1),
      catchup_gc_minor_ms: Math.round(gcs.minorMs),
      catchup_gc_major_ms: Math.round(gcs.majorMs),
      catchup_max_heap_mb: gcs.maxHeapMb,
      // What the two cores would sustain were they ours: the busier side bounds it, and both share two cores.
      catchup_cpu_bound_events_per_s: Math.round(1e6 / Math.max(nodeUs, pgUs, (nodeUs + pgUs) / 2)),
      lag_p50_ms: lag.lag.p50,
      lag_p95_ms: lag.lag.p95,
      lag_p99_ms: lag.lag.p99,
      lag_max_ms: lag.lag.max,
      lag_offered_events_per_s: Math.round(lag.offeredRate),
      lag_delivery_p50_ms: lag.delivery.p50,
      lag_wait_p50_ms: lag.waiting.p50,
      lag_tx_p50_ms: lag.tx.p50,
      lag_tx_p99_ms: lag.tx.p99,
    };
  } finally {
    await stop?.().catch(() => {});
    await kafka.close().catch(() => {});
    await load.close().catch(() => {});
    await db.close().catch(() => {});
  }
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const scope = runScope('proj');
  try {
    const keysDb = await scope.db('keys');
    const writer = await scope.log('platformatic', 'writer');
    const convs = conversations();
    let total = 0;
    try {
      await writer.ensureTopics([TOPICS.events]);
      await makeKeys(convs, scope.keys(keysDb));
      const w = await appendAll(writer, batches(convs));
      total = w.events;
      log(`${total.toLocaleString()} events written in ${(w.ms / 1000).toFixed(1)} s`);
    } finally {
      await writer.close();
    }
    // The projections read keys from the database the keys were made in, as a deployment's processes share one.
    const keys = () => scope.keys(keysDb);
    const by: Record<string, Awaited<ReturnType<typeof measure>>> = {};
    for (const client of CLIENTS) by[client] = await measure(client, scope, keys);
    await keysDb.close();
    const metrics: Record<string, number> = {};
    for (const [client, r] of Object.entries(by)) for (const [k, v] of Object.entries(r)) metrics[`${client}_${k}`] = v;
    const each = (f: (r: (typeof by)[string]) => string) => CLIENTS.map((c) => `${c} ${f(by[c]!)}`).join(', ');
    report({
      name: 'projector',
      params: { ...runInfo.params(), backends: 'Kafka 4.1, PostgreSQL on 127.0.0.1 (shared), both clients', clients: CLIENTS, events: total, partitions: PARTITIONS, sealed: SEAL, lag_rate_events_per_s: LAG_RATE, lag_seconds: LAG_SECONDS, lag_measured: 'append call → COMMIT of the projector transaction holding the row' },
      metrics,
      table: [
        [`projector catch-up (${total.toLocaleString('en-US')}+ events into PostgreSQL)`, each((r) => `${r.catchup_events_per_s.toLocaleString('en-US')} events/s`), '≥ 50,000 events/s'],
        ['  CPU per event: projector process + PostgreSQL backends', each((r) => `${r.catchup_node_cpu_us_per_event} + ${r.catchup_pg_cpu_us_per_event} µs`), '≤ 20 µs + 20 µs'],
        ['  of which the projector\'s GC pauses; its largest heap', each((r) => `${r.catchup_gc_pause_us_per_event} µs, ${r.catchup_max_heap_mb} MB`), ''],
        ['  what two idle cores would sustain at that CPU', each((r) => `${r.catchup_cpu_bound_events_per_s.toLocaleString('en-US')} events/s`), '≥ 50,000 events/s'],
        ['  events per transaction', each((r) => `${r.catchup_events_per_tx}`), ''],
        [`projection lag at ${LAG_RATE} events/s p50 / p95 / p99`, each((r) => `${r.lag_p50_ms} / ${r.lag_p95_ms} / ${r.lag_p99_ms} ms`), 'p99 < 25 ms'],
        ['  p50 split: Kafka delivery / waiting / transaction', each((r) => `${r.lag_delivery_p50_ms} / ${r.lag_wait_p50_ms} / ${r.lag_tx_p50_ms} ms`), ''],
        ['machine load (1-min average) at start / end', `${runInfo.loadStart} / ${loadNow()}`, '(2 cores, shared)'],
      ],
    });
  } finally {
    const problems = await scope.close();
    log(problems.length ? `clean-up problems: ${problems.join('; ')}` : `cleaned up ${scope.namespace}*`);
  }
}
