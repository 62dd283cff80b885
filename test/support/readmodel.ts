// Helpers for tests that hold the read model up against the log: the log's events as a
// reader sees them, a backlog appended straight to the log, "caught up", and the row-by-row
// comparison.
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { expect } from 'vitest';
import { decodeEvent, encodeEvent, envelope, isEventRecord } from '../../events/codec.ts';
import { keysFor } from '../../sealing/keys.ts';
import type { KeyStore } from '../../sealing/keys.ts';
import type { DomainEvent, EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import { partitionFor } from '../../log/partition.ts';
import { TOPICS } from '../../log/port.ts';
import type { EventLog } from '../../log/port.ts';
import { createPGliteDb } from '../../stores/db-pglite.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import type { Db } from '../../stores/sql.ts';
import { DATABASE_URL } from './env.ts';

/** A database the read-model contracts run on: `open` gives an empty one and `drop` throws it away. */
export type DbBackend = { name: string; open(): Promise<{ db: Db; drop(): Promise<void> }> };

/** The read model's two databases: PGlite in memory, and PostgreSQL in a fresh schema `<schemaPrefix>_<uuid>` that `drop` removes. */
export function dbBackends(schemaPrefix: string): DbBackend[] {
  return [
    { name: 'PGlite (in memory)', async open() { const db = createPGliteDb(); return { db, drop: () => db.close() }; } },
    {
      name: 'PostgreSQL',
      async open() {
        // Short enough (≤ 43 characters) for a rebuild's `<schema>_old_<UTC time>` beside it.
        const schema = `${schemaPrefix}_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
        const db = createPostgresDb({ url: DATABASE_URL, schema });
        return {
          db,
          async drop() {
            await db.close();
            const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
            await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
            await admin.end();
          },
        };
      },
    },
  ];
}

/** Every event of the log by conversation, as readers apply it (the first event with a seq wins), opened with `keys`. */
export async function readLog(log: EventLog, keys?: KeyStore): Promise<Map<string, LoggedEvent[]>> {
  const byConversation = new Map<string, LoggedEvent[]>();
  for (let p = 0; p < log.partitions; p++) {
    await log.read(TOPICS.events, p, 0, async (records) => {
      const ring = await keysFor(keys, records);
      for (const r of records) {
        if (!isEventRecord(r)) continue;
        const e = decodeEvent(r, ring);
        const list = byConversation.get(e.conversationId) ?? [];
        if (e.seq === list.length + 1) list.push(e);
        byConversation.set(e.conversationId, list);
      }
    });
  }
  return byConversation;
}

let clock = Date.now();

/** `conversations` conversations of `turns` prompt/reply pairs each, as an actor host would have written them. */
export function backlog(conversations: number, turns: number, prefix = 'backlog'): EventEnvelope[] {
  const out: EventEnvelope[] = [];
  for (let c = 0; c < conversations; c++) {
    const id = `${prefix}-${c}-${randomUUID()}`;
    const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: 'u', metadata: { source: prefix } } }];
    for (let i = 0; i < turns; i++) {
      domain.push({ type: 'PromptReceived', data: { text: `question ${i} of ${id}`, requestId: null } });
      domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `answer ${i}`, model: 'm', tokens: { prompt: 3, completion: 2, total: 5 }, latencyMs: 1.5, audio: false } });
    }
    out.push(...envelope(id, 0, domain, { causationId: randomUUID(), correlationId: null, traceparent: null, now: new Date(++clock), newId: randomUUID }));
  }
  return out;
}

/** Appends events to their conversations' partitions, in order, in chunks. */
export async function appendEvents(log: EventLog, events: EventEnvelope[]): Promise<void> {
  const byPartition = new Map<number, EventEnvelope[]>();
  for (const e of events) {
    const p = partitionFor(e.conversationId, log.partitions);
    let list = byPartition.get(p);
    if (!list) byPartition.set(p, (list = []));
    list.push(e);
  }
  await Promise.all([...byPartition].map(async ([p, list]) => {
    for (let i = 0; i < list.length; i += 1000) await log.append(TOPICS.events, p, list.slice(i, i + 1000).map((e) => encodeEvent(e)));
  }));
}

/** The sum of the projection's checkpoints (log records applied). */
export async function projected(db: Db, name = 'readmodel'): Promise<number> {
  const [r] = await db.query<{ n: number | null }>('SELECT sum(next_offset)::int AS n FROM projection_checkpoints WHERE projection = $1', [name]);
  return Number(r?.n ?? 0);
}

/** Waits until the projection's checkpoints reach the log's end offsets as of the call. */
export async function waitCaughtUp(db: Db, log: EventLog, ms = 30_000, name = 'readmodel'): Promise<void> {
  const ends = await log.endOffsets(TOPICS.events);
  const deadline = Date.now() + ms;
  for (;;) {
    const rows = await db.query<{ partition: number; next_offset: number }>('SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1', [name]).catch(() => []);
    const at = new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
    const behind = ends.flatMap((end, p) => (end > (at.get(p) ?? 0) ? [`${p}: ${at.get(p) ?? 0}/${end}`] : []));
    if (!behind.length) return;
    if (Date.now() > deadline) throw new Error(`the projection is behind the log after ${ms} ms (partition: checkpoint/end) ${behind.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The read model holds the log, row for row: one events row per event (same id, seq, type,
 * position), one messages row per prompt and reply (same seq, role, content), each
 * conversation at its last seq. Returns the log's events by conversation.
 */
export async function expectRowsMatchLog(db: Db, log: EventLog, keys?: KeyStore): Promise<Map<string, LoggedEvent[]>> {
  const expected = await readLog(log, keys);
  const all = [...expected.values()].flat().sort((a, b) => (a.conversationId < b.conversationId ? -1 : a.conversationId > b.conversationId ? 1 : a.seq - b.seq));
  const events = await db.query<{ event_id: string; conversation_id: string; seq: number; type: string; partition: number; log_offset: number }>(
    'SELECT event_id, conversation_id, seq, type, partition, log_offset FROM events ORDER BY conversation_id COLLATE "C", seq',
  );
  expect(events.length).toBe(all.length);
  expect(events).toEqual(all.map((e) => ({ event_id: e.eventId, conversation_id: e.conversationId, seq: e.seq, type: e.type, partition: e.position.partition, log_offset: e.position.offset })));
  const messages = await db.query<{ conversation_id: string; seq: number; role: string; content: string }>(
    'SELECT conversation_id, seq, role, content FROM messages ORDER BY conversation_id COLLATE "C", seq',
  );
  expect(messages).toEqual(all.flatMap((e) => {
    if (e.type === 'PromptReceived') return [{ conversation_id: e.conversationId, seq: e.seq, role: 'user', content: e.data.text }];
    if (e.type === 'ReplyGenerated') return [{ conversation_id: e.conversationId, seq: e.seq, role: 'assistant', content: e.data.text }];
    return [];
  }));
  const conversations = await db.query<{ id: string; last_seq: number }>('SELECT id, last_seq FROM conversations ORDER BY id COLLATE "C"');
  expect(conversations).toEqual([...expected].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, list]) => ({ id, last_seq: list[list.length - 1]!.seq })));
  return expected;
}
