import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fold } from '../../actors/state.ts';
import { encodeEvent, envelope } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';
import { createFileLog } from '../../log/file.ts';
import { partitionFor } from '../../log/partition.ts';
import { TOPICS } from '../../log/port.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { createPGliteDb } from '../../stores/db-pglite.ts';
import { migrate } from '../../projections/migrate.ts';
import { createProjector } from '../../projections/projector.ts';
import { createReadApi } from '../../projections/queries.ts';
import type { Db } from '../../stores/sql.ts';
import { createReadModelStateSource } from '../../projections/state-source.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { testKeyStore } from '../support/keys.ts';

const PARTITIONS = 4;
const dir = mkdtempSync(join(tmpdir(), 'gemello-projector-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function conversation(id: string, turns: number): EventEnvelope[] {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: null, metadata: {} } }];
  for (let i = 0; i < turns; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `q${i}`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `a${i}`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } });
  }
  return envelope(id, 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
}

async function append(log: EventLog, events: EventEnvelope[]) {
  for (const e of events) await log.append(TOPICS.events, partitionFor(e.conversationId, PARTITIONS), [encodeEvent(e)]);
}

/** A database whose first `n` transactions fail, as while Postgres restarts. */
function flaky(db: Db, n: number): Db {
  let left = n;
  return { ...db, tx: (fn) => (left-- > 0 ? Promise.reject(new Error('connection refused (simulated)')) : db.tx(fn)) };
}

/** A database whose first `n` transactions never settle, as on a connection dead without a word. */
function hanging(db: Db, n: number): Db {
  let left = n;
  return { ...db, tx: (fn) => (left-- > 0 ? new Promise<never>(() => {}) : db.tx(fn)) };
}

