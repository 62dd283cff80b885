// A projector in a process of its own (`gemello projections`) while its connections to
// Postgres are cut again and again under traffic (a TCP proxy in front of the shared server):
// it stays up and the projection catches up. Before, the `postgres` package wrote a
// transaction's ROLLBACK to a connection without a socket and threw past us: the process died
// at the first or second cut (4 of 4 runs at load 6-9), and the projection stopped for good.
// Its rows go by COPY here (a connection lost during one escaped the package too).
import { randomUUID } from 'node:crypto';
import { getPriority } from 'node:os';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kafkaLog } from '../support/kafka.ts';
import type { EventLog } from '../../log/port.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import type { Db } from '../../stores/sql.ts';
import { DATABASE_URL, KAFKA_BROKERS } from '../support/env.ts';
import { pgProxy } from '../support/pg-proxy.ts';
import { startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { appendEvents, backlog, expectRowsMatchLog, waitCaughtUp } from '../support/readmodel.ts';
import { testKeyStore } from '../support/keys.ts';

const PARTITIONS = 4;
const CUTS = 12;
const id8 = randomUUID().slice(0, 8);
const namespace = `pgc${id8}.`;
const schema = `pgc_${id8}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let proxy: Awaited<ReturnType<typeof pgProxy>>;
let log: EventLog;
let db: Db;
let projector: Gemello;

beforeAll(async () => {
  proxy = await pgProxy(new URL(DATABASE_URL));
  // The test reads Postgres directly, not through the proxy.
  db = createPostgresDb({ url: DATABASE_URL, schema });
  log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
  projector = await startGemello(['projections'], {
    KAFKA_BROKERS: KAFKA_BROKERS.join(','), DATABASE_URL: proxy.url, DATABASE_SCHEMA: schema, GEMELLO_NAMESPACE: namespace, GEMELLO_PARTITIONS: String(PARTITIONS),
    // Every transaction's rows by COPY (the catch-up's way; the traffic's batches are small), so the cuts come during COPYs too.
    GEMELLO_PROJECTION_COPY_ROWS: '1',
  });
}, 120_000);

afterAll(async () => {
  await projector?.kill('SIGKILL');
  await log?.close();
  await db?.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await db?.close();
  await proxy?.close();
});

it('a process that only projects lowers its CPU priority (GEMELLO_PROJECTIONS_NICE, 10 by default), so the prompt path goes first', () => {
  expect(getPriority(projector.child.pid!)).toBe(10);
});

it('connections cut again and again under traffic: the projector stays up and catches up', async () => {
  let stop = false;
  let appended = 0;
  const traffic = (async () => {
    for (let i = 0; !stop && i < 5_000; i++) {
      const events = backlog(20, 3, `cut${i}`);
      await appendEvents(log, events);
      appended += events.length;
      await sleep(5);
    }
  })();
  // Every other one a cut with the proxy still listening (reconnects at once), the others a
  // short outage (reconnects refused for a while), at moments the transactions do not choose.
  for (let c = 0; c < CUTS && projector.child.exitCode === null; c++) {
    await sleep(150 + 97 * (c % 5));
    if (c % 2 === 0) proxy.cut();
    else {
      await proxy.down();
      await sleep(200 + 150 * (c % 4));
      await proxy.up();
    }
  }
  await sleep(500);
  stop = true;
  await traffic;
  const died = projector.child.exitCode !== null ? `the projector exited (${projector.child.exitCode}):\n${projector.output().slice(-3000)}` : '';
  expect(died).toBe('');
  expect(appended).toBeGreaterThan(0);
  await waitCaughtUp(db, log, 45_000).catch((err: Error) => {
    throw new Error(`${err.message}\nthe projector's log:\n${projector.output().slice(-4000)}`);
  });
  await expectRowsMatchLog(db, log, testKeyStore(log, db));
}, 180_000);
