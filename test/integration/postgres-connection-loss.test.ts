// Connections to Postgres cut (Postgres restarting, a proxy or the network dropping them) in
// a transaction or at the end of their startup: on the real server through a TCP proxy that
// cuts at a chosen moment. What was under way fails, nothing is thrown past it (an uncaught
// error kills a gemello process: the projector of readmodel-faults stopped for good), the
// pool serves the next statements.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import type { Db } from '../../stores/sql.ts';
import { DATABASE_URL } from '../support/env.ts';
import { pgProxy } from '../support/pg-proxy.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const schema = `pgloss_${randomUUID().slice(0, 8)}`;
let proxy: Awaited<ReturnType<typeof pgProxy>>;
let db: Db;
let direct: Db;
/** What reached process.on('uncaughtException' / 'unhandledRejection') during a test: either kills a gemello process. */
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => void uncaught.push(err);

beforeAll(async () => {
  proxy = await pgProxy(new URL(DATABASE_URL));
  direct = createPostgresDb({ url: DATABASE_URL, schema });
  await direct.exec('CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, n int NOT NULL)');
});
afterAll(async () => {
  await direct?.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await direct?.close();
  await proxy?.close();
});
beforeEach(async () => {
  uncaught.length = 0;
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  db = createPostgresDb({ url: proxy.url, schema, max: 2, applicationName: schema });
  await db.query('SELECT 1');
});
afterEach(async () => {
  await db.close();
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
});

/** After a cut: the pool answers again (within 5 s), statements and transactions both. */
async function servesAgain() {
  for (const end = Date.now() + 5_000; ; await sleep(50)) {
    try {
      await db.query('SELECT 1');
      break;
    } catch (err) {
      if (Date.now() > end) throw err;
    }
  }
  // Both connections of the pool, side by side, a few rounds: none is left unusable.
  for (let i = 0; i < 3; i++) {
    await Promise.all([db.tx((q) => q.query('SELECT pg_sleep(0.05)')), db.query('SELECT pg_sleep(0.05)')]);
  }
  expect(await db.tx(async (q) => (await q.query<{ n: number }>('SELECT 41 + 1 AS n'))[0]!.n)).toBe(42);
}

describe('a connection to Postgres cut', () => {
  it('in the middle of a statement: it fails, nothing is thrown past it, the pool serves again', async () => {
    const tx = db.tx(async (q) => {
      await q.query('INSERT INTO t (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1');
      setTimeout(() => proxy.cut(), 100);
      await q.query('SELECT pg_sleep(5)');
    });
    await expect(tx).rejects.toThrow();
    await sleep(200);
    expect(uncaught).toEqual([]);
    await servesAgain();
    expect(uncaught).toEqual([]);
    // Not committed: the server rolled it back when the connection went.
    expect(await direct.query('SELECT id, n FROM t WHERE id = 1')).toEqual([]);
  });

  it('between two statements: the next statement fails at once, nothing is thrown past it, the pool serves again', async () => {
    let second: unknown = null;
    let bodyDone!: () => void;
    const body = new Promise<void>((r) => (bodyDone = r));
    const tx = db.tx(async (q) => {
      try {
        await q.query('SELECT 1');
        proxy.cut();
        await sleep(300);
        await q.query('SELECT 2').catch((err) => {
          second = err;
          throw err;
        });
      } finally {
        bodyDone();
      }
    });
    await expect(tx).rejects.toThrow();
    // The transaction's own code goes on after the cut, and its next statement is settled.
    await Promise.race([body, sleep(3_000)]);
    await sleep(200);
    expect(second).toBeInstanceOf(Error);
    expect(uncaught).toEqual([]);
    await servesAgain();
    expect(uncaught).toEqual([]);
  });

  it('right after its startup: nothing is thrown past the statement (done again on a new connection or failed), the pool serves again', async () => {
    // A fresh pool: its connections start with this statement.
    await db.close();
    db = createPostgresDb({ url: proxy.url, schema, max: 2, applicationName: schema });
    // Cut at the end of the startup, then refused for a while: the reconnect fails.
    proxy.cutAfterStartup(1, { down: true });
    const first = db.query('SELECT 1').catch(() => {});
    await sleep(500);
    await proxy.up();
    await first;
    await sleep(200);
    expect(uncaught).toEqual([]);
    await servesAgain();
    expect(uncaught).toEqual([]);
  });
});

// COPY … FROM STDIN (the projector's catch-up rows, stores/postgres-copy.ts): the package's
// copy stream wrote to the socket after it was gone (thrown past us: the process died) and
// heard nothing of a loss, or of the server's error, once its last row was sent (it waited
// for good). Cut at each moment of a COPY, it fails and nothing is left of it.
describe('a connection to Postgres cut during a COPY', () => {
  // ≈ 2.6 MB: more than the sockets' buffers hold, so the rows are still on their way when a cut comes then.
  const ROWS = 200_000;
  const rows = Array.from({ length: ROWS }, (_, i) => `${100 + i}\t${i % 1000}\n`).join('');
  const has = (bytes: number[] | string) => (chunk: Buffer) => chunk.includes(Buffer.from(bytes as never));
  const moments: [string, 'client' | 'server', (chunk: Buffer) => boolean, boolean][] = [
    ['as the server asks for the rows', 'server', (chunk) => chunk[0] === 0x47, false], // CopyInResponse
    ['right after the server asked for the rows', 'server', (chunk) => chunk[0] === 0x47, true],
    ['while the rows are on their way', 'client', (chunk) => chunk[0] === 0x64, false], // CopyData
    ['after the last row, before the server answers', 'client', has([0x63, 0, 0, 0, 4]), true], // CopyDone
    ['as the server says the rows are in', 'server', has('COPY '), false], // CommandComplete
    ['right after the server said the rows are in', 'server', has('COPY '), true],
  ];
  for (const [moment, from, match, forward] of moments) {
    it(`${moment}: it fails, nothing is thrown past it, nothing of it is committed, the pool serves again`, async () => {
      const cut = proxy.cutOn(from, match, { forward });
      const tx = db.tx(async (q) => {
        await q.copyIn!('COPY t (id, n) FROM STDIN', rows);
        await q.query('SELECT 1');
      });
      await expect(tx).rejects.toThrow();
      await cut;
      await sleep(200);
      expect(uncaught).toEqual([]);
      await servesAgain();
      expect(uncaught).toEqual([]);
      expect(await direct.query('SELECT count(*)::int AS n FROM t WHERE id >= 100')).toEqual([{ n: 0 }]);
    });
  }

  it('refused by the server after its last row (a duplicate key): it fails with the server\'s error at once, the pool serves again', async () => {
    const tx = db.tx((q) => q.copyIn!('COPY t (id, n) FROM STDIN', `${rows}${100 + ROWS - 1}\t0\n`));
    await expect(tx).rejects.toMatchObject({ name: 'PostgresError' });
    expect(uncaught).toEqual([]);
    await servesAgain();
    expect(await direct.query('SELECT count(*)::int AS n FROM t WHERE id >= 100')).toEqual([{ n: 0 }]);
  });

  it('not cut: the rows are committed', async () => {
    await db.tx((q) => q.copyIn!('COPY t (id, n) FROM STDIN', rows));
    expect(await direct.query('SELECT count(*)::int AS n, sum(n)::int AS s FROM t WHERE id >= 100')).toEqual([{ n: ROWS, s: (ROWS / 1000) * 499_500 }]);
    await direct.query('DELETE FROM t WHERE id >= 100');
  });
});
