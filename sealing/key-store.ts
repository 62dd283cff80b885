import { randomUUID } from 'node:crypto';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { partitionFor } from '../log/partition.ts';
import type { Db, Query } from '../stores/sql.ts';
import { decodeKeyRecord, encodeKeyRecord, unwrapKey, wrapKey } from './key-records.ts';
import type { KeyRecord } from './key-records.ts';
import { KeyDestroyed } from './keys.ts';
import type { KeyStore } from './keys.ts';
import type { MasterKey } from './master-key.ts';
import { MasterKeyError } from './master-key.ts';
import { newDataKey } from './seal.ts';
import type { Sealed } from './seal.ts';

export type LoggedKeyStoreOptions = {
  log: EventLog;
  /** The read-model database: its `conversation_keys` is a cache of the keys topic. */
  db: Db;
  master: MasterKey;
  /** How long a key is trusted from memory before it is read again (another process may destroy it). */
  maxAgeMs?: number;
  /** Keys kept in memory at most (the oldest go first). */
  maxEntries?: number;
};

/** What the keys topic and its cache table can do beyond the KeyStore port: fill the cache, move old keys in. */
export type LoggedKeyStore = KeyStore & {
  /** Copies the keys topic into `conversation_keys` from where the last copy stopped; returns the records read. */
  sync(progress?: (done: number) => void): Promise<number>;
  /** Moves plain keys of earlier versions into the topic (wrapped), then empties them; returns how many moved. */
  migrateLegacy(progress?: (done: number) => void): Promise<number>;
  /** The same store (and cache), reading its table through `q`: inside a transaction, on PGlite's one connection. */
  through(q: Query): KeyStore;
  /** Keys held in this process's memory, and their bound (for /metrics). */
  cached(): { entries: number; bound: number };
};

type Row = { conversation_id: string; wrapped: Sealed | null; kek: string | null; logged_at: unknown; destroyed_at: unknown };

const SELECT = `
SELECT conversation_id, wrapped, kek, logged_at, destroyed_at FROM conversation_keys
WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`;

// DO NOTHING: the first process to make a key wins; the others read and use it. Only a
// winner's key ever reaches the topic, so the topic never holds two keys for one conversation.
const INSERT = `
INSERT INTO conversation_keys (conversation_id, wrapped, kek) VALUES ($1, $2::text::jsonb, $3)
ON CONFLICT (conversation_id) DO NOTHING
RETURNING conversation_id`;

const MARK_LOGGED = `UPDATE conversation_keys SET logged_at = now() WHERE conversation_id = $1 AND logged_at IS NULL`;

// The first tombstone the cache learns of stays its `tombstone_id`, whoever writes it first:
// this statement after its own append, a key sync that read the same record, or one that
// read an earlier erasure's. The projection's mark (ConversationErased) sets destroyed_at only.
const DESTROY = `
INSERT INTO conversation_keys (conversation_id, destroyed_at, tombstone_id) VALUES ($1, now(), $2)
ON CONFLICT (conversation_id) DO UPDATE SET key = NULL, wrapped = NULL,
  destroyed_at = COALESCE(conversation_keys.destroyed_at, now()),
  tombstone_id = COALESCE(conversation_keys.tombstone_id, EXCLUDED.tombstone_id)
RETURNING tombstone_id`;

