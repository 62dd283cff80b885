// The read model and the snapshots against the faults an operator meets, with every part a
// real process on real Kafka, Postgres and Redis: a gateway with an actor host, and a
// projector in a process of its own. The log is the truth; after each fault the copies
// agree with it again, row for row.
//
// Redis here is a private redis-server this file starts (FLUSHALL must not touch the shared
// one), and Postgres is reached through a TCP proxy that plays the outage: the shared
// server is never stopped, other suites use it meanwhile.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fold } from '../../actors/state.ts';
import { canonical, verify } from '../../cli/verify.ts';
import { kafkaLog } from '../support/kafka.ts';
import type { EventLog } from '../../log/port.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import { testKeyStore } from '../support/keys.ts';
import { createRedisSnapshotStore } from '../../stores/snapshots/redis.ts';
import type { Db } from '../../stores/sql.ts';
import { createReadModelStateSource } from '../../projections/state-source.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS } from '../support/env.ts';
import { pgProxy } from '../support/pg-proxy.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { appendEvents, backlog, expectRowsMatchLog, projected, readLog, waitCaughtUp } from '../support/readmodel.ts';
import { connect } from '../support/ws-client.ts';

const PARTITIONS = 4;
const id8 = randomUUID().slice(0, 8);
const namespace = `rmf${id8}.`;
const schema = `rmf_${id8}`;
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A redis-server of this file's own, on a free port, without persistence. */
async function privateRedis() {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  client.on('error', () => {});
  for (const end = Date.now() + 10_000; ; ) {
    try {
      if (client.status !== 'ready') await client.connect().catch(() => {});
      await client.ping();
      break;
    } catch (err) {
      if (Date.now() > end) throw new Error(`redis-server on ${port} did not answer: ${(err as Error).message}`);
      await sleep(50);
    }
  }
  return { url, client, stop: () => { client.disconnect(); child.kill('SIGKILL'); } };
}

let redis: Awaited<ReturnType<typeof privateRedis>>;
let proxy: Awaited<ReturnType<typeof pgProxy>>;
let fake: FakeOpenAI;
let env: Record<string, string>;
let gateway: Gemello;
let projector: Gemello;
let port = 0;
let log: EventLog;
let db: Db;
let snapshots: ReturnType<typeof createRedisSnapshotStore>;
const keys = () => testKeyStore(log, db);
/** The conversations held through the gateway, with the last seq the client saw. */
const talked = new Map<string, number>();

const startGateway = async () => {
  port = await freePort();
  const g = await startGemello(['serve', '--roles', 'gateway,actors'], { ...env, PORT: String(port) });
  await g.waitFor(() => g.owned().length === PARTITIONS, 'the actor host to own every partition', 30_000);
  return g;
};

async function verifyAll() {
  return verify({ log, snapshots, readModel: createReadModelStateSource(db), db, keys: keys() });
}

