import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fold } from '../../actors/state.ts';
import { decodeEvent, encodeEvent, encodeNotice, envelope, isEventRecord } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import { kafkaLog } from '../support/kafka.ts';
import { partitionFor } from '../../log/partition.ts';
import { TOPICS } from '../../log/port.ts';
import type { EventLog } from '../../log/port.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import { migrate } from '../../projections/migrate.ts';
import { createProjector } from '../../projections/projector.ts';
import { resetReadModel } from '../../projections/reset.ts';
import type { Projector } from '../../projections/projector.ts';
import type { Db } from '../../stores/sql.ts';
import { createReadModelStateSource } from '../../projections/state-source.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { pgProxy } from '../support/pg-proxy.ts';
import { testKeyStore } from '../support/keys.ts';

const BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PARTITIONS = 12;

let clock = Date.now();
const twin = { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: 'u', metadata: {} };
const meta = () => ({ causationId: randomUUID(), correlationId: null, traceparent: null, now: new Date(++clock), newId: randomUUID });

/** A few turns of a conversation: started, then prompt/reply pairs, one confirmation. */
function conversation(id: string, turns: number): EventEnvelope[] {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: twin }];
  for (let i = 0; i < turns; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `question ${i}`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `answer ${i}`, model: 'm', tokens: { prompt: 1, completion: 2, total: 3 }, latencyMs: 4, audio: false } });
  }
  domain.push({ type: 'DataConfirmed', data: { data: { turns }, requestId: null } });
  return envelope(id, 0, domain, meta());
}

async function appendAll(log: EventLog, events: EventEnvelope[]) {
  const byPartition = new Map<number, EventEnvelope[]>();
  for (const e of events) {
    const p = partitionFor(e.conversationId, PARTITIONS);
    byPartition.set(p, [...(byPartition.get(p) ?? []), e]);
  }
  await Promise.all([...byPartition].map(([p, list]) => log.append(TOPICS.events, p, list.map(encodeEvent))));
}

/** Every event in the log, by conversation, as a reader applying the log rule sees them. */
async function readLog(log: EventLog) {
  const byConversation = new Map<string, LoggedEvent[]>();
  for (let p = 0; p < PARTITIONS; p++) {
    await log.read(TOPICS.events, p, 0, (records) => {
      for (const r of records) {
        if (!isEventRecord(r)) continue;
        const e = decodeEvent(r);
        const list = byConversation.get(e.conversationId) ?? [];
        if (e.seq === list.length + 1) list.push(e); // the first event with a seq wins
        byConversation.set(e.conversationId, list);
      }
    });
  }
  return byConversation;
}

/** Compares the read model to the log, conversation by conversation and row by row. */
async function expectRowsMatchLog(db: Db, log: EventLog) {
  const expected = await readLog(log);
  const events = await db.query<{ event_id: string; conversation_id: string; seq: number; type: string; partition: number; log_offset: number }>(
    'SELECT event_id, conversation_id, seq, type, partition, log_offset FROM events ORDER BY conversation_id, seq',
  );
  expect(events).toEqual(
    [...expected.values()].flat().sort((a, b) => a.conversationId.localeCompare(b.conversationId) || a.seq - b.seq)
      .map((e) => ({ event_id: e.eventId, conversation_id: e.conversationId, seq: e.seq, type: e.type, partition: e.position.partition, log_offset: e.position.offset })),
  );
  const messages = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages');
  expect(messages[0]!.n).toBe([...expected.values()].flat().filter((e) => e.type === 'PromptReceived' || e.type === 'ReplyGenerated').length);
  const source = createReadModelStateSource(db);
  for (const [id, list] of expected) {
    const snap = await source.stateOf(id);
    expect(snap?.state).toEqual(fold(id, list));
    expect(snap?.position).toEqual(list[list.length - 1]!.position);
  }
  return expected;
}