// The topic's last record of a conversation is its truth: a key replaces what the cache
// holds unless the cache knows it destroyed; a tombstone always wins (and names itself in
// a row the projection marked destroyed before any tombstone reached it).
const UPSERT_FROM_LOG = `
INSERT INTO conversation_keys (conversation_id, wrapped, kek, logged_at, destroyed_at, tombstone_id)
SELECT x.id, CASE WHEN x.destroyed THEN NULL ELSE x.wrapped END, x.kek, now(), CASE WHEN x.destroyed THEN now() END, x.tombstone
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, wrapped jsonb, kek text, destroyed boolean, tombstone text)
ON CONFLICT (conversation_id) DO UPDATE SET
  key = NULL,
  wrapped = CASE WHEN conversation_keys.destroyed_at IS NOT NULL OR EXCLUDED.destroyed_at IS NOT NULL THEN NULL ELSE EXCLUDED.wrapped END,
  kek = CASE WHEN conversation_keys.destroyed_at IS NOT NULL THEN conversation_keys.kek ELSE EXCLUDED.kek END,
  logged_at = COALESCE(conversation_keys.logged_at, now()),
  destroyed_at = COALESCE(conversation_keys.destroyed_at, EXCLUDED.destroyed_at),
  tombstone_id = COALESCE(conversation_keys.tombstone_id, EXCLUDED.tombstone_id)
WHERE conversation_keys.destroyed_at IS NULL OR (conversation_keys.tombstone_id IS NULL AND EXCLUDED.tombstone_id IS NOT NULL)`;

const SAVE_SYNC = `
INSERT INTO key_sync (partition, next_offset) VALUES ($1, $2)
ON CONFLICT (partition) DO UPDATE SET next_offset = GREATEST(key_sync.next_offset, EXCLUDED.next_offset), updated_at = now()`;

const LEGACY = `SELECT conversation_id, key FROM conversation_keys WHERE key IS NOT NULL AND destroyed_at IS NULL ORDER BY conversation_id LIMIT 500`;
const LEGACY_DONE = `UPDATE conversation_keys SET key = NULL, wrapped = $2::text::jsonb, kek = $3, logged_at = now() WHERE conversation_id = $1 AND key IS NOT NULL`;

/**
 * The conversations' data keys with the log's durability: each key is appended, wrapped by
 * the master key, to the compacted topic `gemello.keys` before it is used, and erasure
 * appends a tombstone there. The database table and this process's memory are caches, so
 * dropping the read-model database loses nothing: `sync` brings the keys back.
 */
