// Processes that start together on a new schema (a gateway and a projector of one
// deployment) each create it: one of them lost the race inside Postgres (CREATE SCHEMA IF NOT
// EXISTS is not safe against a concurrent one) and did not start.
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import { DATABASE_URL } from '../support/env.ts';

const schemas: string[] = [];
const admin = createPostgresDb({ url: DATABASE_URL });
afterAll(async () => {
  for (const s of schemas) await admin.exec(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => {});
  await admin.close();
});

it('several clients creating the same new schema at once all get to use it', async () => {
  for (let round = 0; round < 10; round++) {
    const schema = `pgrace_${randomUUID().slice(0, 8)}`;
    schemas.push(schema);
    const dbs = Array.from({ length: 4 }, () => createPostgresDb({ url: DATABASE_URL, schema, max: 1 }));
    try {
      const results = await Promise.allSettled(dbs.map((db) => db.query<{ s: string }>('SELECT current_schema() AS s')));
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value[0]!.s : String(r.reason)))).toEqual(dbs.map(() => schema));
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  }
});
