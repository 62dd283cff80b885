// The data keys of erasure (crypto-shredding): one key per conversation, made once and shared
// by every process, kept with the log's durability (the compacted keys topic, wrapped by the
// master key), cached in the read-model database, gone for good once destroyed. One suite
// for both homes: the embedded file log with PGlite, and Kafka with PostgreSQL.
import { Buffer } from 'node:buffer';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSealedEvent, envelope } from '../../events/codec.ts';
import type { DomainEvent } from '../../events/schemas.ts';
import { createFileLog } from '../../log/file.ts';
import { kafkaLog } from '../support/kafka.ts';
import { partitionFor } from '../../log/partition.ts';
import { COMPACTED_TOPIC_CONFIG, TOPICS } from '../../log/port.ts';
import type { EventLog, LogRecord, OutgoingRecord } from '../../log/port.ts';
import { applyBatch } from '../../projections/apply.ts';
import { migrate } from '../../projections/migrate.ts';
import { createReadApi } from '../../projections/queries.ts';
import { decodeKeyRecord } from '../../sealing/key-records.ts';
import { KeyDestroyed, keysFor } from '../../sealing/keys.ts';
import { fingerprint, MasterKeyError } from '../../sealing/master-key.ts';
import type { Db } from '../../stores/sql.ts';
import { KAFKA_BROKERS } from '../support/env.ts';
import { testKeyStore } from '../support/keys.ts';
import { topicConfig } from '../support/kafka-admin.ts';
import { dbBackends } from '../support/readmodel.ts';

const PARTITIONS = 3;
const [pglite, postgresql] = dbBackends('keys_contract');
type Home = { name: string; db: NonNullable<typeof pglite>; log(): Promise<EventLog>; fileDir?: string; namespace?: string };
const homes: Home[] = [
  {
    name: 'file log + PGlite',
    db: pglite!,
    async log() {
      this.fileDir = await mkdtemp(join(tmpdir(), 'gemello-keys-'));
      return createFileLog({ dir: this.fileDir, partitions: PARTITIONS });
    },
  },
  {
    name: 'Kafka + PostgreSQL',
    db: postgresql!,
    async log() {
      this.namespace = `keys${randomUUID().slice(0, 8)}.`;
      return kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: this.namespace });
    },
  },
];

/** Every record of the keys topic for one conversation, in order. */
async function keyRecords(log: EventLog, id: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  await log.read(TOPICS.keys, partitionFor(id, log.partitions), 0, (rs) => void out.push(...rs.filter((r) => r.key === id)));
  return out;
}

/**
 * The log, running `between` once each tombstone is acknowledged by the keys topic and before
 * its appender goes on: what another process can do in that gap on a loaded machine.
 */
