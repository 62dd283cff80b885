import { KeyDestroyed } from './keys.ts';
import type { KeyStore } from './keys.ts';
import { newDataKey } from './seal.ts';
import type { Db } from '../stores/sql.ts';

export type DbKeyStoreOptions = {
  /** How long a key is trusted from the cache before it is read again (another process may destroy it). */
  maxAgeMs?: number;
  /** Keys kept in memory at most (the oldest go first). */
  maxEntries?: number;
};

const SELECT = `
SELECT conversation_id, key FROM conversation_keys
WHERE conversation_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))`;

// DO NOTHING, not DO UPDATE: an update would leave one more copy of the key in a dead row.
const INSERT = `
INSERT INTO conversation_keys (conversation_id, key) VALUES ($1, $2::bytea)
ON CONFLICT (conversation_id) DO NOTHING
RETURNING key`;

// A conversation that never had a key gets a tombstone, so none is made for it later.
const DESTROY = `
INSERT INTO conversation_keys (conversation_id, key, destroyed_at) VALUES ($1, NULL, now())
ON CONFLICT (conversation_id) DO UPDATE SET key = NULL, destroyed_at = now() WHERE conversation_keys.key IS NOT NULL
RETURNING conversation_id`;

const bytes = (v: unknown): Uint8Array | null => (v == null ? null : new Uint8Array(v as Uint8Array));

/**
 * The data keys in the read-model database (Postgres, or PGlite embedded), table
 * `conversation_keys`, with a cache: a resident conversation's key costs no query.
 */
export function createDbKeyStore(db: Db, options: DbKeyStoreOptions = {}): KeyStore {
  const maxAgeMs = options.maxAgeMs ?? 5 * 60_000;
  const maxEntries = options.maxEntries ?? 50_000;
  /** null: destroyed (for good). Conversations without a row are not cached: their key may come. */
  const cache = new Map<string, { key: Uint8Array | null; at: number }>();

  const remember = (id: string, key: Uint8Array | null) => {
    cache.delete(id);
    cache.set(id, { key, at: Date.now() });
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  };

  return {
    async get(ids) {
      const out = new Map<string, Uint8Array>();
      const missing: string[] = [];
      const now = Date.now();
      for (const id of ids) {
        const c = cache.get(id);
        if (c && (c.key === null || now - c.at < maxAgeMs)) {
          if (c.key) out.set(id, c.key);
        } else missing.push(id);
      }
      if (!missing.length) return out;
      const rows = await db.query<{ conversation_id: string; key: unknown }>(SELECT, [JSON.stringify(missing)]);
      for (const row of rows) {
        const key = bytes(row.key);
        remember(row.conversation_id, key);
        if (key) out.set(row.conversation_id, key);
      }
      return out;
    },
    async create(id) {
      const c = cache.get(id);
      if (c?.key === null) throw new KeyDestroyed(`conversation ${id} was erased`);
      if (c) return c.key!;
      const [made] = await db.query<{ key: unknown }>(INSERT, [id, newDataKey()]);
      let key = bytes(made?.key);
      if (!made) {
        // Another process made it first (or it was destroyed): use what is stored.
        const [row] = await db.query<{ conversation_id: string; key: unknown }>(SELECT, [JSON.stringify([id])]);
        key = bytes(row?.key);
      }
      remember(id, key);
      if (!key) throw new KeyDestroyed(`conversation ${id} was erased`);
      return key;
    },
    async destroy(id) {
      const rows = await db.query(DESTROY, [id]);
      remember(id, null);
      return rows.length > 0;
    },
    forget(id) {
      remember(id, null);
    },
  };
}
