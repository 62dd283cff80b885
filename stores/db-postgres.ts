import postgres from 'postgres';
import type { Db, Query } from './sql.ts';

export type PostgresDbOptions = {
  url: string;
  /** Use (and create if missing) this schema instead of the default search path, so runs can be isolated. */
  schema?: string;
  /** Pool size. */
  max?: number;
  /** Seconds to wait for a connection; short, so a caller retrying through an outage is not stuck in one attempt. */
  connectTimeout?: number;
  /** The connections' application_name (pg_stat_activity shows it); the package's default otherwise. */
  applicationName?: string;
};

const IDENT = /^[a-z_][a-z0-9_]*$/i;

/** The read-model database on a real Postgres server, through the `postgres` package. */
export function createPostgresDb(options: PostgresDbOptions): Db {
  const { schema } = options;
  if (schema !== undefined && !IDENT.test(schema)) throw new Error(`schema name ${JSON.stringify(schema)} must be a plain identifier`);
  const sql = postgres(options.url, {
    max: options.max ?? 10,
    onnotice: () => {},
    connect_timeout: options.connectTimeout ?? 5,
    // The package's default waits up to 20 s between reconnects once a few have failed
    // (3^n/100 s, counted across the pool), so the read model stayed dark that long after
    // Postgres came back. Callers retry with their own backoff; reconnect within a second.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
    // Offsets and counts are bigint columns: read them as numbers, like PGlite does.
    types: { int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
    connection: { ...(schema ? { search_path: schema } : {}), ...(options.applicationName ? { application_name: options.applicationName } : {}) },
  });
  // Every statement waits for the schema, so the first CREATE TABLE has somewhere to go.
  let ready: Promise<void> | null = null;
  const prepared = () => {
    ready ??= (schema ? sql.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`).then(() => {}) : Promise.resolve()).catch((err) => {
      ready = null;
      throw err;
    });
    return ready;
  };
  const on = (s: postgres.Sql): Query => ({
    async query<T>(text: string, params?: unknown[]) {
      // Prepared: the projector repeats a handful of statements thousands of times.
      return (await s.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as T[];
    },
    async exec(script: string) {
      await s.unsafe(script).simple();
    },
  });
  const top = on(sql);
  return {
    kind: 'postgres',
    async query<T>(text: string, params?: unknown[]) {
      await prepared();
      return top.query<T>(text, params);
    },
    async exec(script) {
      await prepared();
      await top.exec(script);
    },
    async tx(fn) {
      await prepared();
      return (await sql.begin((t) => fn(on(t as unknown as postgres.Sql)))) as Awaited<ReturnType<typeof fn>>;
    },
    async ping() {
      await sql`SELECT 1`;
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}
