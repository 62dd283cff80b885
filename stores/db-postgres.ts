import postgres from 'postgres';
import type { Db, Query } from './sql.ts';
import { copyIn } from './postgres-copy.ts';

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
  /**
   * Whether a schema that does not exist is made (default) or is an error (SchemaMissing): a
   * command that only looks must not make a mistyped one. A function is asked once, when the
   * schema is found missing.
   */
  createSchema?: boolean | (() => Promise<boolean>);
};

/** The read models' schema is not there, and this connection may not make it. */
export class SchemaMissing extends Error {
  readonly code = 'schema_missing';
}

const IDENT = /^[a-z_][a-z0-9_]*$/i;
/** How long a transaction whose statement failed with its connection waits for begin() to reject with the loss. */
const LOST_WAIT_MS = 10_000;

/** A statement failed because the connection is gone: a socket error or the package's CONNECTION_* (not a server's error). */
function isConnectionLoss(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof postgres.PostgresError) return false;
  const e = err as Error & { code?: unknown; syscall?: unknown };
  return (typeof e.code === 'string' && e.code.startsWith('CONNECTION_')) || typeof e.syscall === 'string';
}

function connectionLost(cause: unknown): Error {
  return Object.assign(new Error('the transaction\'s connection was lost', { cause: cause ?? undefined }), { code: 'CONNECTION_CLOSED' });
}

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
    // No query of the package's own at each connect to learn the array types (no statement
    // here passes or reads an array: lists go as JSON text). Should that connection be cut
    // while it runs and the reconnect be refused, its rejection was unhandled (postgres
    // 3.4.9): it killed the process.
    fetch_types: false,
    // Offsets and counts are bigint columns: read them as numbers, like PGlite does.
    types: { int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
    connection: { ...(schema ? { search_path: schema } : {}), ...(options.applicationName ? { application_name: options.applicationName } : {}) },
  });
  // Every statement waits for the schema, so the first CREATE TABLE has somewhere to go.
  let ready: Promise<void> | null = null;
  const prepared = () => {
    const make = async () => {
      if (!schema) return;
      const create = options.createSchema ?? true;
      if (create === true) return void (await sql.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`));
      const [found] = await sql.unsafe('SELECT 1 AS one FROM pg_namespace WHERE nspname = $1', [schema]);
      if (found) return;
      if (create !== false && (await create())) return void (await sql.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`));
      throw new SchemaMissing(`there is no schema ${schema} (DATABASE_SCHEMA) in this database: nothing was ever projected there; check DATABASE_SCHEMA (npm start or gemello migrate makes it)`);
    };
    ready ??= make().catch((err) => {
      // Two processes creating it at once: IF NOT EXISTS does not cover the race, the loser
      // gets a unique violation on pg_namespace (or duplicate_schema). It exists: fine.
      if (err instanceof postgres.PostgresError && (err.code === '23505' || err.code === '42P06')) return;
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
    connections: options.max ?? 10,
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
      // The connection lost while the transaction runs (Postgres restarting, a proxy or the
      // network cutting it): the package's begin() rejects with the close, but whatever the
      // transaction sends after that goes to the connection object that no longer has a
      // socket. Its own ROLLBACK (after `fn` rejects) threw TypeError "Cannot read properties
      // of null (reading 'write')" from a setImmediate, uncaught: it killed the projector
      // process (postgres 3.4.9). A statement of `fn` sent after the loss never settled.
      // So once the connection is gone, `fn`'s statements fail without being sent, and its
      // failure is not handed back to begin() (no ROLLBACK: the server ends a transaction
      // whose connection closed); begin() has rejected with the loss already.
      let over = false;
      let lost: unknown = null;
      const body = (t: postgres.Sql): Promise<unknown> => {
        const inner = on(t);
        /** A statement of `fn`: refused unsent once the connection is gone; a loss it meets is remembered. */
        const guarded = async <R>(send: () => Promise<R>): Promise<R> => {
          if (over || lost) throw connectionLost(lost);
          try {
            return await send();
          } catch (err) {
            if (isConnectionLoss(err)) lost ??= err;
            throw err;
          }
        };
        const q: Query = {
          query: <T>(text: string, params?: unknown[]) => guarded(() => inner.query<T>(text, params)),
          exec: (script: string) => guarded(() => inner.exec(script)),
          copyIn: (statement: string, data: string | Uint8Array) => guarded(() => copyIn(t, statement, data, ended, connectionLost)),
        };
        return fn(q).catch((err) => {
          if (!over && !lost) throw err;
          // Settled only should the connection turn out to be alive (begin() has not
          // rejected within LOST_WAIT_MS): then the ROLLBACK has a socket to go to.
          return new Promise((_, reject) => {
            const timer = setTimeout(() => (over ? undefined : reject(err)), LOST_WAIT_MS);
            const clear = () => clearTimeout(timer);
            ended.then(clear, clear);
          });
        });
      };
      const ended = sql.begin((t) => body(t as unknown as postgres.Sql)).finally(() => {
        over = true;
      });
      return (await ended) as Awaited<ReturnType<typeof fn>>;
    },
    async ping() {
      await sql`SELECT 1`;
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}