beforeAll(async () => {
  [redis, proxy, fake] = await Promise.all([privateRedis(), pgProxy(new URL(DATABASE_URL)), startFakeOpenAI()]);
  env = {
    KAFKA_BROKERS: KAFKA_BROKERS.join(','),
    DATABASE_URL: proxy.url,
    DATABASE_SCHEMA: schema,
    REDIS_URL: redis.url,
    GEMELLO_NAMESPACE: namespace,
    GEMELLO_PARTITIONS: String(PARTITIONS),
    GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000',
    GEMELLO_SPEECH: 'off',
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: fake.url,
  };
  // The test reads Postgres directly, not through the proxy, so it sees through the outage.
  db = createPostgresDb({ url: DATABASE_URL, schema });
  log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
  snapshots = createRedisSnapshotStore({ url: redis.url, prefix: `${namespace}gemello:` });
  [projector, gateway] = await Promise.all([startGemello(['projections'], env), startGateway()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([gateway?.kill('SIGKILL'), projector?.kill('SIGKILL')]);
  await log?.close();
  await snapshots?.close();
  await db?.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await db?.close();
  await proxy?.close();
  await fake?.close();
  redis?.stop();
});

describe('the read model and snapshots under faults', () => {
  it('after a conversation, the read model matches the log row for row', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    let id = '';
    for (const prompt of ['alpha', 'beta', 'gamma']) {
      client.send({ ...seed, prompt });
      const reply = await client.next((f) => f.type === 'reply');
      id = reply.conversationId as string;
      talked.set(id, reply.seq as number);
    }
    const data = { name: 'Ann Example', email: 'ann@example.com' };
    client.send({ type: 'confirm', conversationId: id, data });
    const confirmed = await client.next((f) => f.type === 'data.confirmed' || f.type === 'error');
    expect(confirmed).toMatchObject({ type: 'data.confirmed', seq: 8 });
    talked.set(id, 8);
    client.close();
    await waitCaughtUp(db, log);

    const expected = await expectRowsMatchLog(db, log, keys());
    expect(expected.get(id)!.map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated', 'PromptReceived', 'ReplyGenerated', 'PromptReceived', 'ReplyGenerated', 'DataConfirmed']);
    const messages = await db.query<{ seq: number; role: string; content: string; tokens_used: number | null }>('SELECT seq, role, content, tokens_used FROM messages WHERE conversation_id = $1 ORDER BY seq', [id]);
    expect(messages.map((m) => [m.seq, m.role, m.content])).toEqual([
      [2, 'user', 'alpha'], [3, 'assistant', 'echo: alpha'], [4, 'user', 'beta'], [5, 'assistant', 'echo: beta'], [6, 'user', 'gamma'], [7, 'assistant', 'echo: gamma'],
    ]);
    expect(messages.filter((m) => m.role === 'assistant').every((m) => (m.tokens_used ?? 0) > 0)).toBe(true);
    const confirmedRows = await db.query<{ seq: number; key: string; value: unknown }>('SELECT seq, key, value FROM confirmed_data WHERE conversation_id = $1 ORDER BY key', [id]);
    expect(confirmedRows).toEqual([{ seq: 8, key: 'email', value: data.email }, { seq: 8, key: 'name', value: data.name }]);
    const v = await verifyAll();
    expect(v).toEqual({ conversations: 1, mismatches: [], behind: 0 });
  });

  it('a projector SIGKILLed in the middle of a batch and restarted: no duplicate, no missing row', async () => {
    const before = await projected(db);
    const events = backlog(800, 10, 'killed');
    await appendEvents(log, events);
    const total = (await log.endOffsets('gemello.events')).reduce((a, b) => a + b, 0);
    // Busy with the backlog: kill it once batches have committed and while another one is
    // open (only the projector writes `events`, so a lock held on it is its transaction).
    const writing = async () => (await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace s ON s.oid = c.relnamespace
       WHERE s.nspname = $1 AND c.relname = 'events' AND l.mode = 'RowExclusiveLock' AND l.granted`, [schema]))[0]!.n > 0;
    let midBatch = false;
    for (const end = Date.now() + 30_000; !midBatch && Date.now() < end; await sleep(2)) {
      midBatch = (await projected(db)) >= before + 1_000 && (await writing());
    }
    await projector.kill('SIGKILL');
    const atKill = await projected(db);
    console.log(`projector SIGKILLed ${midBatch ? 'with a batch open' : '(no open batch seen)'}, ${atKill - before} of ${events.length} backlog events committed`);
    expect(midBatch).toBe(true);
    expect(atKill).toBeGreaterThan(before);
    expect(atKill).toBeLessThan(total);

    projector = await startGemello(['projections'], env);
    await waitCaughtUp(db, log, 45_000);
    const expected = await expectRowsMatchLog(db, log, keys());
    expect(expected.size).toBe(801);
    const counts = await db.query<{ conversation_id: string; n: number }>('SELECT conversation_id, count(*)::int AS n FROM events GROUP BY conversation_id');
    expect(counts.length).toBe(801);
    for (const c of counts) expect(c.n).toBe(expected.get(c.conversation_id)!.length);
  });

  it('Redis flushed (FLUSHALL): the actor recovers from Postgres + the log tail to the same state and goes on at the next seq', async () => {
    const [id, lastSeq] = [...talked][0]!;
    await gateway.kill('SIGTERM'); // a clean stop: snapshots and checkpoints written
    await waitCaughtUp(db, log);
    expect(await snapshots.get(id)).toMatchObject({ seq: lastSeq });
    await redis.client.flushall();
    expect(await redis.client.dbsize()).toBe(0);

    gateway = await startGateway();
    const asked = fake.requests.length;
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    client.send({ ...seed, conversationId: id, prompt: 'after the flush' });
    const reply = await client.next((f) => f.type === 'reply' || f.type === 'error', 30_000);
    client.close();
    expect(reply).toMatchObject({ type: 'reply', conversationId: id, seq: lastSeq + 2, reply: 'echo: after the flush' });
    talked.set(id, lastSeq + 2);
    // The model was given the whole conversation back: the state came from the read model.
    expect(fake.requests[asked]!.messages.filter((m) => m.role !== 'system').map((m) => m.content)).toEqual(['alpha', 'echo: alpha', 'beta', 'echo: beta', 'gamma', 'echo: gamma', 'after the flush']);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(Number(/gemello_recovery_total\{tier="readmodel"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    expect(gateway.output()).toContain(`recovered ${id} at seq ${lastSeq} from readmodel`);
    // The state it recovered is the fold of the log: the snapshot written on recovery says so.
    const events = (await readLog(log, keys())).get(id)!;
    const snap = await snapshots.get(id);
    expect(snap!.seq).toBeGreaterThanOrEqual(lastSeq);
    expect(canonical(snap!.state)).toBe(canonical(fold(id, events.filter((e) => e.seq <= snap!.seq))));
  });

  it('Postgres unreachable for 10 s under traffic: the actors keep answering, /ready says so, the projection catches up', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    client.send({ ...seed, prompt: 'before the outage' });
    const first = await client.next((f) => f.type === 'reply');
    const id = first.conversationId as string;
    const replies: { seq: number; at: number }[] = [];
    const errors: unknown[] = [];
    client.ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f.type === 'reply') replies.push({ seq: f.seq, at: Date.now() });
      else if (f.type === 'error') errors.push(f);
    });
    let sent = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        client.send({ ...seed, prompt: `prompt ${sent}` });
        sent++;
        await sleep(100);
      }
    })();

    await sleep(1_000);
    await proxy.down();
    const downAt = Date.now();
    const ready: { status: number; readModel: string }[] = [];
    while (Date.now() - downAt < 10_000) {
      const res = await fetch(`http://127.0.0.1:${port}/ready`);
      const body = (await res.json()) as { backends: Record<string, string> };
      ready.push({ status: res.status, readModel: body.backends.readModel! });
      await sleep(500);
    }
    await proxy.up();
    const upAt = Date.now();
    await sleep(2_000);
    stop = true;
    await traffic;
    for (const end = Date.now() + 30_000; replies.length < sent; await sleep(20)) {
      if (Date.now() > end) throw new Error(`${sent} prompts sent, ${replies.length} replies\n${gateway.output().slice(-4000)}`);
    }
    client.close();
    expect(errors).toEqual([]);
    talked.set(id, replies[replies.length - 1]!.seq);

    const during = replies.filter((r) => r.at > downAt + 500 && r.at < upAt);
    console.log(`Postgres down ${upAt - downAt} ms: ${sent} prompts, ${replies.length} replies, ${during.length} during the outage; /ready ${ready.map((r) => r.status).join(' ')}`);
    expect(during.length).toBeGreaterThanOrEqual(60); // ~10 a second kept coming
    expect(ready.filter((r) => r.status === 503).length).toBeGreaterThanOrEqual(ready.length - 2);
    expect(ready.find((r) => r.status === 503)?.readModel).not.toBe('ok');
    for (const end = Date.now() + 15_000; (await fetch(`http://127.0.0.1:${port}/ready`)).status !== 200; ) {
      if (Date.now() > end) throw new Error('/ready did not come back after the outage');
      await sleep(200);
    }

    const t0 = Date.now();
    // Within the test's own time, so a projection that never catches up shows the projector's log.
    await waitCaughtUp(db, log, 35_000).catch((err: Error) => {
      throw new Error(`${err.message}\nthe projector's log:\n${projector.output().slice(-6000)}`);
    });
    console.log(`the projection caught up ${Date.now() - upAt} ms after Postgres came back (${Date.now() - t0} ms of waiting here)`);
    const expected = await expectRowsMatchLog(db, log, keys());
    expect(expected.get(id)!.filter((e) => e.type === 'ReplyGenerated')).toHaveLength(sent + 1);
    const v = await verifyAll();
    expect(v.mismatches).toEqual([]);
    expect(v.behind).toBe(0);
  }, 100_000);

  it('for every conversation, after a clean stop: fold(log) = the Redis snapshot at its seq = the Postgres state', async () => {
    await gateway.kill('SIGTERM');
    await waitCaughtUp(db, log);
    const v = await verifyAll();
    expect(v.conversations).toBe(802);
    expect(v.mismatches).toEqual([]);
    expect(v.behind).toBe(0);
    // The conversations the actors held: all three copies, at the same seq.
    const byId = await readLog(log, keys());
    const readModel = createReadModelStateSource(db);
    for (const [id, seq] of talked) {
      const fromLog = fold(id, byId.get(id)!);
      const snap = await snapshots.get(id);
      const row = await readModel.stateOf(id);
      expect(fromLog.seq).toBe(seq);
      expect(snap?.seq).toBe(seq);
      expect(row?.seq).toBe(seq);
      expect(canonical(snap!.state)).toBe(canonical(fromLog));
      expect(canonical(row!.state)).toBe(canonical(fromLog));
    }
  });
});
