import { readdir, readFile } from 'node:fs/promises';
import type { Db } from '../stores/sql.ts';
import { grantAnalysts } from './analyst-role.ts';

const FILE = /^(\d+)_[a-z0-9_]+\.sql$/;
// Any constant: it only has to be the same for every process migrating this database.
const LOCK_KEY = 4_173_602_001;

export type Migration = { version: string; name: string; sql: string };

/** The numbered `.sql` files of a folder (projections/migrations by default), in order. */
export async function loadMigrations(dir: URL | string = new URL('./migrations/', import.meta.url)): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => FILE.test(n));
  const out: Migration[] = [];
  for (const name of names) {
    const base = typeof dir === 'string' ? `${dir.replace(/\/$/, '')}/${name}` : new URL(name, dir);
    out.push({ version: FILE.exec(name)![1]!, name, sql: await readFile(base, 'utf8') });
  }
  out.sort((a, b) => Number(a.version) - Number(b.version));
  for (let i = 1; i < out.length; i++) {
    if (Number(out[i]!.version) === Number(out[i - 1]!.version)) throw new Error(`migrations ${out[i - 1]!.name} and ${out[i]!.name} share a number`);
  }
  return out;
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order, and returns
 * the names applied (none when the database is current). All of them run in one
 * transaction under an advisory lock, so two processes starting together apply each once.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const list = migrations ?? (await loadMigrations());
  return db.tx(async (q) => {
    await q.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await q.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    TEXT PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
    const done = new Set((await q.query<{ version: string }>('SELECT version FROM schema_migrations')).map((r) => r.version));
    const applied: string[] = [];
    for (const m of list) {
      if (done.has(m.version)) continue;
      await q.exec(m.sql);
      await q.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.name);
    }
    if (applied.length) await grantAnalysts(q, db.kind);
    return applied;
  });
}

/**
 * What `migrate` would apply to this database: the migrations not recorded yet, and how many
 * are (0: a read model nothing was ever migrated into). Changes nothing.
 */
export async function pendingMigrations(db: Db, migrations?: Migration[]): Promise<{ applied: number; pending: string[] }> {
  const list = migrations ?? (await loadMigrations());
  const [table] = await db.query<{ found: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS found`);
  if (!table?.found) return { applied: 0, pending: list.map((m) => m.name) };
  const done = new Set((await db.query<{ version: string }>('SELECT version FROM schema_migrations')).map((r) => r.version));
  return { applied: done.size, pending: list.filter((m) => !done.has(m.version)).map((m) => m.name) };
}
