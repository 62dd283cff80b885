// Projection lag under load (bench recovery and bench projector): a steady rate of events
// appended over 200 conversations while a projector follows, each event timed from its
// append to the COMMIT of the projector transaction that holds its rows.
import { randomUUID } from 'node:crypto';
import type { EventEnvelope, LogPosition } from '../events/schemas.ts';
import { encodeSealedEvent } from '../events/codec.ts';
import { partitionFor } from '../log/partition.ts';
import { TOPICS } from '../log/port.ts';
import type { EventLog } from '../log/port.ts';
import { createProjector } from '../projections/projector.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { Db } from '../stores/sql.ts';
import { loadNow, percentile, round } from './report.ts';
import { envelopeAt } from './synthetic.ts';

const PARTITIONS = 12;
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const stats = (xs: number[], digits = 3) => ({ p50: round(percentile(xs, 50), digits), p95: round(percentile(xs, 95), digits), p99: round(percentile(xs, 99), digits), max: round(Math.max(0, ...xs), digits) });

export type LagContext = {
  db: Db;
  /** A fresh key store on the read model's database. */
  keys: () => KeyStore;
  /** The index of the first of the 200 conversations written (texts are picked by it). */
  firstIndex: number;
  /** Events/s offered, for how many seconds. */
  rate: number;
  seconds: number;
  log: (msg: string) => void;
  /** The projection's name (its checkpoints and its consumer group); default readmodel. */
  name?: string;
  /** Seal personal content with each conversation's key, as the actor host does. */
  seal: boolean;
  kafkaLog: EventLog;
  loadLog: EventLog;
  /** The running projector's stop, for the clean-up of an interrupted run (null once stopped). */
  onProjector: (stop: (() => Promise<void>) | null) => void;
};

/**
 * Projection lag under load: rate events/s for seconds s over 200 conversations.
 * Each event's clock starts just before its append and stops when the projector's
 * transaction holding its rows has committed (the Db is wrapped, so the time is taken the
 * moment COMMIT returns: from then on every session sees the rows). On the way it notes
 * when the log handed the event's batch to the projector and when its transaction began,
 * so the lag splits into Kafka delivery, waiting in the projector, and the transaction.
 */
