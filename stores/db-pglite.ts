import { existsSync, readdirSync, rmSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { blankClusterFile, forgetBlankCluster, keepBlankCluster, readBlankCluster } from './pglite-blank.ts';
import type { Db, Query } from './sql.ts';

export type PGliteDbOptions = {
  /** Data directory; null or undefined keeps the database in memory. */
  dir?: string | null;
  /** Where the blank cluster a new database starts from is kept (stores/pglite-blank.ts); null: none, initdb every time. */
  blankCluster?: string | null;
};

/** A directory PGlite would make a cluster in: none there yet, or an empty one. */
const isNew = (dir: string) => !existsSync(dir) || readdirSync(dir).length === 0;

/** The embedded read-model database: Postgres compiled to WASM, in process. */
export function createPGliteDb(options: PGliteDbOptions = {}): Db {
  const dir = options.dir ?? null;
  const file = options.blankCluster === undefined ? blankClusterFile() : options.blankCluster;
  const fresh = dir === null || isNew(dir);
  const blank = fresh ? readBlankCluster(file) : undefined;
  const open = (from: Blob | undefined) => {
    const o = from ? { loadDataDir: from } : {};
    return dir ? new PGlite(dir, o) : new PGlite(o);
  };
  let from = blank;
  let pg = open(from);
  // Nothing runs on the cluster before it is ready and, when it was just made by initdb, kept as the blank one.
  const ready = (async () => {
    try {
      await pg.waitReady;
    } catch (err) {
      if (!from) throw err;
      // A kept blank cluster that does not load: forgotten, and this one made by initdb instead.
      forgetBlankCluster(file);
      await pg.close().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
      pg = open((from = undefined));
      await pg.waitReady;
    }
    if (fresh && !from) await keepBlankCluster(pg, file);
  })();
  ready.catch(() => {}); // heard by the first query
  const on = (h: () => { query: PGlite['query']; exec: PGlite['exec'] }): Query => ({
    async query<T>(text: string, params?: unknown[]) {
      await ready;
      return (await h().query<T>(text, params as unknown[] | undefined)).rows;
    },
    async exec(script: string) {
      await ready;
      await h().exec(script);
    },
  });
  return {
    kind: 'pglite',
    ...on(() => pg),
    // PGlite has one connection: a transaction holds it, other queries wait their turn.
    async tx(fn) {
      await ready;
      return pg.transaction((t) => fn(on(() => t as unknown as PGlite)));
    },
    async ping() {
      await ready;
      await pg.query('SELECT 1');
    },
    async close() {
      await ready.catch(() => {});
      if (!pg.closed) await pg.close();
    },
  };
}
