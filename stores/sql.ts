/** Runs SQL with `$1`-style parameters; the same text works on Postgres and PGlite. */
export type Query = {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements (no parameters), as migrations need. */
  exec(script: string): Promise<void>;
  /**
   * Rows for a `COPY <table> (<columns>) FROM STDIN` statement, `data` in COPY's text format
   * (projections/copy-rows.ts; as text, or as its UTF-8 bytes). Only in a transaction on
   * PostgreSQL; absent on PGlite.
   */
  copyIn?(statement: string, data: string | Uint8Array): Promise<void>;
};

/** The read models' database: real Postgres, or PGlite when embedded. */
export type Db = Query & {
  readonly kind: 'postgres' | 'pglite';
  /** The connections it has at most (PostgreSQL's pool; PGlite has one). */
  readonly connections?: number;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  tx<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  /** Resolves when the database answers; rejects with the reason otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
};

/**
 * Whether a database error says the database is away or coming back (a socket error, a
 * connection lost or timed out, a server shutting down or starting: SQLSTATE classes 08 and
 * 57), rather than something about the statement that asking again will not change.
 */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof (err as { severity?: unknown }).severity === 'string';
  if (sqlState) return code.startsWith('08') || code.startsWith('57');
  // The client's own: CONNECT_TIMEOUT, CONNECTION_CLOSED…, or a socket's (ECONNREFUSED, with its syscall).
  return typeof code === 'string' || typeof (err as { syscall?: unknown } | null)?.syscall === 'string';
}
