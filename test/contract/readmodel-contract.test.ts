import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fold } from '../../actors/state.ts';
import { encodeEvent, encodeNotice, envelope } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';
import type { LogRecord } from '../../log/port.ts';
import { applyBatch, applyBatches, eraseKeptCopies, readAhead, StaleReadAhead } from '../../projections/apply.ts';
import { createAudioCache } from '../../stores/audio-cache.ts';
import { loadMigrations, migrate } from '../../projections/migrate.ts';
import { createReadApi } from '../../projections/queries.ts';
import type { Db, Query } from '../../stores/sql.ts';
import { createReadModelStateSource } from '../../projections/state-source.ts';
import { dbBackends } from '../support/readmodel.ts';

const PARTITION = 3;

const backends = dbBackends('readmodel_contract');

// ---- a small log: conversations as the actor host would write them --------------------

let clock = Date.parse('2026-01-02T03:04:05.000Z');
function events(conversationId: string, lastSeq: number, domain: DomainEvent[], causationId: string | null = null): EventEnvelope[] {
  clock += 1000;
  return envelope(conversationId, lastSeq, domain, { causationId, correlationId: 'req-1', traceparent: null, now: new Date(clock), newId: randomUUID });
}

const A = `conv-a-${randomUUID()}`;
const B = `conv-b-${randomUUID()}`;
const started = (twinId: string, userId: string | null, metadata: Record<string, unknown> = {}): DomainEvent =>
  ({ type: 'ConversationStarted', data: { twinId, twinName: 'Warren Buffett', userId, metadata } });
const prompt = (text: string): DomainEvent => ({ type: 'PromptReceived', data: { text, requestId: 'r1' } });
const reply = (promptSeq: number, text: string, audio = false): DomainEvent => ({
  type: 'ReplyGenerated',
  data: { promptSeq, text, model: 'gpt-4.1-nano', tokens: { prompt: 11, completion: 7, total: 18 }, latencyMs: 42.5, audio },
});

const aEvents: EventEnvelope[] = [
  ...events(A, 0, [started('warren-buffett-001', 'user-1', { channel: 'web' }), prompt('What is a moat?')], 'cmd-1'),
  ...events(A, 2, [reply(2, 'A durable advantage.', true)], 'cmd-2'),
  ...events(A, 3, [{ type: 'AudioReady', data: { replySeq: 3, audioId: 'audio-1', format: 'mp3', durationSec: 1.5, bytes: 1234, voice: 'onyx' } }]),
  ...events(A, 4, [{ type: 'DataConfirmed', data: { data: { email: 'a@example.com', age: 90, nothing: null }, requestId: 'r2' } }], 'cmd-3'),
  ...events(A, 5, [prompt('And with \u0000 in it?')], 'cmd-4'),
  ...events(A, 6, [{ type: 'ReplyFailed', data: { promptSeq: 6, reason: 'rate limited', code: 'rate_limited', latencyMs: 12 } }], 'cmd-5'),
  ...events(A, 7, [{ type: 'DataConfirmed', data: { data: { email: 'b@example.com' }, requestId: null } }], 'cmd-6'),
];
const bEvents: EventEnvelope[] = [
  ...events(B, 0, [started('warren-buffett-001', null), prompt('Hello')], 'cmd-7'),
  // What COPY's text format escapes (tab, newline, carriage return, backslash) arrives as written.
  ...events(B, 2, [reply(2, 'Hello back.\tA tab,\na new line,\r\na backslash \\ and \\N.')], 'cmd-8'),
];

let offset = 0;
const record = (value: { key: string; value: string; headers: Record<string, string> }): LogRecord =>
  ({ ...value, topic: 'gemello.events', partition: PARTITION, offset: offset++, timestamp: clock });

// Interleaved as a partition would hold them, with a notice (not an event) in between.
const log: LogRecord[] = [];
for (let i = 0; i < Math.max(aEvents.length, bEvents.length); i++) {
  if (aEvents[i]) log.push(record(encodeEvent(aEvents[i]!)));
  if (bEvents[i]) log.push(record(encodeEvent(bEvents[i]!)));
  if (i === 1) log.push(record(encodeNotice({ type: 'rejected', commandId: 'x', conversationId: A, correlationId: null, code: 'twin_not_found', message: 'no' })));
}
const positionOf = (e: EventEnvelope) => log.find((r) => JSON.parse(r.value).eventId === e.eventId)!.offset;
const firstBatch = log.slice(0, 7);
const secondBatch = log.slice(7);

// A fenced writer's event: a seq A already has, written later, by another event.
const zombie = events(A, 2, [reply(2, 'I am a zombie reply.')])[0]!;
const zombieRecord = record(encodeEvent(zombie));

// A poison record and a gap in seq, on a conversation of their own.
const C = `conv-c-${randomUUID()}`;
const [c1, , c3] = events(C, 0, [started('t', null), prompt('one'), prompt('two')]);
const badBatch = [
  record({ key: C, value: 'not json', headers: {} }),
  record(encodeEvent(c1!)),
  record(encodeEvent(c3!)), // seq 3 after seq 1: a gap
];

