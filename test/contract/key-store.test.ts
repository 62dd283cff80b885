// The data keys of erasure (crypto-shredding) on both read-model databases: one key per
// conversation, shared by every process, gone for good once destroyed; and what the
// projection does when a conversation is erased.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSealedEvent, envelope } from '../../events/codec.ts';
import { KeyDestroyed } from '../../sealing/keys.ts';
import type { DomainEvent } from '../../events/schemas.ts';
import type { LogRecord } from '../../log/port.ts';
import { applyBatch } from '../../projections/apply.ts';
import { createDbKeyStore } from '../../sealing/db-key-cache.ts';
import { migrate } from '../../projections/migrate.ts';
import { createReadApi } from '../../projections/queries.ts';
import type { Db } from '../../stores/sql.ts';
import { dbBackends } from '../support/readmodel.ts';

const backends = dbBackends('keys_contract');

for (const backend of backends) {
  describe(`conversation keys on ${backend.name}`, () => {
    let db: Db;
    let drop: () => Promise<void>;
    beforeAll(async () => {
      ({ db, drop } = await backend.open());
      await migrate(db);
    });
    afterAll(async () => drop?.());

    it('gives every process the same key for a conversation, made once', async () => {
      const id = `c-${randomUUID()}`;
      const gateway = createDbKeyStore(db);
      const host = createDbKeyStore(db);
      const key = await gateway.create(id);
      expect(key.byteLength).toBe(32);
      expect(await host.create(id)).toEqual(key);
      expect((await host.get([id, 'no-such-conversation'])).get(id)).toEqual(key);
      expect((await host.get(['no-such-conversation'])).size).toBe(0);
      const [{ n }] = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM conversation_keys WHERE conversation_id = $1', [id])) as [{ n: number }];
      expect(n).toBe(1);
    });

    it('destroys a key for good: no process reads it again, none can make a new one', async () => {
      const id = `c-${randomUUID()}`;
      const host = createDbKeyStore(db);
      const other = createDbKeyStore(db, { maxAgeMs: 0 });
      await host.create(id);
      await other.get([id]);
      expect(await host.destroy(id)).toBe(true);
      expect(await host.destroy(id)).toBe(false);
      expect((await other.get([id])).size).toBe(0);
      await expect(other.create(id)).rejects.toBeInstanceOf(KeyDestroyed);
      await expect(createDbKeyStore(db).create(id)).rejects.toBeInstanceOf(KeyDestroyed);
      const rows = await db.query<{ key: unknown; destroyed_at: unknown }>('SELECT key, destroyed_at FROM conversation_keys WHERE conversation_id = $1', [id]);
      expect(rows).toMatchObject([{ key: null }]);
      expect(rows[0]!.destroyed_at).not.toBeNull();
    });

    it('projects sealed content with the keys it reads itself, and an erasure removes it from every table', async () => {
      const id = `c-${randomUUID()}`;
      const other = `c-${randomUUID()}`;
      const store = createDbKeyStore(db);
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
      await db.tx((q) => applyBatch(q, 'keys', 0, first));
      const api = createReadApi(db);
      expect((await api.getConversation(id))!.messages.map((m) => m.content)).toEqual(['prompt alpha-secret-one', 'reply alpha-secret-one']);

      const erased = await batch(id, 4, [{ type: 'ConversationErased', data: { by: 'ops', via: 'cli', reason: null, prompts: 1, replies: 1, confirmedFields: 1 } }]);
      const r = await db.tx((q) => applyBatch(q, 'keys', 0, erased));
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
      // The projection destroyed the key too (its actor host does so first; either is enough).
      expect((await createDbKeyStore(db).get([id])).size).toBe(0);
      // The other conversation is untouched.
      const kept = (await api.getConversation(other))!;
      expect(kept.messages.map((m) => m.content)).toEqual(['prompt beta-secret-two', 'reply beta-secret-two']);
      expect(kept.confirmedData).toEqual({ secret: 'data beta-secret-two' });
      expect(kept.erasedAt).toBeNull();
    });
  });
}
