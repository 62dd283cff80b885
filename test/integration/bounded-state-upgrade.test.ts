// Snapshots in Redis and read-model state in PostgreSQL written by the version before the
// state was bounded (the whole transcript in the snapshot, no counters anywhere) are read by
// this one: recovery gets the last 40 messages and the right counts, the projector goes on
// from the old row, and a newer snapshot replaces an old one (an older one never does).
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecovery } from '../../actors/recovery.ts';
import type { SnapshotStore } from '../../actors/ports.ts';
import { fold } from '../../actors/state.ts';
import { TailIndex } from '../../actors/tail.ts';
import { encodeEvent, envelope } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { applyBatch } from '../../projections/apply.ts';
import { migrate } from '../../projections/migrate.ts';
import { createReadModelStateSource } from '../../projections/state-source.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import type { Db } from '../../stores/sql.ts';
import { createRedisSnapshotStore } from '../../stores/snapshots/redis.ts';
import { DATABASE_URL, REDIS_URL } from '../support/env.ts';

const PROMPTS = 300;
const schema = `upgrade_${randomUUID().slice(0, 8)}`;
const prefix = `upgrade${randomUUID().slice(0, 8)}.gemello:`;
const redis = new Redis(REDIS_URL);
let db: Db;
let store: ReturnType<typeof createRedisSnapshotStore>;

/** A conversation of `prompts` answered prompts, then `more` more, as the log has it. */
function conversation(id: string, prompts: number): EventEnvelope[] {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: null, metadata: {} } }];
  for (let i = 0; i < prompts; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `question ${i}`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `answer ${i}`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } });
  }
  return envelope(id, 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(0), newId: randomUUID });
}

const records = (events: EventEnvelope[], from = 0): LogRecord[] =>
  events.map((e, i) => {
    const r = encodeEvent(e);
    return { topic: TOPICS.events, partition: 0, offset: from + i, key: r.key, value: r.value, headers: r.headers, timestamp: 0 };
  });

/** The state as the version before stored it in a snapshot: the whole transcript, no counters. */
function oldState(events: EventEnvelope[]) {
  const { prompts: _p, replies: _r, ...state } = fold(events[0]!.conversationId, events, undefined, Infinity);
  return state;
}

const nothing = { read: async () => 0 } as unknown as EventLog;

beforeAll(async () => {
  db = createPostgresDb({ url: DATABASE_URL, schema });
  await migrate(db);
  store = createRedisSnapshotStore({ url: REDIS_URL, prefix });
});

afterAll(async () => {
  await db.close();
  const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await store.close();
});

describe('state written before the state was bounded', () => {
  it('a Redis snapshot with the whole transcript recovers with the last 40 messages and its counts', async () => {
    const id = `old-snap-${randomUUID()}`;
    const events = conversation(id, PROMPTS);
    const state = oldState(events);
    // The version before wrote JSON.stringify of {conversationId, seq, eventId, position, state}.
    await redis.set(`${prefix}snapshot:${id}`, JSON.stringify({ conversationId: id, seq: state.seq, eventId: state.lastEventId, position: { partition: 0, offset: events.length - 1 }, state }));
    const recovery = createRecovery({ log: nothing, snapshots: store, readModel: null, historyMessages: 40 });
    const r = await recovery.recover(id, 0, new TailIndex(events.length));
    expect(r.tier).toBe('snapshot');
    expect(r.state).toMatchObject({ seq: 2 * PROMPTS + 1, prompts: PROMPTS, replies: PROMPTS });
    expect(r.state.messages).toHaveLength(40);
    expect(r.state.messages.at(-1)).toEqual({ seq: 2 * PROMPTS + 1, role: 'assistant', content: `answer ${PROMPTS - 1}` });

    // An older snapshot never replaces it; a newer one (bounded) does.
    await store.put({ conversationId: id, seq: 5, eventId: null, position: { partition: 0, offset: 4 }, state: { ...r.state, seq: 5 } });
    expect((await store.get(id))!.seq).toBe(2 * PROMPTS + 1);
    await store.put({ conversationId: id, seq: r.state.seq + 1, eventId: null, position: { partition: 0, offset: events.length }, state: { ...r.state, seq: r.state.seq + 1 } });
    const now = await redis.get(`${prefix}snapshot:${id}`);
    expect(JSON.parse(now!).seq).toBe(2 * PROMPTS + 2);
    expect(now!.length).toBeLessThan(32 * 1024);
  });

  it('a read-model row without counters recovers with counts from its messages, and the projector goes on from it', async () => {
    const id = `old-rm-${randomUUID()}`;
    const events = conversation(id, PROMPTS);
    await db.tx((q) => applyBatch(q, 'readmodel', 0, records(events)));
    // conversations.state as the version before projected it: no counters.
    await db.query(`UPDATE conversations SET state = state - 'prompts' - 'replies' WHERE id = $1`, [id]);
    const source = createReadModelStateSource(db, 'readmodel', 40);
    const none: SnapshotStore = { ...store, get: async () => null };
    const recovery = createRecovery({ log: nothing, snapshots: none, readModel: source, historyMessages: 40 });
    const r = await recovery.recover(id, 0, new TailIndex(events.length));
    expect(r.tier).toBe('readmodel');
    expect(r.state).toMatchObject({ seq: 2 * PROMPTS + 1, prompts: PROMPTS, replies: PROMPTS });
    expect(r.state.messages).toHaveLength(40);
    expect(r.state.messages[0]).toEqual({ seq: 2 * PROMPTS + 1 - 39, role: 'user', content: `question ${PROMPTS - 20}` });

    // The next events are projected on top of the old row, which gets its counters.
    const more = envelope(id, 2 * PROMPTS + 1, [{ type: 'PromptReceived', data: { text: 'after the upgrade', requestId: null } }], { causationId: null, correlationId: null, traceparent: null, now: new Date(0), newId: randomUUID });
    await db.tx((q) => applyBatch(q, 'readmodel', 0, records(more, events.length)));
    const [row] = await db.query<{ prompts: number; replies: number; pending: number[] }>(`SELECT (state->>'prompts')::int AS prompts, (state->>'replies')::int AS replies, state->'pendingPrompts' AS pending FROM conversations WHERE id = $1`, [id]);
    expect(row).toEqual({ prompts: PROMPTS + 1, replies: PROMPTS, pending: [2 * PROMPTS + 2] });
  });
});