export async function measureLag({ db, kafkaLog, loadLog, keys, firstIndex, rate, seconds, log, seal, name = 'readmodel', onProjector }: LagContext) {
  const appendedAt = new Map<string, number>();
  /** `${partition}/${offset}` → when the log handed that record to the projector. */
  const handedAt = new Map<string, number>();
  const lags: number[] = [];
  const delivery: number[] = [];
  const waiting: number[] = [];
  const applyMs: number[] = [];
  const eventsPerTx: number[] = [];
  const partitionsPerTx: number[] = [];
  /** Time between one delivery from the log and the next (a kafkajs fetch cycle). */
  const cycleMs: number[] = [];
  /** Of that, the time from the projector's last handler returning to the next delivery: the log's own share (offset commits, fetch). */
  const logMs: number[] = [];
  let lastHanded = 0;
  let lastDone = 0;
  const measuring = () => appendedAt.size > 0 || lags.length > 0;
  // The tap sees what the consumer group hands over; the projector's own catch-up reads pass by it.
  const tapLog: EventLog = {
    ...kafkaLog,
    consume: (o) =>
      kafkaLog.consume({
        ...o,
        handle(partition, records) {
          const t = now();
          if (measuring()) {
            if (lastHanded && t - lastHanded > 0.5) {
              cycleMs.push(t - lastHanded);
              if (lastDone > lastHanded) logMs.push(t - lastDone);
            }
            lastHanded = t;
            for (const r of records) handedAt.set(`${partition}/${r.offset}`, t);
          }
          return o.handle(partition, records).then(() => void (lastDone = now()));
        },
      }),
  };
  type Applied = { eventId: string; position: LogPosition };
  const appliedIn = (r: unknown): Applied[] =>
    Array.isArray(r) ? r.flatMap(appliedIn) : ((r as { applied?: Applied[] } | null)?.applied ?? []);
  const lagDb: Db = {
    ...db,
    kind: db.kind,
    query: db.query.bind(db),
    exec: db.exec.bind(db),
    ping: db.ping.bind(db),
    close: db.close.bind(db),
    async tx(fn) {
      const started = now();
      const r = await db.tx(fn);
      const at = now();
      const applied = appliedIn(r);
      for (const e of applied) {
        const t0 = appendedAt.get(e.eventId);
        if (t0 === undefined) continue;
        const k = `${e.position.partition}/${e.position.offset}`;
        const handed = handedAt.get(k) ?? started;
        lags.push(at - t0);
        delivery.push(handed - t0);
        waiting.push(started - handed);
        appendedAt.delete(e.eventId);
        handedAt.delete(k);
      }
      if (measuring()) {
        applyMs.push(at - started);
        eventsPerTx.push(applied.length);
        partitionsPerTx.push(new Set(applied.map((e) => e.position.partition)).size);
      }
      return r;
    },
  };
  const projector = createProjector({ log: tapLog, db: lagDb, keys: keys(), name, attempts: 20 });
  onProjector(() => projector.stop());
  await projector.start();
  await projector.caughtUp({ timeoutMs: 60_000 });
  await sleep(1000); // the group has settled and the consumer is polling
  const lagConvs = Array.from({ length: 200 }, (_, k) => {
    const id = randomUUID();
    return { id, index: firstIndex + k, partition: partitionFor(id, PARTITIONS), seq: 0, key: null as Uint8Array | null };
  });
  if (seal) {
    const maker = keys();
    for (const c of lagConvs) c.key = await maker.create(c.id);
  }
  log(`projection lag: ${rate} events/s for ${seconds} s`);
  const lagLoadStart = loadNow();
  const TICK = 10;
  const perTick = rate * (TICK / 1000);
  let sent = 0;
  let owed = 0;
  let cursor = 0;
  const appendMsList: number[] = [];
  const inflight: Promise<unknown>[] = [];
  const tLag = now();
  let next = tLag;
  while (now() - tLag < seconds * 1000) {
    owed += perTick;
    const due: Array<{ c: (typeof lagConvs)[number]; e: EventEnvelope }> = [];
    while (owed >= 1) {
      const c = lagConvs[cursor++ % lagConvs.length]!;
      c.seq++;
      due.push({ c, e: envelopeAt(c, c.seq) });
      owed--;
    }
    const byPart = new Map<number, Array<(typeof due)[number]>>();
    for (const d of due) {
      const list = byPart.get(d.c.partition) ?? [];
      list.push(d);
      byPart.set(d.c.partition, list);
    }
    for (const [p, list] of byPart) {
      const t0 = now();
      for (const d of list) appendedAt.set(d.e.eventId, t0);
      inflight.push(loadLog.append(TOPICS.events, p, list.map((d) => encodeSealedEvent(d.e, d.c.key))).then(() => appendMsList.push(now() - t0)));
      sent += list.length;
    }
    next += TICK;
    await sleep(Math.max(0, next - now()));
  }
  await Promise.all(inflight);
  const offeredRate = sent / ((now() - tLag) / 1000);
  await projector.caughtUp({ timeoutMs: 120_000 });
  const lagLoadEnd = loadNow();
  await projector.stop();
  onProjector(null);
  if (appendedAt.size) log(`warning: ${appendedAt.size} events of the lag phase were not seen committed`);
  const r = {
    sent,
    offeredRate,
    lag: stats(lags),
    append: stats(appendMsList),
    delivery: stats(delivery),
    waiting: stats(waiting),
    tx: stats(applyMs),
    cycle: stats(cycleMs),
    logCycle: stats(logMs),
    transactions: applyMs.length,
    eventsPerTx: stats(eventsPerTx, 1),
    partitionsPerTx: stats(partitionsPerTx, 1),
    load: { start: lagLoadStart, end: lagLoadEnd },
  };
  log(`lag phase: ${sent} events offered at ${Math.round(offeredRate)} events/s, load ${r.load.start} → ${r.load.end}`);
  const line = (what: string, x: { p50: number; p95: number; p99: number; max: number }) => log(`  ${what.padEnd(40)} p50 ${x.p50} / p95 ${x.p95} / p99 ${x.p99} / max ${x.max}`);
  line('lag (append → COMMIT), ms', r.lag);
  line('append acknowledged, ms', r.append);
  line('append → handed to the projector, ms', r.delivery);
  line('handed → transaction begins, ms', r.waiting);
  line('transaction, ms', r.tx);
  line('between deliveries, ms', r.cycle);
  line('  of which handled → next delivery, ms', r.logCycle);
  line(`events per transaction (${r.transactions})`, r.eventsPerTx);
  line('partitions per transaction', r.partitionsPerTx);
  return r;
}

