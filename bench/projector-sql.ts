// Where PostgreSQL's CPU goes in the projector's catch-up transactions, statement by statement:
// `npm run bench -- projector-sql`. BENCH_CONVERSATIONS (2000) × BENCH_EVENTS (50) synthetic
// events (in the clear: the server's work is the same) on 12 partitions, applied by
// applyBatches in transactions of up to BENCH_TX_EVENTS (5000) records of several partitions,
// as the projector catching up makes them, on one connection. Each statement is sent alone
// (the projector pipelines them) and timed by its backend's CPU (/proc/<pid>/schedstat, ns).
// No Kafka, no decoding: the figure is the server's, steadier under load than a whole run's.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createPostgresDb } from '../stores/db-postgres.ts';
import { migrate } from '../projections/migrate.ts';
import { applyBatches } from '../projections/apply.ts';
import type { PartitionBatch } from '../projections/apply.ts';
import { encodeSealedEvent } from '../events/codec.ts';
import { partitionFor } from '../log/partition.ts';
import type { LogRecord } from '../log/port.ts';
import type { Query } from '../stores/sql.ts';
import { DATABASE_URL } from '../test/support/env.ts';
import { envelopeAt } from './synthetic.ts';
import { CONVERSATIONS, EVENTS, logger, PARTITIONS } from './data-fixture.ts';
import { loadNow } from './report.ts';

const log = logger('projector-sql');
const TX_EVENTS = Number(process.env.BENCH_TX_EVENTS ?? 5_000);
/** A partition's records a transaction takes at most (a delivery of 2 MB holds ≈ 3,000). */
const PER_PARTITION = 2_500;

export async function run(): Promise<void> {
  const schema = `bench_sql_${randomUUID().slice(0, 8)}`;
  const db = createPostgresDb({ url: DATABASE_URL, schema, max: 1, applicationName: schema });
  try {
    await migrate(db);
    const pid = Number((await db.query<{ p: number }>('SELECT pg_backend_pid() AS p'))[0]!.p);
    const cpuNs = () => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    const parts: LogRecord[][] = Array.from({ length: PARTITIONS }, () => []);
    const convs = Array.from({ length: CONVERSATIONS }, (_, index) => ({ id: randomUUID(), index }));
    for (let seq = 1; seq <= EVENTS; seq++) {
      for (const c of convs) {
        const p = partitionFor(c.id, PARTITIONS);
        parts[p]!.push({ ...encodeSealedEvent(envelopeAt(c, seq), null), topic: 'events', partition: p, offset: parts[p]!.length, timestamp: Date.now() });
      }
    }
    const cost = new Map<string, { n: number; ns: number }>();
    const add = (k: string, ns: number) => {
      const c = cost.get(k) ?? { n: 0, ns: 0 };
      c.n++;
      c.ns += ns;
      cost.set(k, c);
    };
    const label = (text: string) => text.trim().split(/\s+/).slice(0, 3).join(' ');
    let chain: Promise<unknown> = Promise.resolve();
    /** The statements' CPU in the transaction under way. */
    let inTx = 0;
    /** One statement at a time, its backend CPU counted under its first words. */
    const alone = <T>(text: string, send: () => Promise<T>): Promise<T> => {
      const p = chain.then(async () => {
        const a = cpuNs();
        try {
          return await send();
        } finally {
          const ns = cpuNs() - a;
          inTx += ns;
          add(label(text), ns);
        }
      });
      chain = p.catch(() => {});
      return p;
    };
    const load0 = loadNow();
    const all0 = cpuNs();
    const at = parts.map(() => 0);
    let total = 0;
    let txs = 0;
    for (;;) {
      const batches: PartitionBatch[] = [];
      let size = 0;
      for (let p = 0; p < PARTITIONS && size < TX_EVENTS; p++) {
        if (at[p]! >= parts[p]!.length) continue;
        const records = parts[p]!.slice(at[p]!, at[p]! + Math.min(PER_PARTITION, TX_EVENTS - size));
        at[p]! += records.length;
        size += records.length;
        batches.push({ partition: p, records });
      }
      if (!batches.length) break;
      inTx = 0;
      const t0 = cpuNs();
      await db.tx(async (q) => {
        const timed: Query = {
          query: <T>(text: string, params?: unknown[]) => alone(text, () => q.query<T>(text, params)),
          exec: (script) => q.exec(script),
          copyIn: (text, data) => alone(text, () => q.copyIn!(text, data)),
        };
        await applyBatches(timed, 'readmodel', batches, { lazyCommit: true, copyRows: 200 });
      });
      add('BEGIN, COMMIT and the rest', cpuNs() - t0 - inTx);
      total += size;
      txs++;
    }
    const us = (ns: number) => (ns / 1000 / total).toFixed(2).padStart(6);
    log(`${total.toLocaleString('en-US')} events in ${txs} transactions: ${us(cpuNs() - all0)} µs an event of the backend's CPU (load ${load0} → ${loadNow()})`);
    for (const [k, c] of [...cost].sort((a, b) => b[1].ns - a[1].ns)) log(`  ${us(c.ns)} µs an event  ${k} (${c.n}×)`);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.close();
  }
}