function pausingAfterTombstones(log: EventLog, between: () => Promise<unknown>): EventLog {
  return new Proxy(log, {
    get(target, prop) {
      if (prop === 'append') {
        return async (topic: string, partition: number, records: OutgoingRecord[]) => {
          const offset = await target.append(topic, partition, records);
          if (topic === TOPICS.keys && records.some((r) => r.headers.type === 'DataKeyDestroyed')) await between();
          return offset;
        };
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

for (const home of homes) {
  describe(`conversation keys on ${home.name}`, () => {
    let db: Db;
    let log: EventLog;
    let drop: () => Promise<void>;
    const dropAll: (() => Promise<void>)[] = [];
    beforeAll(async () => {
      ({ db, drop } = await home.db.open());
      log = await home.log();
      await migrate(db);
    });
    afterAll(async () => {
      await log?.close();
      await drop?.();
      for (const d of dropAll) await d();
    });

    it('gives every process the same key for a conversation, made once, and logs it wrapped before it is used', async () => {
      const id = `c-${randomUUID()}`;
      const gateway = testKeyStore(log, db);
      const host = testKeyStore(log, db);
      const key = await gateway.create(id);
      expect(key.byteLength).toBe(32);
      expect(await host.create(id)).toEqual(key);
      expect((await host.get([id, 'no-such-conversation'])).get(id)).toEqual(key);
      expect((await host.get(['no-such-conversation'])).size).toBe(0);
      const records = await keyRecords(log, id);
      expect(records).toHaveLength(1);
      expect(decodeKeyRecord(id, records[0]!.value)).toMatchObject({ kind: 'key' });
      // Neither the topic nor the cache table holds the key itself.
      const plain = [Buffer.from(key).toString('base64'), Buffer.from(key).toString('hex')];
      const table = JSON.stringify(await db.query('SELECT * FROM conversation_keys WHERE conversation_id = $1', [id]));
      for (const p of plain) {
        expect(records[0]!.value).not.toContain(p);
        expect(table).not.toContain(p);
      }
    });

    it('makes one key and one record for a new conversation that several prompts ask for at once', async () => {
      const id = `c-${randomUUID()}`;
      const gateway = testKeyStore(log, db);
      const keys = await Promise.all([gateway.create(id), gateway.create(id), gateway.create(id)]);
      expect(keys[1]).toEqual(keys[0]);
      expect(keys[2]).toEqual(keys[0]);
      expect(await keyRecords(log, id)).toHaveLength(1);
    });

    it('reads the keys a lookup asks for in one statement, which a lookup of the same conversations meanwhile waits for (one that failed is read again)', async () => {
      const ids = [`c-${randomUUID()}`, `c-${randomUUID()}`];
      const made = await Promise.all(ids.map((id) => testKeyStore(log, db).create(id)));
      let selects = 0;
      let failNext = false;
      const counting: Db = {
        ...db,
        query: async (text, params) => {
          if (/SELECT conversation_id, wrapped/.test(text)) {
            selects++;
            if (failNext) {
              failNext = false;
              throw new Error('connection lost');
            }
          }
          return db.query(text, params);
        },
      };
      const host = testKeyStore(log, counting);
      // A takeover reads ahead both conversations; their commands' lookups come meanwhile.
      const [ahead, first, second, none] = await Promise.all([host.get(ids), host.get([ids[0]!]), host.get([ids[1]!]), host.get(['no-such-conversation'])]);
      expect(selects).toBe(2);
      expect(ahead.get(ids[0]!)).toEqual(made[0]);
      expect(first.get(ids[0]!)).toEqual(made[0]);
      expect(second.get(ids[1]!)).toEqual(made[1]);
      expect(none.size).toBe(0);
      // The read waited for fails: the lookup that waited reads on its own.
      const other = testKeyStore(log, counting);
      failNext = true;
      const [failed, waited] = await Promise.allSettled([other.get([ids[0]!]), other.get([ids[0]!])]);
      expect(failed.status).toBe('rejected');
      expect(waited.status === 'fulfilled' && waited.value.get(ids[0]!)).toEqual(made[0]);
      expect(selects).toBe(4);
    });

    it('rebuilds the key cache from the log alone: a lost database loses no key', async () => {
      const ids = Array.from({ length: 5 }, () => `c-${randomUUID()}`);
      const store = testKeyStore(log, db);
      const keys = await Promise.all(ids.map((id) => store.create(id)));
      await store.destroy(ids[4]!);
      const { db: fresh, drop: dropFresh } = await home.db.open();
      dropAll.push(dropFresh);
      await migrate(fresh);
      expect((await testKeyStore(log, fresh).get(ids)).size).toBe(0);
      const rebuilt = testKeyStore(log, fresh);
      expect(await rebuilt.sync()).toBeGreaterThanOrEqual(6);
      const got = await rebuilt.get(ids);
      expect(ids.slice(0, 4).map((id) => got.get(id))).toEqual(keys.slice(0, 4));
      expect(got.has(ids[4]!)).toBe(false);
      await expect(rebuilt.create(ids[4]!)).rejects.toBeInstanceOf(KeyDestroyed);
      // A second sync reads only what came since.
      await store.create(`c-${randomUUID()}`);
      expect(await rebuilt.sync()).toBe(1);
    });

    it('destroys a key for good: a tombstone is the last record, no process reads it again, none can make a new one', async () => {
      const id = `c-${randomUUID()}`;
      const host = testKeyStore(log, db);
      const other = testKeyStore(log, db, { maxAgeMs: 0 });
      const key = await host.create(id);
      await other.get([id]);
      expect(await host.destroy(id)).toBe(true);
      expect(await host.destroy(id)).toBe(false);
      expect((await other.get([id])).size).toBe(0);
      await expect(other.create(id)).rejects.toBeInstanceOf(KeyDestroyed);
      await expect(testKeyStore(log, db).create(id)).rejects.toBeInstanceOf(KeyDestroyed);
      const rows = await db.query<{ key: unknown; wrapped: unknown; destroyed_at: unknown }>('SELECT key, wrapped, destroyed_at FROM conversation_keys WHERE conversation_id = $1', [id]);
      expect(rows).toMatchObject([{ key: null, wrapped: null }]);
      expect(rows[0]!.destroyed_at).not.toBeNull();
      const records = await keyRecords(log, id);
      expect(decodeKeyRecord(id, records.at(-1)!.value)).toMatchObject({ kind: 'destroyed' });
      if (home.fileDir) {
        // The embedded log compacts at once: the wrapped key's bytes are gone from the file.
        const wrapped = JSON.parse(records[0]!.value.trim() || '{}') as { wrapped?: { ct: string } };
        expect(wrapped.wrapped).toBeUndefined();
        const file = await readFile(join(home.fileDir, TOPICS.keys, `${partitionFor(id, PARTITIONS)}.jsonl`), 'utf8');
        const unwrapped = Buffer.from(key).toString('base64');
        expect(file).not.toContain(unwrapped);
        expect(file.split('\n').filter((l) => l.includes(id) && l.includes('"ct'))).toHaveLength(0);
      } else {
        // On Kafka the broker compacts: the topic's settings bound how long the old record stays on disk.
        const entries = await topicConfig(`${home.namespace}${TOPICS.keys}`);
        for (const [name, value] of Object.entries(COMPACTED_TOPIC_CONFIG)) expect(entries[name], name).toBe(value);
        expect(Number(entries['max.compaction.lag.ms'])).toBeLessThanOrEqual(3_600_000);
      }
    });

    it('tells the erasure that destroyed a key from a later one, though another process marks the cache first', async () => {
      // Another process's key sync copies the tombstone into the cache between its append and the host's update.
      const synced = `c-${randomUUID()}`;
      const other = testKeyStore(log, db);
      const host = testKeyStore(pausingAfterTombstones(log, () => other.sync()), db);
      await host.create(synced);
      expect(await host.destroy(synced)).toBe(true);
      // The projection applies ConversationErased (in the log before its host destroys the key) and marks the row first.
      const projected = `c-${randomUUID()}`;
      const key = await host.create(projected);
      const envs = envelope(projected, 0, [
        { type: 'ConversationStarted', data: { twinId: 't', twinName: 'T', userId: null, metadata: {} } },
        { type: 'ConversationErased', data: { by: 'ops', via: 'cli', reason: null, prompts: 0, replies: 0, confirmedFields: 0 } },
      ], { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
      const records = envs.map((e, offset) => ({ ...encodeSealedEvent(e, key), topic: 'gemello.events', partition: 0, offset, timestamp: 0 }));
      await db.tx(async (q) => applyBatch(q, `erasure-${randomUUID()}`, 0, records, { keys: await keysFor(host, records) }));
      expect((await testKeyStore(log, db).get([projected])).size).toBe(0);
      expect(await host.destroy(projected)).toBe(true);
      // Erasing again destroys nothing and says so, also with a cache rebuilt from the log alone.
      expect(await testKeyStore(log, db).destroy(synced)).toBe(false);
      const { db: fresh, drop: dropFresh } = await home.db.open();
      dropAll.push(dropFresh);
      await migrate(fresh);
      const rebuilt = testKeyStore(log, fresh);
      await rebuilt.sync();
      expect(await rebuilt.destroy(projected)).toBe(false);
      expect(await rebuilt.destroy(synced)).toBe(false);
    });

    it('names a wrong master key instead of reading content as erased', async () => {
      const id = `c-${randomUUID()}`;
      await testKeyStore(log, db).create(id);
      const key = new Uint8Array(randomBytes(32));
      const wrong = testKeyStore(log, db, { master: { key, id: fingerprint(key), source: 'a wrong one' } });
      await expect(wrong.get([id])).rejects.toBeInstanceOf(MasterKeyError);
      await expect(wrong.get([id])).rejects.toThrow(/GEMELLO_MASTER_KEY/);
      // And at start: a process whose master key wrapped none of the keys refuses to sync (to start), naming both keys.
      await expect(wrong.sync()).rejects.toBeInstanceOf(MasterKeyError);
      await expect(wrong.sync()).rejects.toThrow(new RegExp(`wrapped by master key .*, and this process has ${fingerprint(key)} \\(a wrong one\\)`));
      await expect(testKeyStore(log, db).sync()).resolves.toBeGreaterThanOrEqual(0);
    });

    it('moves the plain keys of an earlier version into the log (gemello migrate), once, resumably', async () => {
      const ids = Array.from({ length: 3 }, () => `legacy-${randomUUID()}`);
      const plain = ids.map(() => new Uint8Array(randomBytes(32)));
      for (let i = 0; i < ids.length; i++) await db.query('INSERT INTO conversation_keys (conversation_id, key) VALUES ($1, $2::bytea)', [ids[i], plain[i]]);
      const store = testKeyStore(log, db);
      expect(await store.migrateLegacy()).toBeGreaterThanOrEqual(3);
      expect(await store.migrateLegacy()).toBe(0);
      const rows = await db.query<{ key: unknown }>('SELECT key FROM conversation_keys WHERE conversation_id IN ($1, $2, $3)', ids);
      expect(rows.every((r) => r.key === null)).toBe(true);
      const got = await testKeyStore(log, db).get(ids);
      expect(ids.map((id) => got.get(id))).toEqual(plain);
      for (const id of ids) expect(await keyRecords(log, id)).toHaveLength(1);
    });

    it('projects sealed content with its keys, and an erasure removes it from every table', async () => {
      const id = `c-${randomUUID()}`;
      const other = `c-${randomUUID()}`;
      const store = testKeyStore(log, db);
      let offset = 0;
      const batch = async (conversationId: string, lastSeq: number, domain: DomainEvent[]): Promise<LogRecord[]> => {
        const key = await store.create(conversationId);
        const envs = envelope(conversationId, lastSeq, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
        return envs.map((e) => ({ ...encodeSealedEvent(e, key), topic: 'gemello.events', partition: 0, offset: offset++, timestamp: 0 }));
      };
      const conversation = (secret: string): DomainEvent[] => [
        { type: 'ConversationStarted', data: { twinId: 't', twinName: 'T', userId: null, metadata: {} } },
        { type: 'PromptReceived', data: { text: `prompt ${secret}`, requestId: null } },
        { type: 'ReplyGenerated', data: { promptSeq: 2, text: `reply ${secret}`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } },
        { type: 'DataConfirmed', data: { data: { secret: `data ${secret}` }, requestId: null } },
      ];
      const first = [...(await batch(id, 0, conversation('alpha-secret-one'))), ...(await batch(other, 0, conversation('beta-secret-two')))];
      expect(first.map((r) => r.value).join('')).not.toMatch(/alpha-secret-one|beta-secret-two/);
      await db.tx(async (q) => applyBatch(q, 'keys', 0, first, { keys: await keysFor(store, first) }));
      const api = createReadApi(db);
      expect((await api.getConversation(id))!.messages.map((m) => m.content)).toEqual(['prompt alpha-secret-one', 'reply alpha-secret-one']);

      const erased = await batch(id, 4, [{ type: 'ConversationErased', data: { by: 'ops', via: 'cli', reason: null, prompts: 1, replies: 1, confirmedFields: 1 } }]);
      const r = await db.tx(async (q) => applyBatch(q, 'keys', 0, erased, { keys: await keysFor(store, erased) }));
      expect(r.applied.map((e) => e.type)).toEqual(['ConversationErased']);

      const dump = JSON.stringify([
        await db.query('SELECT * FROM messages WHERE conversation_id = $1', [id]),
        await db.query('SELECT * FROM confirmed_data WHERE conversation_id = $1', [id]),
        await db.query('SELECT * FROM events WHERE conversation_id = $1', [id]),
        await db.query('SELECT * FROM conversations WHERE id = $1', [id]),
      ]);
      expect(dump).not.toContain('alpha-secret-one');
      const view = (await api.getConversation(id))!;
      expect(view).toMatchObject({ messages: [], confirmedData: {}, confirmations: [] });
      expect(view.erasedAt).not.toBeNull();
      expect((await api.getEvents(id)).map((e) => [e.type, (e.data as { text?: string }).text])).toEqual([
        ['ConversationStarted', undefined], ['PromptReceived', '[erased]'], ['ReplyGenerated', '[erased]'], ['DataConfirmed', undefined], ['ConversationErased', undefined],
      ]);
      // The projection marks the cached key destroyed too (its actor host writes the tombstone first).
      expect((await testKeyStore(log, db).get([id])).size).toBe(0);
      const kept = (await api.getConversation(other))!;
      expect(kept.messages.map((m) => m.content)).toEqual(['prompt beta-secret-two', 'reply beta-secret-two']);
      expect(kept.confirmedData).toEqual({ secret: 'data beta-secret-two' });
      expect(kept.erasedAt).toBeNull();
    });
  });
}
