// One conversation of 5,000 prompts on real Kafka, PostgreSQL and Redis: its state stays
// small (the snapshot under 32 KB), the model still sees the last 40 messages, and the
// API and `gemello events` still give all 10,000 messages and every event. The first
// 4,999 prompts and their replies are appended straight to the log, as an actor host would
// have written them (going through sockets would take minutes); the 5,000th goes through
// a socket, the actor host and the model like any prompt.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envelope } from '../../events/codec.ts';
import type { DomainEvent } from '../../events/schemas.ts';
import { createKafkaLog } from '../../log/kafka.ts';
import { TOPICS } from '../../log/port.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../support/env.ts';
import { fakeModelEnv, freePort, runCli, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { appendEvents } from '../support/readmodel.ts';
import { connect } from '../support/ws-client.ts';

const PROMPTS = 5_000;
const PARTITIONS = 2;
const { namespace, schema, env: realServices } = realEnv('long');
const env = { ...realServices, GEMELLO_PARTITIONS: String(PARTITIONS) };
const redis = new Redis(REDIS_URL);
const sql = postgres(DATABASE_URL, { onnotice: () => {} });
let fake: FakeOpenAI;
let app: Gemello | null = null;
let port = 0;
let conversationId = '';

const gemelloCli = (...args: string[]) => runCli(args, env, 60_000);

const get = async (path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  expect(res.status).toBe(200);
  return res.json() as Promise<unknown>;
};

beforeAll(async () => {
  conversationId = `long-${randomUUID()}`;
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: null, metadata: {} } }];
  for (let i = 0; i < PROMPTS - 1; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `question ${i} of ${conversationId}`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `answer ${i}`, model: 'm', tokens: { prompt: 3, completion: 2, total: 5 }, latencyMs: 1.5, audio: false } });
  }
  const events = envelope(conversationId, 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
  const log = createKafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
  try {
    await log.ensureTopics([TOPICS.commands, TOPICS.events]);
    await appendEvents(log, events);
  } finally {
    await log.close();
  }
  fake = await startFakeOpenAI({ keep: 5 });
  port = await freePort();
  app = await startGemello(['serve'], { ...env, ...fakeModelEnv(fake), PORT: String(port) });
}, 120_000);

afterAll(async () => {
  await app?.kill();
  await fake?.close();
  await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await sql.end();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
});

describe('a conversation of 5,000 prompts', () => {
  it('answers its 5,000th prompt with the last 40 messages as the model\'s history', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    client.send({ digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett', conversationId, prompt: 'prompt number 5000' });
    const reply = await client.next((f) => f.type === 'reply' || f.type === 'error', 30_000);
    client.close();
    expect(reply).toMatchObject({ type: 'reply', conversationId, seq: 2 * PROMPTS + 1, reply: 'echo: prompt number 5000' });
    const sent = fake.requests.at(-1)!.messages;
    expect(sent[0]!.role).toBe('system');
    const history = sent.slice(1);
    expect(history).toHaveLength(40);
    // Prompt i (0-based) of the backlog is "question i of <id>", its reply "answer i".
    expect(history.at(-1)).toEqual({ role: 'user', content: 'prompt number 5000' });
    expect(history[0]).toEqual({ role: 'assistant', content: `answer ${PROMPTS - 21}` });
    expect(history.at(-2)).toEqual({ role: 'assistant', content: `answer ${PROMPTS - 2}` });
  }, 60_000);

  it('keeps every message and event in the read model, served by the API', async () => {
    // The projector may still be writing the reply: wait for it (bounded).
    let conversation: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) {
      conversation = (await get(`/api/conversations/${conversationId}`)) as Record<string, unknown>;
      if (conversation.lastSeq === 2 * PROMPTS + 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const messages = conversation.messages as { seq: number; role: string; content: string }[];
    expect(messages).toHaveLength(2 * PROMPTS);
    expect(messages[0]).toMatchObject({ seq: 2, role: 'user', content: `question 0 of ${conversationId}` });
    expect(messages.at(-1)).toMatchObject({ seq: 2 * PROMPTS + 1, role: 'assistant', content: 'echo: prompt number 5000' });
    let afterSeq = 0;
    let count = 0;
    for (let page = 0; page < 100; page++) {
      const events = (await get(`/api/conversations/${conversationId}/events?afterSeq=${afterSeq}`)) as { seq: number }[];
      if (!events.length) break;
      for (const e of events) expect(e.seq).toBe(++afterSeq);
      count += events.length;
    }
    expect(count).toBe(2 * PROMPTS + 1);
  }, 60_000);

  it('lists every event with `gemello events`', async () => {
    const r = await gemelloCli('events', conversationId, '--json');
    expect(r.code, r.stderr).toBe(0);
    const events = JSON.parse(r.stdout) as { seq: number; type: string }[];
    expect(events).toHaveLength(2 * PROMPTS + 1);
    expect(events.filter((e) => e.type === 'PromptReceived')).toHaveLength(PROMPTS);
    expect(events.filter((e) => e.type === 'ReplyGenerated')).toHaveLength(PROMPTS);
  }, 60_000);

  it('keeps its snapshot under 32 KB, and its read-model state small', async () => {
    await app!.kill('SIGTERM'); // a clean stop writes the snapshot of every resident conversation
    app = null;
    const text = await redis.get(`${namespace}gemello:snapshot:${conversationId}`);
    expect(text).not.toBeNull();
    const snapshot = JSON.parse(text!) as { seq: number; state: { messages: unknown[]; prompts: number; replies: number } };
    expect(snapshot.seq).toBe(2 * PROMPTS + 1);
    expect(Buffer.byteLength(text!)).toBeLessThan(32 * 1024);
    expect(snapshot.state.messages).toHaveLength(40);
    expect(snapshot.state).toMatchObject({ prompts: PROMPTS, replies: PROMPTS });
    const [row] = await sql.unsafe(`SELECT octet_length(state::text) AS bytes, state->'prompts' AS prompts FROM "${schema}".conversations WHERE id = $1`, [conversationId]);
    expect(Number(row!.prompts)).toBe(PROMPTS);
    expect(Number(row!.bytes)).toBeLessThan(8 * 1024);
  }, 60_000);
});