describe('projector on Kafka and PostgreSQL', () => {
  const namespace = `test-projector-${randomUUID().slice(0, 8)}-`;
  const schema = `projector_kafka_${randomUUID().replaceAll('-', '')}`;
  let log: EventLog;
  let proxy: Awaited<ReturnType<typeof pgProxy>>;
  let db: Db;
  let projector: Projector | null = null;
  const metrics = createMetrics();
  const ids = Array.from({ length: 24 }, (_, i) => `conv-${i}-${randomUUID()}`);

  beforeAll(async () => {
    log = kafkaLog({ brokers: BROKERS, partitions: PARTITIONS, namespace });
    await log.ensureTopics([TOPICS.events]);
    proxy = await pgProxy(new URL(PG_URL));
    db = createPostgresDb({ url: proxy.url, schema, connectTimeout: 2 });
    await migrate(db);
  });

  afterAll(async () => {
    await projector?.stop();
    await log?.close();
    await db?.close();
    await proxy?.close();
    const admin = postgres(PG_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  it('projects what is in the log: the rows match the events, the state matches their fold', async () => {
    await appendAll(log, ids.flatMap((id, i) => conversation(id, 1 + (i % 4))));
    // Not events: notices share the topic. A fenced writer's late duplicate of seq 2.
    const dupOf = ids[0]!;
    await log.append(TOPICS.events, partitionFor(dupOf, PARTITIONS), [
      encodeNotice({ type: 'rejected', commandId: 'c', conversationId: dupOf, correlationId: null, code: 'x', message: 'no' }),
      encodeEvent(envelope(dupOf, 1, [{ type: 'PromptReceived', data: { text: 'zombie', requestId: null } }], meta())[0]!),
    ]);

    projector = createProjector({ log, db, keys: testKeyStore(log, db), metrics });
    await projector.start();
    await projector.caughtUp({ timeoutMs: 30_000 });
    const expected = await expectRowsMatchLog(db, log);
    expect(expected.size).toBe(ids.length);
    expect((await db.query('SELECT content FROM messages WHERE conversation_id = $1 AND seq = 2', [dupOf]))[0]).toEqual({ content: 'question 0' });
    expect(metrics.value('gemello_projection_events_total', { projection: 'readmodel' })).toBe([...expected.values()].flat().length);
    expect(metrics.render()).toMatch(/gemello_projection_lag_ms_count\{projection="readmodel"\} \d+/);
  });

  it('rides out a Postgres outage: batches fail, the log delivers them again, nothing is lost or doubled', async () => {
    const more = ids.slice(0, 8).map((id) => `${id}-late`);
    await proxy.down();
    const failuresBefore = metrics.value('gemello_projection_failures_total', { projection: 'readmodel' });
    await appendAll(log, more.flatMap((id) => conversation(id, 2)));
    // Long enough for the projector's own retries to run out and the log to redeliver.
    const outageMs = 4_000;
    await new Promise((r) => setTimeout(r, outageMs));
    expect(metrics.value('gemello_projection_failures_total', { projection: 'readmodel' })).toBeGreaterThan(failuresBefore);
    await proxy.up();
    const t0 = Date.now();
    await projector!.caughtUp({ timeoutMs: 45_000 });
    console.log(`projector caught up ${Date.now() - t0} ms after Postgres came back (outage ${outageMs} ms)`);
    const expected = await expectRowsMatchLog(db, log);
    expect(expected.size).toBe(ids.length + more.length);
  });

  it('resumes from its checkpoints after a restart, without applying anything twice', async () => {
    await projector!.stop();
    const before = metrics.value('gemello_projection_events_total', { projection: 'readmodel' });
    const late = `conv-after-restart-${randomUUID()}`;
    await appendAll(log, conversation(late, 1));
    projector = createProjector({ log, db, keys: testKeyStore(log, db), metrics });
    await projector.start();
    await projector.caughtUp({ timeoutMs: 30_000 });
    expect(metrics.value('gemello_projection_events_total', { projection: 'readmodel' }) - before).toBe(4);
    await expectRowsMatchLog(db, log);
  });

  it('rebuilds from offset 0 after a reset, although the consumer group has committed the end', async () => {
    await projector!.stop();
    await resetReadModel(db);
    expect(await db.query('SELECT * FROM events')).toEqual([]);
    const warnings: string[] = [];
    const logger = { info() {}, warn: (m: string) => void warnings.push(m), error: (m: string) => void warnings.push(m) };
    projector = createProjector({ log, db, keys: testKeyStore(log, db), idleCheckMs: 500, logger });
    await projector.start();
    // New events reach a partition that has events already (the group delivers them: a hole
    // before them is read from the log); the others get nothing from the group and are read
    // when found idle. On a partition the group never consumed, it would deliver from 0.
    const before = await log.endOffsets(TOPICS.events);
    let id = `conv-after-reset-${randomUUID()}`;
    while (!before[partitionFor(id, PARTITIONS)]) id = `conv-after-reset-${randomUUID()}`;
    await appendAll(log, conversation(id, 1));
    await projector.caughtUp({ timeoutMs: 40_000 });
    const expected = await expectRowsMatchLog(db, log);
    expect(expected.size).toBe(ids.length + 8 + 2);
    const filled = new Set(warnings.flatMap((w) => /^partition (\d+): the read model stops at offset 0/.exec(w)?.[1] ?? []));
    const ends = await log.endOffsets(TOPICS.events);
    expect(filled).toEqual(new Set(ends.flatMap((end, p) => (end > 0 ? [String(p)] : []))));
  });
});