export function createLoggedKeyStore(options: LoggedKeyStoreOptions): LoggedKeyStore {
  const { log, db, master } = options;
  const maxAgeMs = options.maxAgeMs ?? 5 * 60_000;
  const maxEntries = options.maxEntries ?? 50_000;
  /** null: destroyed (for good). Conversations without a key are not cached: their key may come. */
  const cache = new Map<string, { key: Uint8Array | null; at: number }>();
  let topicReady: Promise<void> | null = null;

  const remember = (id: string, key: Uint8Array | null) => {
    cache.delete(id);
    cache.set(id, { key, at: Date.now() });
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  };
  const ensureTopic = () => (topicReady ??= log.ensureTopics([TOPICS.keys], { compacted: true }).catch((err) => {
    topicReady = null;
    throw err;
  }));
  const append = async (r: KeyRecord) => {
    await ensureTopic();
    await log.append(TOPICS.keys, partitionFor(r.conversationId, log.partitions), [encodeKeyRecord(r)]);
  };
  const unwrap = (id: string, wrapped: Sealed, kek: string | null): Uint8Array => {
    const key = unwrapKey(master, id, wrapped);
    if (!key) {
      throw new MasterKeyError(`the data key of conversation ${id} was wrapped by master key ${kek ?? '?'}, and this process has ${master.id} (${master.source}): every process of a deployment needs the same GEMELLO_MASTER_KEY`);
    }
    return key;
  };
  const readRows = (q: Query, ids: string[]) => q.query<Row>(SELECT, [JSON.stringify(ids)]);
  /** The row's key once its record is in the log (appending it now if its maker did not live to). */
  const usable = async (q: Query, row: Row): Promise<Uint8Array | null> => {
    if (row.destroyed_at != null || !row.wrapped) return null;
    if (row.logged_at == null) {
      await append({ conversationId: row.conversation_id, kind: 'key', kek: row.kek ?? master.id, wrapped: row.wrapped });
      await q.query(MARK_LOGGED, [row.conversation_id]);
    }
    return unwrap(row.conversation_id, row.wrapped, row.kek);
  };
  /** Keys being read from the table, per conversation (not inside a transaction's `through`): what each read found. */
  const reading = new Map<string, Promise<Map<string, Uint8Array>>>();
  const cached = (id: string, now: number) => {
    const c = cache.get(id);
    return c && (c.key === null || now - c.at < maxAgeMs) ? c : undefined;
  };
  const read = async (q: Query, ids: string[]) => {
    const found = new Map<string, Uint8Array>();
    for (const row of await readRows(q, ids)) {
      const key = await usable(q, row);
      // A key destroyed (or forgotten) while this read was under way stays destroyed.
      if (cache.get(row.conversation_id)?.key === null) continue;
      remember(row.conversation_id, key);
      if (key) found.set(row.conversation_id, key);
    }
    return found;
  };
  const get = async (q: Query, ids: Iterable<string>) => {
      const out = new Map<string, Uint8Array>();
      const missing: string[] = [];
      const waiting: Array<[string, Promise<Map<string, Uint8Array>>]> = [];
      const now = Date.now();
      const shared = q === db;
      for (const id of ids) {
        const c = cached(id, now);
        const under = shared ? reading.get(id) : undefined;
        if (c) {
          if (c.key) out.set(id, c.key);
        } else if (under) waiting.push([id, under]);
        else missing.push(id);
      }
      if (missing.length) {
        // One statement for all the keys asked for; a get meanwhile for one of them waits for it
        // (a host taking a partition over reads the keys of its conversations ahead, all at once).
        const r = read(q, missing);
        if (shared) {
          for (const id of missing) reading.set(id, r);
          void r.catch(() => {}).finally(() => {
            for (const id of missing) if (reading.get(id) === r) reading.delete(id);
          });
        }
        for (const [id, key] of await r) out.set(id, key);
      }
      if (waiting.length) {
        // What that read found is the answer (none: no key yet); if it failed, it is read again.
        const again: string[] = [];
        for (const [id, under] of waiting) {
          const found = await under.catch(() => null);
          if (cache.get(id)?.key === null) continue;
          if (!found) again.push(id);
          else if (found.has(id)) out.set(id, found.get(id)!);
        }
        if (again.length) for (const [id, key] of await read(q, again)) out.set(id, key);
      }
      return out;
  };

  /** A new conversation's key: made, kept in the cache table and logged before it is used (or the one another process made). */
  const making = new Map<string, Promise<Uint8Array>>();
  const make = async (id: string): Promise<Uint8Array> => {
    const dataKey = newDataKey();
    const wrapped = wrapKey(master, id, dataKey);
    const inserted = await db.query(INSERT, [id, JSON.stringify(wrapped), master.id]);
    let key: Uint8Array | null;
    if (inserted.length) {
      // Durable before it seals anything: the record is in the log when create() returns.
      await append({ conversationId: id, kind: 'key', kek: master.id, wrapped });
      await db.query(MARK_LOGGED, [id]);
      key = dataKey;
    } else {
      // Another process made it first (or it was destroyed): use what is stored.
      const [row] = await readRows(db, [id]);
      key = row ? await usable(db, row) : null;
    }
    remember(id, key);
    if (!key) throw new KeyDestroyed(`conversation ${id} was erased`);
    return key;
  };

  const store: LoggedKeyStore = {
    get: (ids) => get(db, ids),
    cached: () => ({ entries: cache.size, bound: maxEntries }),
    through(q) {
      return { ...store, get: (ids) => get(q, ids) };
    },
    async create(id) {
      const c = cache.get(id);
      if (c?.key === null) throw new KeyDestroyed(`conversation ${id} was erased`);
      if (c) return c.key!;
      // Prompts that come together for a new conversation wait for one key and one record.
      let made = making.get(id);
      if (!made) {
        made = make(id).finally(() => making.delete(id));
        made.catch(() => {});
        making.set(id, made);
      }
      return made;
    },
    async destroy(id) {
      // The tombstone first: once it is in the log the key is gone for every rebuild too.
      // Whether it destroyed the key is decided by its id, not by whether the row was still
      // unmarked: the projection (ConversationErased is in the log before this runs) or
      // another process's key sync may mark the row in between.
      const tombstone = randomUUID();
      await append({ conversationId: id, kind: 'destroyed', at: new Date().toISOString(), id: tombstone });
      const [row] = await db.query<{ tombstone_id: string | null }>(DESTROY, [id, tombstone]);
      remember(id, null);
      return row?.tombstone_id === tombstone;
    },
    forget(id) {
      remember(id, null);
    },
    async sync(progress) {
      await ensureTopic();
      const done = new Map((await db.query<{ partition: number; next_offset: string | number }>('SELECT partition, next_offset FROM key_sync')).map((r) => [r.partition, Number(r.next_offset)]));
      let n = 0;
      for (let p = 0; p < log.partitions; p++) {
        const end = await log.read(TOPICS.keys, p, done.get(p) ?? 0, async (records) => {
          // Later records of a conversation replace earlier ones (the compaction rule), but
          // its first tombstone stays: a tombstone is final, and its id names the erasure that did it.
          const last = new Map<string, KeyRecord>();
          for (const r of records) {
            const k = decodeKeyRecord(r.key, r.value);
            if (k && last.get(k.conversationId)?.kind !== 'destroyed') last.set(k.conversationId, k);
          }
          const rows = [...last.values()].map((k) => (k.kind === 'key'
            ? { id: k.conversationId, wrapped: k.wrapped, kek: k.kek, destroyed: false, tombstone: null }
            : { id: k.conversationId, wrapped: null, kek: null, destroyed: true, tombstone: k.id ?? `at ${k.at}` }));
          await db.tx(async (q) => {
            if (rows.length) await q.query(UPSERT_FROM_LOG, [JSON.stringify(rows)]);
            await q.query(SAVE_SYNC, [p, records[records.length - 1]!.offset + 1]);
          });
          for (const k of last.values()) if (k.kind === 'destroyed') remember(k.conversationId, null);
          n += records.length;
          progress?.(n);
        });
        if (!done.has(p)) await db.query(SAVE_SYNC, [p, end]);
      }
      // A process with another master key than the one every key was wrapped by could open none
      // of them: it would take partitions and fail each of their commands. Refused here, at start.
      const byKek = await db.query<{ kek: string; n: number }>('SELECT kek, count(*)::int AS n FROM conversation_keys WHERE wrapped IS NOT NULL AND kek IS NOT NULL GROUP BY kek');
      if (byKek.length && !byKek.some((k) => k.kek === master.id)) {
        throw new MasterKeyError(`the ${byKek.reduce((a, k) => a + Number(k.n), 0)} data keys in the keys topic were wrapped by master key ${byKek.map((k) => k.kek).join(', ')}, and this process has ${master.id} (${master.source}): every process of a deployment needs the same GEMELLO_MASTER_KEY`);
      }
      return n;
    },
    async migrateLegacy(progress) {
      let moved = 0;
      for (;;) {
        const rows = await db.query<{ conversation_id: string; key: Uint8Array }>(LEGACY);
        if (!rows.length) return moved;
        for (const row of rows) {
          const wrapped = wrapKey(master, row.conversation_id, new Uint8Array(row.key));
          // Idempotent and resumable: a crash after the append appends the same key again.
          await append({ conversationId: row.conversation_id, kind: 'key', kek: master.id, wrapped });
          await db.query(LEGACY_DONE, [row.conversation_id, JSON.stringify(wrapped), master.id]);
          moved++;
        }
        progress?.(moved);
      }
    },
  };
  return store;
}
