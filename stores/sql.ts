/** Runs SQL with `$1`-style parameters; the same text works on Postgres and PGlite. */
export type Query = {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements (no parameters), as migrations need. */
  exec(script: string): Promise<void>;
  /**
   * Rows for a `COPY <table> (<columns>) FROM STDIN` statement, `data` in COPY's text format
   * (projections/copy-rows.ts). Only in a transaction on PostgreSQL; absent on PGlite.
   */
  copyIn?(statement: string, data: string): Promise<void>;
};

/** The read models' database: real Postgres, or PGlite when embedded. */
export type Db = Query & {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  tx<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  /** Resolves when the database answers; rejects with the reason otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
};