describe('projector on the embedded backends (file log, PGlite on disk)', () => {
  it('reads from the log a stretch a later batch skipped (a batch fetched before a rebalance, records dropped while a partition moved), so nothing is left out', async () => {
    const log = createFileLog({ dir: join(dir, 'log-skip'), partitions: PARTITIONS });
    const db = createPGliteDb();
    await migrate(db);
    const events = conversation(`conv-skip-${randomUUID()}`, 4);
    await append(log, events);
    const p = partitionFor(events[0]!.conversationId, PARTITIONS);
    const records: LogRecord[] = [];
    await log.read(TOPICS.events, p, 0, async (rs) => void records.push(...rs));
    // The group hands over the first three records, then a batch that starts two records later.
    const skipping: EventLog = {
      ...log,
      consume: async (opts) => {
        const delivering = (async () => {
          await opts.onAssigned?.([p]);
          await opts.handle(p, records.slice(0, 3));
          await opts.handle(p, records.slice(5));
        })();
        return { stop: () => delivering };
      },
    };
    const metrics = createMetrics();
    const projector = createProjector({ log: skipping, db, keys: testKeyStore(log, db), metrics });
    await projector.start();
    try {
      await projector.caughtUp({ timeoutMs: 20_000 });
    } finally {
      await projector.stop();
    }
    expect(metrics.value('gemello_projection_rejected_total', { projection: 'readmodel', kind: 'seq_gap' })).toBe(0);
    expect((await createReadModelStateSource(db).stateOf(events[0]!.conversationId))?.state).toEqual(fold(events[0]!.conversationId, events));
    await db.close();
    await log.close();
  });

  it('a transaction that never settles is given up and retried: the projection catches up', async () => {
    const log = createFileLog({ dir: join(dir, 'log-hang'), partitions: PARTITIONS });
    const db = createPGliteDb();
    await migrate(db);
    const events = conversation(`conv-hang-${randomUUID()}`, 3);
    await append(log, events);
    const metrics = createMetrics();
    const projector = createProjector({ log, db: hanging(db, 2), keys: testKeyStore(log, db), metrics, txTimeoutMs: 300 });
    await projector.start();
    try {
      await projector.caughtUp({ timeoutMs: 20_000 });
    } finally {
      await projector.stop();
    }
    expect(metrics.value('gemello_projection_failures_total', { projection: 'readmodel' })).toBe(2);
    expect(metrics.value('gemello_projection_events_total', { projection: 'readmodel' })).toBe(events.length);
    expect((await createReadModelStateSource(db).stateOf(events[0]!.conversationId))?.state).toEqual(fold(events[0]!.conversationId, events));
    await db.close();
    await log.close();
  });

  it('caughtUp waits out a database that is away when it asks (not an error in the statement itself), instead of failing before its timeout', async () => {
    const log = createFileLog({ dir: join(dir, 'log-away'), partitions: PARTITIONS });
    const db = createPGliteDb();
    await migrate(db);
    let failing = 0;
    // As the postgres package reports a connection that timed out.
    let failure: { message: string; code: string; severity?: string } = { message: 'write CONNECT_TIMEOUT 127.0.0.1:5432', code: 'CONNECT_TIMEOUT' };
    const asked: string[] = [];
    const away: Db = {
      ...db,
      query: (text, params) => {
        if (failing > 0 && text.includes('FROM projection_checkpoints')) {
          failing--;
          asked.push(text);
          return Promise.reject(Object.assign(new Error(failure.message), failure));
        }
        return db.query(text, params);
      },
    };
    const projector = createProjector({ log, db: away, keys: testKeyStore(log, db) });
    await projector.start();
    const events = conversation(`conv-away-${randomUUID()}`, 2);
    await append(log, events);
    failing = 3;
    try {
      await projector.caughtUp({ timeoutMs: 20_000 });
    } finally {
      await projector.stop();
    }
    expect(asked).toHaveLength(3);
    expect((await createReadModelStateSource(db).stateOf(events[0]!.conversationId))?.state).toEqual(fold(events[0]!.conversationId, events));
    // Past its timeout it says why: the database's own error.
    failing = 1_000;
    await expect(projector.caughtUp({ timeoutMs: 200 })).rejects.toThrow(/CONNECT_TIMEOUT/);
    // An error in the statement itself (here: no such table) is not waited out, whatever the timeout.
    failure = { message: 'relation "projection_checkpoints" does not exist', code: '42P01', severity: 'ERROR' };
    asked.length = 0;
    await expect(projector.caughtUp({ timeoutMs: 60_000 })).rejects.toThrow(/does not exist/);
    expect(asked).toHaveLength(1);
    await db.close();
    await log.close();
  });

  const ids = Array.from({ length: 6 }, (_, i) => `conv-${i}-${randomUUID()}`);
  const all = ids.map((id, i) => conversation(id, i + 1));

  it('projects the log, rides out failing transactions, and keeps its rows across a restart', async () => {
    const log = createFileLog({ dir: join(dir, 'log'), partitions: PARTITIONS });
    const db = createPGliteDb({ dir: join(dir, 'readmodel') });
    await migrate(db);
    await append(log, all.flat());

    const metrics = createMetrics();
    // 7 failures: more than the projector's own 5 attempts, so the log delivers the batch again too.
    const projector = createProjector({ log, db: flaky(db, 7), keys: testKeyStore(log, db), metrics, attempts: 5 });
    await projector.start();
    await projector.caughtUp({ timeoutMs: 20_000 });
    await projector.stop();
    expect(metrics.value('gemello_projection_failures_total', { projection: 'readmodel' })).toBe(7);
    expect(metrics.value('gemello_projection_events_total', { projection: 'readmodel' })).toBe(all.flat().length);

    const source = createReadModelStateSource(db);
    for (const [i, id] of ids.entries()) expect((await source.stateOf(id))?.state).toEqual(fold(id, all[i]!));
    await db.close();
    await log.close();

    // Reopened: migrations have nothing to do, the rows are there, only new events are applied.
    const log2 = createFileLog({ dir: join(dir, 'log'), partitions: PARTITIONS });
    const db2 = createPGliteDb({ dir: join(dir, 'readmodel') });
    expect(await migrate(db2)).toEqual([]);
    const late = conversation(`late-${randomUUID()}`, 1);
    await append(log2, late);
    const metrics2 = createMetrics();
    const projector2 = createProjector({ log: log2, db: db2, keys: testKeyStore(log2, db2), metrics: metrics2 });
    await projector2.start();
    await projector2.caughtUp({ timeoutMs: 20_000 });
    await projector2.stop();
    expect(metrics2.value('gemello_projection_events_total', { projection: 'readmodel' })).toBe(late.length);
    const conv = await createReadApi(db2).getConversation(ids[5]!);
    expect(conv?.messages.map((m) => m.content)).toEqual(['q0', 'a0', 'q1', 'a1', 'q2', 'a2', 'q3', 'a3', 'q4', 'a4', 'q5', 'a5']);
    await db2.close();

    // A new, empty read model beside a log whose group offsets are at the end (the data
    // folder of the read model was deleted): the projector reads what the group will not deliver.
    const fresh = createPGliteDb();
    await migrate(fresh);
    const projector3 = createProjector({ log: log2, db: fresh, keys: testKeyStore(log2, fresh), idleCheckMs: 200 });
    await projector3.start();
    await projector3.caughtUp({ timeoutMs: 20_000 });
    await projector3.stop();
    const source3 = createReadModelStateSource(fresh);
    for (const [i, id] of ids.entries()) expect((await source3.stateOf(id))?.state).toEqual(fold(id, all[i]!));
    expect((await source3.stateOf(late[0]!.conversationId))?.seq).toBe(late.length);
    await fresh.close();
    await log2.close();
  });
});
