// The retention sweep (gateway/retention.ts) on both read-model databases: one gateway of a
// deployment sweeps at a time, and a sweep that waits for actor hosts keeps no transaction open
// meanwhile (it once held one for the whole sweep: a pooled connection "idle in transaction"
// for minutes, so with a small pool the gateway's other queries waited behind it).
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandClient } from '../../actors/command-client.ts';
import type { ClientCommand } from '../../actors/commands.ts';
import { createRetention } from '../../gateway/retention.ts';
import { migrate } from '../../projections/migrate.ts';
import { createPGliteDb } from '../../stores/db-pglite.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import type { Db } from '../../stores/sql.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { DATABASE_URL } from '../support/env.ts';
import { until } from '../support/until.ts';

const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
const schema = `retention_${randomUUID().replaceAll('-', '')}`;
const app = `gemello-retention-test-${randomUUID().slice(0, 8)}`;
afterAll(async () => {
  await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const homes: { name: string; open(): Db; idleInTransaction?(): Promise<number> }[] = [
  { name: 'PGlite', open: () => createPGliteDb() },
  {
    name: 'PostgreSQL with a pool of one connection',
    open: () => createPostgresDb({ url: DATABASE_URL, schema, max: 1, applicationName: app }),
    async idleInTransaction() {
      const [row] = await admin.unsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'`, [app]);
      return row!.n;
    },
  },
];

/** Actor hosts that answer every erasure once `open()` is called, counting what they were asked. */
function actorHosts() {
  const asked: string[] = [];
  let open = () => {};
  const gate = new Promise<void>((r) => (open = r));
  const commands = {
    async ask(cmd: ClientCommand) {
      asked.push(cmd.conversationId);
      await gate;
      return { type: 'erased', commandId: cmd.commandId, conversationId: cmd.conversationId };
    },
  } as unknown as CommandClient;
  return { asked, open, commands };
}

for (const home of homes) {
  describe(`the retention sweep on ${home.name}`, () => {
    it('keeps no transaction open while it waits for actor hosts, and another gateway skips until it is done', async () => {
      const db = home.open();
      try {
        await migrate(db);
        await db.query(`INSERT INTO conversations (id, state, last_seq, last_partition, last_offset, last_event_at) VALUES ('old', '{}', 3, 0, 0, now() - interval '10 days')`);
        const hosts = actorHosts();
        const retention = (name: string) => createRetention({ days: 1, db, commands: hosts.commands, metrics: createMetrics(), logger: createLogger(name, true) });
        const first = retention('first');
        const sweeping = first.sweep();
        await until('the erasure sent', () => hosts.asked.length === 1);

        // While the sweep waits for the actor host: no connection sits in a transaction, and the
        // pool's one connection serves the gateway's other queries.
        if (home.idleInTransaction) expect(await home.idleInTransaction()).toBe(0);
        expect(await db.query<{ n: number }>('SELECT count(*)::int AS n FROM conversations')).toEqual([{ n: 1 }]);
        // Another gateway's sweep meanwhile skips: the first holds the lease.
        expect(await retention('second').sweep()).toMatchObject({ skipped: true, found: 0 });

        hosts.open();
        expect(await sweeping).toMatchObject({ found: 1, erased: 1, failed: 0, pending: 0 });
        expect(hosts.asked).toEqual(['old']);
        // Done, the lease is given back: the next sweep (any gateway's) runs.
        expect(await retention('second').sweep()).toMatchObject({ found: 1, erased: 1 });
        // A sweeper that crashed holding the lease holds it only until it runs out.
        await db.query(`INSERT INTO retention_lease (id, holder, until) VALUES (1, 'a crashed gateway', now() + interval '1 hour')`);
        expect(await retention('third').sweep()).toMatchObject({ skipped: true });
        await db.query(`UPDATE retention_lease SET until = now() - interval '1 second'`);
        expect(await retention('third').sweep()).toMatchObject({ found: 1, erased: 1 });
      } finally {
        await db.close();
      }
    });
  });
}