/** Every row the projection writes, without the columns that say when it wrote them. */
async function dump(db: Db) {
  return {
    conversations: await db.query('SELECT id, twin_id, twin_name, user_id, started_at, ended_at, metadata, state, last_seq, last_event_id, last_event_at, last_partition, last_offset FROM conversations ORDER BY id'),
    messages: await db.query('SELECT * FROM messages ORDER BY conversation_id, seq'),
    confirmed: await db.query('SELECT * FROM confirmed_data ORDER BY conversation_id, seq, key'),
    events: await db.query('SELECT * FROM events ORDER BY conversation_id, seq'),
    checkpoints: await db.query('SELECT projection, partition, next_offset FROM projection_checkpoints ORDER BY projection, partition'),
  };
}

const iso = (d: unknown) => (d === null ? null : new Date(d as string).toISOString());
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const noNul = <T,>(x: T): T => JSON.parse(JSON.stringify(x).replaceAll('\\u0000', '\uFFFD'));

for (const backend of backends) {
  describe(`read model on ${backend.name}`, () => {
    let db: Db;
    let drop: () => Promise<void>;

    beforeAll(async () => {
      ({ db, drop } = await backend.open());
    });
    afterAll(async () => {
      await drop?.();
    });

    it('applies its migrations once: a second run changes nothing', async () => {
      const all = await loadMigrations();
      expect(all.slice(0, 3).map((m) => m.name)).toEqual(['001_init.sql', '002_conversation_keys.sql', '003_key_home.sql']);
      expect(await migrate(db)).toEqual(all.map((m) => m.name));
      expect(await migrate(db)).toEqual([]);
      const rows = await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(all.map((m) => m.version));
    });

    it('turns a batch of events into rows that match the events one for one', async () => {
      // By COPY where the database has it (PostgreSQL), as the projector writes a catch-up's rows.
      const r1 = await db.tx((q) => applyBatch(q, 'readmodel', PARTITION, firstBatch, { copyRows: 1 }));
      const r2 = await db.tx((q) => applyBatch(q, 'readmodel', PARTITION, secondBatch, { copyRows: 1 }));
      expect(r1.notices + r2.notices).toBe(1);
      expect(r1.applied.length + r2.applied.length).toBe(aEvents.length + bEvents.length);
      expect(r2.nextOffset).toBe(log.length);

      const all = [...aEvents, ...bEvents];
      const rows = await dump(db);

      expect(rows.events.map((r) => ({ ...r, occurred_at: iso(r.occurred_at), log_offset: Number(r.log_offset) }))).toEqual(
        [...aEvents, ...bEvents].sort((x, y) => x.conversationId.localeCompare(y.conversationId) || x.seq - y.seq).map((e) => ({
          event_id: e.eventId, conversation_id: e.conversationId, seq: e.seq, type: e.type, schema_version: e.schemaVersion,
          occurred_at: e.occurredAt, causation_id: e.causationId, correlation_id: e.correlationId, traceparent: e.traceparent,
          data: noNul(e.data), partition: PARTITION, log_offset: positionOf(e),
        })).sort((x, y) => x.conversation_id.localeCompare(y.conversation_id) || x.seq - y.seq),
      );

      type Expected = { conversation_id: string; seq: number; role: string; content: string; model: string | null; tokens_used: number | null };
      const expectedMessages = all.flatMap((e): Expected[] => {
        if (e.type === 'PromptReceived') return [{ conversation_id: e.conversationId, seq: e.seq, role: 'user', content: e.data.text.replace('\u0000', '\uFFFD'), model: null, tokens_used: null }];
        if (e.type === 'ReplyGenerated') return [{ conversation_id: e.conversationId, seq: e.seq, role: 'assistant', content: e.data.text, model: e.data.model, tokens_used: e.data.tokens.total }];
        return [];
      });
      expect(rows.messages.map(({ conversation_id, seq, role, content, model, tokens_used }) => ({ conversation_id, seq, role, content, model, tokens_used })))
        .toEqual(expectedMessages.sort((x, y) => x.conversation_id.localeCompare(y.conversation_id) || x.seq - y.seq));
      const replyA = rows.messages.find((m) => m.conversation_id === A && m.seq === 3)!;
      expect(replyA).toMatchObject({ reply_to_seq: 2, prompt_tokens: 11, completion_tokens: 7, model_latency_ms: 42.5, metadata: { audio: { audioId: 'audio-1', format: 'mp3', durationSec: 1.5, bytes: 1234, voice: 'onyx', seq: 4 } } });

      expect(rows.confirmed.map(({ conversation_id, seq, key, value }) => ({ conversation_id, seq, key, value }))).toEqual([
        { conversation_id: A, seq: 5, key: 'age', value: 90 },
        { conversation_id: A, seq: 5, key: 'email', value: 'a@example.com' },
        { conversation_id: A, seq: 5, key: 'nothing', value: null },
        { conversation_id: A, seq: 8, key: 'email', value: 'b@example.com' },
      ]);

      for (const [id, evs] of [[A, aEvents], [B, bEvents]] as const) {
        const row = rows.conversations.find((c) => c.id === id)!;
        const last = evs[evs.length - 1]!;
        const { messages: _transcript, ...folded } = noNul(fold(id, evs));
        expect(row.state).toEqual(folded); // the transcript is the messages rows
        expect({ ...row, started_at: iso(row.started_at), last_event_at: iso(row.last_event_at), last_offset: Number(row.last_offset), state: undefined }).toEqual({
          id, twin_id: 'warren-buffett-001', twin_name: 'Warren Buffett', user_id: id === A ? 'user-1' : null, started_at: evs[0]!.occurredAt, ended_at: null,
          metadata: id === A ? { channel: 'web' } : {}, state: undefined, last_seq: last.seq, last_event_id: last.eventId, last_event_at: last.occurredAt,
          last_partition: PARTITION, last_offset: positionOf(last),
        });
      }

      const failed = await db.query('SELECT conversation_id, seq, prompt_seq, prompt, code, reason FROM failed_replies');
      expect(failed).toEqual([{ conversation_id: A, seq: 7, prompt_seq: 6, prompt: 'And with \uFFFD in it?', code: 'rate_limited', reason: 'rate limited' }]);
      const latest = await db.query('SELECT key, value FROM confirmed_data_latest WHERE conversation_id = $1 ORDER BY key', [A]);
      expect(latest).toEqual([{ key: 'age', value: 90 }, { key: 'email', value: 'b@example.com' }, { key: 'nothing', value: null }]);
    });

    it('changes nothing when the same batch comes again, with or without its checkpoint', async () => {
      const before = await dump(db);
      const again = await db.tx((q) => applyBatch(q, 'readmodel', PARTITION, log));
      expect(again).toMatchObject({ fresh: 0, applied: [] });
      expect(await dump(db)).toEqual(before);
      // Checkpoint lost: the seq rule alone keeps the rows as they are.
      await db.query('DELETE FROM projection_checkpoints');
      const replayed = await db.tx((q) => applyBatch(q, 'readmodel', PARTITION, log));
      expect(replayed).toMatchObject({ applied: [], duplicates: aEvents.length + bEvents.length });
      expect(await dump(db)).toEqual(before);
    });

    it('ignores an event whose seq the conversation already has (the first event with a seq wins)', async () => {
      const before = await dump(db);
      const r = await db.tx((q) => applyBatch(q, 'readmodel', PARTITION, [zombieRecord]));
      expect(r).toMatchObject({ applied: [], duplicates: 1, nextOffset: zombieRecord.offset + 1 });
      const after = await dump(db);
      expect(after.messages).toEqual(before.messages);
      expect(after.events).toEqual(before.events);
      expect(after.conversations).toEqual(before.conversations);
      expect((await db.query('SELECT count(*)::int AS n FROM events WHERE event_id = $1', [zombie.eventId]))[0]).toEqual({ n: 0 });
    });

    it('applies a batch delivered twice at once (a rebalance, a retry) only once', async () => {
      const D = `conv-d-${randomUUID()}`;
      const batch = events(D, 0, [started('t', null), prompt('p'), reply(2, 'r')]).map((e) => ({ ...record(encodeEvent(e)), partition: PARTITION + 4 }));
      const results = await Promise.all([1, 2, 3].map(() => db.tx((q) => applyBatch(q, 'readmodel', PARTITION + 4, batch))));
      expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, 3]);
      expect(await db.query('SELECT seq FROM events WHERE conversation_id = $1 ORDER BY seq', [D])).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
    });

    it('applies batches whose checkpoints and prior states were read ahead of their transaction (a new partition too) as it applies them read under the lock', async () => {
      const E = `conv-e-${randomUUID()}`;
      const [first, second] = [events(E, 0, [started('t', 'u'), prompt('p')]), events(E, 2, [reply(2, 'r'), prompt('q')])].map((list) => list.map((e) => ({ ...record(encodeEvent(e)), partition: PARTITION + 5 })));
      for (const records of [first!, second!]) {
        const batches = [{ partition: PARTITION + 5, records }];
        const ahead = await readAhead(db, 'readmodel', batches);
        const [r] = await db.tx((q) => applyBatches(q, 'readmodel', batches, { ahead }));
        expect(r!.applied.map((e) => e.seq)).toEqual(records.map((x) => JSON.parse(x.value).seq));
      }
      expect(await db.query('SELECT seq, role FROM messages WHERE conversation_id = $1 ORDER BY seq', [E])).toEqual([{ seq: 2, role: 'user' }, { seq: 3, role: 'assistant' }, { seq: 4, role: 'user' }]);
      const [row] = await db.query<{ last_seq: number; state: { prompts: number; replies: number } }>('SELECT last_seq, state FROM conversations WHERE id = $1', [E]);
      expect([row!.last_seq, row!.state.prompts, row!.state.replies]).toEqual([4, 2, 1]);
    });

    it('commits nothing of what it read ahead when another writer moved the checkpoint meanwhile', async () => {
      const F = `conv-f-${randomUUID()}`;
      const [first, second] = [events(F, 0, [started('t', null), prompt('p')]), events(F, 2, [reply(2, 'r'), prompt('q')])].map((list) => list.map((e) => ({ ...record(encodeEvent(e)), partition: PARTITION + 6 })));
      await db.tx((q) => applyBatch(q, 'readmodel', PARTITION + 6, first!));
      const batches = [{ partition: PARTITION + 6, records: second! }];
      const ahead = await readAhead(db, 'readmodel', batches);
      // Another writer (a redelivery, the partition's next owner) applies the same batch first.
      await db.tx((q) => applyBatches(q, 'readmodel', batches));
      await expect(db.tx((q) => applyBatches(q, 'readmodel', batches, { ahead }))).rejects.toBeInstanceOf(StaleReadAhead);
      const [r] = await db.tx((q) => applyBatches(q, 'readmodel', batches));
      expect(r!.fresh).toBe(0);
      expect(await db.query('SELECT seq FROM events WHERE conversation_id = $1 ORDER BY seq', [F])).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }]);
    });

    it('commits batches of several partitions in one transaction: every row and checkpoint, or none of them', async () => {
      const parts = [20, 21, 22];
      const ids = parts.map((p) => `conv-multi-${p}-${randomUUID()}`);
      const batches = parts.map((partition, i) => {
        const convo = [
          ...events(ids[i]!, 0, [started('t', `user-${i}`), prompt(`question ${i}`), reply(2, `answer ${i}`, true)]),
          ...events(ids[i]!, 3, [{ type: 'AudioReady', data: { replySeq: 3, audioId: `audio-m${i}`, format: 'mp3', durationSec: 1, bytes: 10, voice: 'onyx' } }]),
        ];
        return { partition, records: convo.map((e, k): LogRecord => ({ ...encodeEvent(e), topic: 'gemello.events', partition, offset: 10 + k, timestamp: clock })) };
      });
      const before = await dump(db);
      // The transaction breaks at each of its statements in turn (a crash, Postgres going
      // away): what it wrote is gone with it, for every partition.
      let statements = 0;
      for (let breakAt = 1; ; breakAt++) {
        let n = 0;
        const breaking = (q: Query): Query => ({
          exec: (script) => q.exec(script),
          query: (text, params) => (++n === breakAt ? Promise.reject(new Error('connection lost')) : q.query(text, params)),
        });
        const outcome = await db.tx((q) => applyBatches(breaking(q), 'multi', batches)).then(() => 'committed', (err: Error) => err.message);
        if (outcome === 'committed') break;
        expect(outcome).toBe('connection lost');
        expect(await dump(db)).toEqual(before);
        statements = breakAt;
      }
      expect(statements).toBeGreaterThanOrEqual(5);
      const checkpoints = await db.query("SELECT partition, next_offset FROM projection_checkpoints WHERE projection = 'multi' ORDER BY partition");
      expect(checkpoints).toEqual(parts.map((partition) => ({ partition, next_offset: 14 })));
      for (const [i, id] of ids.entries()) {
        expect(await db.query('SELECT seq FROM events WHERE conversation_id = $1 ORDER BY seq', [id])).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }]);
        const messages = await db.query<{ seq: number; metadata: { audio?: { audioId: string } } }>('SELECT seq, metadata FROM messages WHERE conversation_id = $1 ORDER BY seq', [id]);
        expect(messages.map((m) => [m.seq, m.metadata.audio?.audioId ?? null])).toEqual([[2, null], [3, `audio-m${i}`]]);
      }

      // Delivered again, one partition a record further: that record alone is applied.
      const applied = await dump(db);
      const next = events(ids[1]!, 4, [prompt('one more')])[0]!;
      const again = [batches[0]!, { ...batches[1]!, records: [...batches[1]!.records, { ...encodeEvent(next), topic: 'gemello.events', partition: 21, offset: 14, timestamp: clock }] }, batches[2]!];
      const results = await db.tx((q) => applyBatches(q, 'multi', again));
      expect(results.map((r) => [r.fresh, r.applied.map((e) => e.seq), r.nextOffset])).toEqual([[0, [], 14], [1, [5], 15], [0, [], 14]]);
      const now = await dump(db);
      expect([now.events.length, now.messages.length]).toEqual([applied.events.length + 1, applied.messages.length + 1]);
      await expect(db.tx((q) => applyBatches(q, 'multi', [batches[0]!, batches[0]!]))).rejects.toThrow(/one batch per partition/);
    });

    it('applies a catch-up batch of many conversations exactly once, across a crash at each statement and a redelivery that overlaps it', async () => {
      const parts = [30, 31];
      const convs = Array.from({ length: 24 }, (_, i) => ({ id: `conv-bulk-${i}-${randomUUID()}`, partition: parts[i % 2]! }));
      const all = new Map(convs.map((c) => [c.id, [
        ...events(c.id, 0, [started('t', `user-${c.id.slice(10, 12)}`), prompt(`question of ${c.id}`)], `cmd-${c.id}-1`),
        ...events(c.id, 2, [reply(2, 'an answer'), { type: 'DataConfirmed', data: { data: { n: 1 }, requestId: null } }, prompt('again')], `cmd-${c.id}-2`),
        ...events(c.id, 5, [reply(5, 'once more')], `cmd-${c.id}-3`),
      ]]));
      // Each partition as the log holds it: the conversations interleaved, and an unreadable record in the first half.
      const logOf = (partition: number): LogRecord[] => {
        const mine = convs.filter((c) => c.partition === partition);
        const out: LogRecord[] = [];
        for (let k = 0; k < 6; k++) {
          for (const c of mine) out.push({ ...encodeEvent(all.get(c.id)![k]!), topic: 'gemello.events', partition, offset: out.length, timestamp: clock });
          if (k === 1) out.push({ key: 'x', value: 'not json', headers: {}, topic: 'gemello.events', partition, offset: out.length, timestamp: clock });
        }
        // Records keyed otherwise than their conversation (not what gemello writes) still find its state.
        return out.map((r) => (r.value.includes(mine[0]!.id) ? { ...r, key: 'keyed-otherwise' } : r));
      };
      const logs = parts.map(logOf);
      const half = logs.map((l) => l.slice(0, Math.floor(l.length / 2)));
      const first = await db.tx((q) => applyBatches(q, 'bulk', parts.map((partition, i) => ({ partition, records: half[i]! }))));
      expect(first.flatMap((r) => r.rejected.map((x) => x.kind))).toEqual(['undecodable', 'undecodable']);
      const before = await dump(db);
      // The whole partitions delivered again (a rebalance after the first half committed), breaking at each statement in turn.
      const again = parts.map((partition, i) => ({ partition, records: logs[i]! }));
      for (let breakAt = 1; ; breakAt++) {
        let n = 0;
        const breaking = (q: Query): Query => ({
          exec: (script) => q.exec(script),
          query: (text, params) => (++n === breakAt ? Promise.reject(new Error('connection lost')) : q.query(text, params)),
          ...(q.copyIn && { copyIn: (statement: string, data: string) => (++n === breakAt ? Promise.reject(new Error('connection lost')) : q.copyIn!(statement, data)) }),
        });
        // As the projector commits (without waiting for the WAL flush, its rows by COPY where there is COPY): the same all-or-nothing.
        const outcome = await db.tx((q) => applyBatches(breaking(q), 'bulk', again, { lazyCommit: true, copyRows: 1 })).then((r) => r, (err: Error) => err.message);
        if (typeof outcome !== 'string') {
          // Only the second half is fresh; the unreadable record before the checkpoint is not reported again.
          expect(outcome.map((r) => [r.fresh, r.rejected.length, r.nextOffset])).toEqual(logs.map((l, i) => [l.length - half[i]!.length, 0, l.length]));
          break;
        }
        expect(outcome).toBe('connection lost');
        expect(await dump(db)).toEqual(before);
      }
      const source = createReadModelStateSource(db, 'bulk');
      for (const c of convs) {
        const snap = await source.stateOf(c.id);
        expect(snap?.state).toEqual(fold(c.id, all.get(c.id)!));
        expect(await db.query('SELECT seq FROM events WHERE conversation_id = $1 ORDER BY seq', [c.id])).toEqual([1, 2, 3, 4, 5, 6].map((seq) => ({ seq })));
        expect((await db.query('SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq', [c.id])).map((m) => (m as { seq: number }).seq)).toEqual([2, 3, 5, 6]);
      }
    });

    it('writes texts as they are, whatever characters they hold', async () => {
      const texts = [
        // Packed in one text parameter (what the separators are not).
        ['tab\there, new line\nthere, \r\n, backslash \\ and \\N, quotes \'"', 'NUL \u0000 and a lone \ud800, ∑ 😀'],
        // Holding the separators of the packed rows: sent as JSON instead.
        ['record \u001e field \u001f null \u0015', '\u0015'],
      ];
      // Packed (or as JSON), and by COPY where the database has it.
      for (const [i, [q, a, copyRows]] of texts.flatMap(([q, a]) => [[q, a, 0], [q, a, 1]] as const).entries()) {
        const id = `conv-chars-${i}-${randomUUID()}`;
        // Keys hold them too: a client's metadata and confirmed data name their own fields.
        const mine = events(id, 0, [started('t', null, { note: q, [a!]: q }), prompt(q!), reply(2, a!), { type: 'DataConfirmed', data: { data: { said: a, [a!]: q }, requestId: a! } }], q);
        const records = mine.map((e, k): LogRecord => ({ ...encodeEvent(e), topic: 'gemello.events', partition: 41 + i, offset: k, timestamp: clock }));
        const r = await db.tx((tx) => applyBatch(tx, 'readmodel', 41 + i, records, { copyRows }));
        expect(r.applied).toHaveLength(4);
        const stored = (s: string) => s.toWellFormed().replaceAll('\u0000', '\uFFFD');
        expect(await db.query('SELECT seq, content, request_id FROM messages WHERE conversation_id = $1 ORDER BY seq', [id]))
          .toEqual([{ seq: 2, content: stored(q!), request_id: 'r1' }, { seq: 3, content: stored(a!), request_id: null }]);
        const rows = await db.query<{ seq: number; causation_id: string; data: Record<string, unknown> }>('SELECT seq, causation_id, data FROM events WHERE conversation_id = $1 ORDER BY seq', [id]);
        expect(rows.map((e) => e.causation_id)).toEqual(mine.map(() => stored(q!)));
        expect(rows.map((e) => e.data)).toEqual(mine.map((e) => noNul(JSON.parse(JSON.stringify(e.data, (_k, v) => (typeof v === 'string' ? v.toWellFormed() : isPlainObject(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k.toWellFormed(), x])) : v))))));
        const conversation = await db.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM conversations WHERE id = $1', [id]);
        expect(conversation[0]!.metadata).toEqual({ note: stored(q!), [stored(a!)]: stored(q!) });
        const confirmed = await db.query<{ key: string }>('SELECT key FROM confirmed_data WHERE conversation_id = $1 ORDER BY key', [id]);
        expect(confirmed.map((c) => c.key).sort()).toEqual([stored(a!), 'said'].sort());
      }
    });

    it('stores the same values by COPY (binary where it can) as by INSERT: timestamps far from 2000, large offsets, fractional latencies, no text', async () => {
      const at = ['1000-01-01T00:00:00.000Z', '2999-12-31T23:59:59.999Z', '2024-02-29T12:34:56.789Z', 'not a time'];
      const stored: unknown[] = [];
      for (const copyRows of [0, 1]) {
        const id = `conv-values-${copyRows}-${randomUUID()}`;
        const mine = events(id, 0, [started('t', null), prompt('p'), { ...reply(2, 'r'), data: { ...reply(2, 'r').data, latencyMs: 0.1 + 0.2 } } as DomainEvent, prompt('q')]);
        const records = mine.map((e, k): LogRecord => ({ ...encodeEvent({ ...e, occurredAt: at[k]! }), topic: 'gemello.events', partition: 43, offset: 2 ** 40 + k, timestamp: clock }));
        expect((await db.tx((tx) => applyBatch(tx, `values_${copyRows}`, 43, records, { copyRows }))).applied).toHaveLength(4);
        const events_ = await db.query<{ occurred_at: unknown; log_offset: unknown; event_id: string }>('SELECT occurred_at, log_offset, event_id FROM events WHERE conversation_id = $1 ORDER BY seq', [id]);
        const messages = await db.query<{ created_at: unknown; model_latency_ms: unknown; tokens_used: unknown; reply_to_seq: unknown; event_id: string }>(
          'SELECT created_at, model_latency_ms, tokens_used, reply_to_seq, event_id FROM messages WHERE conversation_id = $1 ORDER BY seq', [id]);
        expect(events_.map((e) => e.event_id)).toEqual(mine.map((e) => e.eventId));
        expect(messages.map((m) => m.event_id)).toEqual(mine.filter((e) => e.type === 'PromptReceived' || e.type === 'ReplyGenerated').map((e) => e.eventId));
        stored.push({ events: events_.map((e) => ({ at: iso(e.occurred_at), offset: Number(e.log_offset) })), messages: messages.map(({ event_id: _id, ...m }) => ({ ...m, created_at: iso(m.created_at) })) });
      }
      expect(stored[1]).toEqual(stored[0]);
      expect(stored[0]).toEqual({
        events: [...at.slice(0, 3), null].map((a, k) => ({ at: a, offset: 2 ** 40 + k })),
        messages: [
          { created_at: at[1], model_latency_ms: null, tokens_used: null, reply_to_seq: null },
          { created_at: at[2], model_latency_ms: 0.1 + 0.2, tokens_used: 18, reply_to_seq: 2 },
          { created_at: null, model_latency_ms: null, tokens_used: null, reply_to_seq: null },
        ],
      });
    });

    it('finds rows of its batch already there (another projection on the same tables) and keeps them as they are', async () => {
      const id = `conv-twice-${randomUUID()}`;
      const mine = events(id, 0, [started('t', null), prompt('once'), reply(2, 'only once')], 'cmd-twice');
      const records = mine.map((e, i): LogRecord => ({ ...encodeEvent(e), topic: 'gemello.events', partition: 40, offset: i, timestamp: clock }));
      await db.tx((q) => applyBatch(q, 'first', 40, records));
      const rows = async () => ({
        events: await db.query('SELECT * FROM events WHERE conversation_id = $1 ORDER BY seq', [id]),
        messages: await db.query('SELECT * FROM messages WHERE conversation_id = $1 ORDER BY seq', [id]),
      });
      const before = await rows();
      // The conversation's row gone (as if never projected here): a second projection plans its events again.
      await db.query('DELETE FROM conversations WHERE id = $1', [id]);
      if (db.kind === 'postgres') {
        // By COPY (no ON CONFLICT), the transaction fails, and leaves the rows as they are (the projector tries again without COPY).
        await expect(db.tx((q) => applyBatch(q, 'second', 40, records, { copyRows: 1 }))).rejects.toThrow();
        expect(await rows()).toEqual(before);
      }
      const r = await db.tx((q) => applyBatch(q, 'second', 40, records));
      expect(r.rejected).toEqual([]);
      expect(r.nextOffset).toBe(records.length);
      expect(await rows()).toEqual(before);
      expect(await db.query('SELECT last_seq FROM conversations WHERE id = $1', [id])).toEqual([{ last_seq: 3 }]);
    });

    it('leaves out, and reports, records it cannot apply without stopping the partition', async () => {
      const r = await db.tx((q) => applyBatch(q, 'gaps', PARTITION, badBatch));
      expect(r.rejected.map((x) => x.kind)).toEqual(['undecodable', 'seq_gap']);
      expect(r.applied.map((e) => e.seq)).toEqual([1]);
      expect(r.nextOffset).toBe(badBatch[2]!.offset + 1);
      expect((await createReadModelStateSource(db).stateOf(C))?.seq).toBe(1);
    });

    it('serves a conversation\'s projected state and what the projection covers as a recovery tier', async () => {
      const source = createReadModelStateSource(db);
      const snap = await source.stateOf(A);
      const last = aEvents[aEvents.length - 1]!;
      expect(snap).toEqual({ conversationId: A, seq: last.seq, eventId: last.eventId, position: { partition: PARTITION, offset: positionOf(last) }, state: noNul(fold(A, aEvents)) });
      expect(await source.stateOf('nobody')).toBeNull();
      expect(await source.coveredUntil(PARTITION)).toBe(zombieRecord.offset + 1);
      expect(await source.coveredUntil(PARTITION + 1)).toBeNull();
      expect(await createReadModelStateSource(db, 'other').coveredUntil(PARTITION)).toBeNull();
    });

    it('synthesises audio once per text and voice, and serves it with its content type', async () => {
      const cache = createAudioCache(db);
      let calls = 0;
      const synthesize = async () => {
        calls++;
        return { bytes: new Uint8Array([0x49, 0x44, 0x33, 0, 255, calls]), format: 'mp3', contentType: 'audio/mpeg', durationSec: 2.25 };
      };
      const first = await cache.store({ text: 'A durable advantage.', voice: 'onyx', synthesize });
      const second = await cache.store({ text: 'A durable advantage.', voice: 'onyx', synthesize });
      const other = await cache.store({ text: 'A durable advantage.', voice: 'alloy', synthesize });
      expect(first).toMatchObject({ format: 'mp3', durationSec: 2.25, bytes: 6, cached: false });
      // Synthesised now: the audio comes back with it; a hit leaves it to load.
      const { speech, ...stored } = first;
      expect(speech?.bytes).toEqual(new Uint8Array([0x49, 0x44, 0x33, 0, 255, 1]));
      expect(second).toEqual({ ...stored, cached: true });
      expect(await cache.load(first.audioId)).toMatchObject({ format: 'mp3', contentType: 'audio/mpeg', durationSec: 2.25, bytes: new Uint8Array([0x49, 0x44, 0x33, 0, 255, 1]) });
      expect(await cache.load('no-such-audio')).toBeNull();
      expect(other.audioId).not.toBe(first.audioId);
      expect(calls).toBe(2);

      // Two processes storing the same new text at once: one row, one id for both.
      const [x, y] = await Promise.all([
        createAudioCache(db).store({ text: 'race', voice: 'onyx', synthesize }),
        createAudioCache(db).store({ text: 'race', voice: 'onyx', synthesize }),
      ]);
      expect(x.audioId).toBe(y.audioId);
      expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audio_cache WHERE voice = 'onyx'"))[0]!.n).toBe(2);

      const api = createReadApi(db);
      const audio = await api.getAudio(first.audioId);
      expect(audio).toMatchObject({ id: first.audioId, contentType: 'audio/mpeg', format: 'mp3', durationSec: 2.25, voice: 'onyx' });
      expect([...audio!.bytes]).toEqual([0x49, 0x44, 0x33, 0, 255, 1]);
      const [row] = await db.query<{ hits: number; size_bytes: number }>('SELECT hits, size_bytes FROM audio_cache WHERE id = $1', [first.audioId]);
      expect(row).toEqual({ hits: 2, size_bytes: 6 });
      expect(await api.getAudio('no-such-audio')).toBeNull();
    });

    it('drops a reply\'s audio that two conversations shared once the second of them is erased, not before', async () => {
      const cache = createAudioCache(db);
      const shared = await cache.store({ text: 'Said twice.', voice: 'onyx', synthesize: async () => ({ bytes: new Uint8Array([1, 2, 3]), format: 'mp3', contentType: 'audio/mpeg', durationSec: 1 }) });
      const [d1, d2] = [`conv-d1-${randomUUID()}`, `conv-d2-${randomUUID()}`];
      const said = (id: string) => events(id, 0, [started('warren-buffett-001', null), prompt('Say it'), reply(2, 'Said twice.', true), { type: 'AudioReady', data: { replySeq: 3, audioId: shared.audioId, format: 'mp3', durationSec: 1, bytes: 3, voice: 'onyx' } }]);
      const erased = (id: string): DomainEvent[] => [{ type: 'ConversationErased', data: { by: 'ops', via: 'api', reason: null, prompts: 1, replies: 1, confirmedFields: 0 } }];
      const apply = (envs: EventEnvelope[]) => db.tx((q) => applyBatch(q, 'shared-audio', PARTITION, envs.map((e) => record(encodeEvent(e)))));
      await apply([...said(d1), ...said(d2)]);
      const kept = async () => (await createReadApi(db).getAudio(shared.audioId)) !== null;
      await apply(events(d1, 4, erased(d1)));
      expect(await kept()).toBe(true); // the other conversation still has it
      await apply(events(d2, 4, erased(d2)));
      expect(await kept()).toBe(false);
    });

    it('removes again what a database backup older than an erasure brought back: the erased conversation\'s speech and kept voice, not the speech another one uses', async () => {
      const cache = createAudioCache(db);
      const speech = async () => ({ bytes: new Uint8Array([7]), format: 'mp3', contentType: 'audio/mpeg', durationSec: 1 });
      const [gone, stays] = [`conv-r1-${randomUUID()}`, `conv-r2-${randomUUID()}`];
      const apply = (envs: EventEnvelope[]) => db.tx((q) => applyBatch(q, 'restored', PARTITION, envs.map((e) => record(encodeEvent(e)))));
      await apply([...events(gone, 0, [started('t', null), prompt('p'), reply(2, 'Only mine.', true)]), ...events(stays, 0, [started('t', null), prompt('p'), reply(2, 'Ours.', true)])]);
      await apply(events(gone, 3, [{ type: 'ConversationErased', data: { by: 'ops', via: 'api', reason: null, prompts: 1, replies: 1, confirmedFields: 0 } }]));
      // The backup's rows, as the restore finds them: a clip only the erased conversation used, one both used, and its kept voice.
      const mine = await cache.store({ text: 'Only mine.', voice: 'onyx', synthesize: speech, conversationId: gone });
      const ours = await cache.store({ text: 'Ours.', voice: 'onyx', synthesize: speech, conversationId: gone });
      await cache.store({ text: 'Ours.', voice: 'onyx', synthesize: speech, conversationId: stays });
      await db.query(`INSERT INTO voice_clips (id, conversation_id, format, content_type, sealed_audio, duration_seconds, size_bytes) VALUES ($1, $2, 'wav', 'audio/wav', '\\x00'::bytea, 1, 1)`, [randomUUID(), gone]);
      const removed = await db.tx((q) => eraseKeptCopies(q, [gone]));
      expect(removed).toBe(4); // one clip, two uses, one kept utterance
      expect(await cache.load(mine.audioId)).toBeNull();
      expect(await cache.load(ours.audioId)).not.toBeNull();
      expect(await db.query('SELECT 1 FROM voice_clips WHERE conversation_id = $1', [gone])).toEqual([]);
      expect(await db.tx((q) => eraseKeptCopies(q, [gone]))).toBe(0);
    });

    it('erases a conversation from the tables a rebuild set aside too (<schema>_old_<time>), leaving the others there', async () => {
      const schema = (await db.query<{ schema: string }>('SELECT current_schema() AS schema'))[0]!.schema;
      const old = `${schema}_old_20260101_000000`;
      const [gone, stays] = [`conv-o1-${randomUUID()}`, `conv-o2-${randomUUID()}`];
      const apply = (envs: EventEnvelope[]) => db.tx((q) => applyBatch(q, 'old-schemas', PARTITION, envs.map((e) => record(encodeEvent(e)))));
      await apply([...events(gone, 0, [started('t', null), prompt('my secret'), { type: 'DataConfirmed', data: { data: { email: 'x@example.com' }, requestId: null } }]), ...events(stays, 0, [started('t', null), prompt('kept')])]);
      // What a rebuild leaves: the tables as they were, beside the live ones.
      await db.exec(`CREATE SCHEMA "${old}"`);
      for (const t of ['conversations', 'messages', 'confirmed_data', 'events']) await db.exec(`CREATE TABLE "${old}".${t} AS SELECT * FROM "${schema}".${t}`);
      try {
        await apply(events(gone, 3, [{ type: 'ConversationErased', data: { by: 'ops', via: 'api', reason: null, prompts: 1, replies: 0, confirmedFields: 1 } }]));
        const left = async (t: string, column = 'conversation_id') => (await db.query<{ id: string }>(`SELECT DISTINCT ${column} AS id FROM "${old}".${t} WHERE ${column} IN ($1, $2)`, [gone, stays])).map((r) => r.id);
        expect(await left('messages')).toEqual([stays]);
        expect(await left('confirmed_data')).toEqual([]);
        expect(await left('events')).toEqual([stays]);
        expect(await left('conversations', 'id')).toEqual([stays]);
      } finally {
        await db.exec(`DROP SCHEMA "${old}" CASCADE`);
      }
    });

    it('answers the HTTP API\'s reads: twins, a conversation, its events', async () => {
      const api = createReadApi(db);
      const twin = { id: 'warren-buffett-001', name: 'Warren Buffett', systemPrompt: 'Be Warren.', model: 'ft:x', voiceId: 'onyx' };
      await api.upsertTwins([twin, { id: 'ada', name: 'Ada Lovelace', systemPrompt: '', model: 'gpt-4.1-nano', voiceId: 'alloy' }]);
      const [before] = await api.listTwins();
      await api.upsertTwins([twin]);
      const twins = await api.listTwins();
      expect(twins.map((t) => t.name)).toEqual(['Ada Lovelace', 'Warren Buffett']);
      expect(twins[1]).toMatchObject(twin);
      expect(twins[0]!.updatedAt).toBe(before!.updatedAt);
      await api.upsertTwins([{ ...twin, systemPrompt: 'Be brief.' }]);
      expect((await api.listTwins())[1]!.systemPrompt).toBe('Be brief.');

      const c = await api.getConversation(A);
      expect(c).toMatchObject({
        id: A, twinId: 'warren-buffett-001', userId: 'user-1', startedAt: aEvents[0]!.occurredAt, endedAt: null, metadata: { channel: 'web' },
        lastSeq: 8, pendingPrompts: [], failedReplies: 1,
        confirmedData: { email: 'b@example.com', age: 90, nothing: null },
      });
      expect(c!.messages.map((m) => [m.seq, m.role, m.content])).toEqual([[2, 'user', 'What is a moat?'], [3, 'assistant', 'A durable advantage.'], [6, 'user', 'And with \uFFFD in it?']]);
      expect(c!.messages[1]).toMatchObject({ replyToSeq: 2, tokensUsed: 18, model: 'gpt-4.1-nano', modelLatencyMs: 42.5, metadata: { audio: { audioId: 'audio-1' } } });
      expect(c!.confirmations).toHaveLength(4);
      expect(await api.getConversation('nobody')).toBeNull();

      const evs = await api.getEvents(A, 5);
      expect(evs.map((e) => e.seq)).toEqual([6, 7, 8]);
      expect(evs[2]).toEqual({ ...aEvents[7], position: { partition: PARTITION, offset: positionOf(aEvents[7]!) } });
      expect(await api.getEvents(A)).toHaveLength(aEvents.length);
    });
  });
}
