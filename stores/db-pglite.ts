import { PGlite } from '@electric-sql/pglite';
import type { Db, Query } from './sql.ts';

export type PGliteDbOptions = {
  /** Data directory; null or undefined keeps the database in memory. */
  dir?: string | null;
};

/** The embedded read-model database: Postgres compiled to WASM, in process. */
export function createPGliteDb(options: PGliteDbOptions = {}): Db {
  const pg = options.dir ? new PGlite(options.dir) : new PGlite();
  const on = (h: { query: PGlite['query']; exec: PGlite['exec'] }): Query => ({
    async query<T>(text: string, params?: unknown[]) {
      return (await h.query<T>(text, params as unknown[] | undefined)).rows;
    },
    async exec(script: string) {
      await h.exec(script);
    },
  });
  const top = on(pg);
  return {
    kind: 'pglite',
    ...top,
    // PGlite has one connection: a transaction holds it, other queries wait their turn.
    tx: (fn) => pg.transaction((t) => fn(on(t as unknown as PGlite))),
    async ping() {
      await pg.query('SELECT 1');
    },
    async close() {
      if (!pg.closed) await pg.close();
    },
  };
}
