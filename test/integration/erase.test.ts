// Erasure by crypto-shredding, on real Kafka, Postgres and Redis, through the real
// `gemello` processes: a conversation's prompts, replies and confirmed data never reach the
// log in the clear; erasing it (DELETE /api/conversations/:id, or `gemello erase`) destroys
// its key, so what the log holds of it can no longer be read, and removes it from Postgres,
// Redis and the API, while the other conversations go on untouched.
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaLog } from '../support/kafka.ts';
import { partitionFor } from '../../log/partition.ts';
import { COMPACTED_TOPIC_CONFIG, TOPICS } from '../../log/port.ts';
import { decodeKeyRecord } from '../../sealing/key-records.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../support/env.ts';
import { freePort, runCli, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';
import { topicConfig } from '../support/kafka-admin.ts';

const { namespace, schema, env: realServices } = realEnv('er');
const PARTITIONS = 12;
const env = {
  ...realServices,
  GEMELLO_PARTITIONS: String(PARTITIONS),
  GEMELLO_SNAPSHOT_EVERY: '2',
  GEMELLO_SPEECH: 'off',
  GEMELLO_API_KEYS: 'key-alice:alice,key-bob:bob',
};
// Typed prompts: audio and proposals go only to clients that speak the typed protocol (seed clients get reply and error frames).
const seed = { type: 'prompt', digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
/** Words that appear nowhere but in what one conversation's person said or confirmed. */
const secret = (tag: string) => `${tag}${randomBytes(6).toString('hex')}`;

let fake: FakeOpenAI;
let app: Gemello;
let port: number;
const redis = new Redis(REDIS_URL);
const sql = postgres(DATABASE_URL, { onnotice: () => {} });

type Conversation = { id: string; secrets: string[] };
const erased: Conversation = { id: '', secrets: [secret('erasedprompt'), secret('erasedprompt'), secret('erasedname')] };
const byCli: Conversation = { id: '', secrets: [secret('cliprompt')] };
const kept: Conversation = { id: '', secrets: [secret('keptprompt'), secret('keptprompt')] };
const email = `${secret('mail')}@example.com`;
erased.secrets.push(email);

const gemello = (...args: string[]) => runCli(args, { ...env, GEMELLO_LOG_QUIET: '1' }, 60_000);

const api = (path: string, token: string, init: RequestInit = {}) =>
  fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });

/** How many commands gemello.commands holds, all partitions together. */
async function commandsEnd(): Promise<number> {
  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
  try {
    return (await log.endOffsets(TOPICS.commands)).reduce((a, b) => a + b, 0);
  } finally {
    await log.close();
  }
}

/** Every record of both topics, as the bytes Kafka holds (key, value and headers). */
async function rawLog(): Promise<string[]> {
  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
  try {
    const out: string[] = [];
    for (const topic of [TOPICS.commands, TOPICS.events]) {
      for (let p = 0; p < PARTITIONS; p++) {
        await log.read(topic, p, 0, (records) => {
          for (const r of records) out.push(`${topic} ${r.key} ${r.value} ${JSON.stringify(r.headers)}`);
        });
      }
    }
    return out;
  } finally {
    await log.close();
  }
}

/** Every row of every table of the read-model schema, as text. */
async function rawPostgres(): Promise<string> {
  const tables = await sql<{ table_name: string }[]>`SELECT table_name FROM information_schema.tables WHERE table_schema = ${schema} AND table_type = 'BASE TABLE'`;
  const dump: Record<string, unknown[]> = {};
  for (const t of tables) dump[t.table_name] = await sql.unsafe(`SELECT * FROM "${schema}"."${t.table_name}"`);
  return JSON.stringify(dump);
}

/** Every Redis value under this run's prefix, as text. */
async function rawRedis(): Promise<string> {
  const keys = await redis.keys(`${namespace}*`);
  // Snapshots are strings; the actor hosts' liveness lease is a sorted set: read each as what it is.
  const values = await Promise.all(keys.map(async (k) => ((await redis.type(k)) === 'zset' ? redis.zrange(k, 0, -1, 'WITHSCORES') : redis.get(k))));
  return JSON.stringify(keys.map((k, i) => [k, values[i]]));
}

const snapshotKey = (id: string) => `${namespace}gemello:snapshot:${id}`;

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !(await check()); await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  port = await freePort();
  app = await startGemello(['serve'], { ...env, PORT: String(port), OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url });
  const alice = await connect(`ws://127.0.0.1:${port}/ws?token=key-alice`);
  // The second prompt states a name, so the model proposes it (DataProposed): proposals are content too.
  for (const [i, text] of erased.secrets.slice(0, 2).entries()) {
    alice.send({ ...seed, prompt: i === 0 ? `my secret is ${text}` : `my secret is name=${text}` });
    erased.id = (await alice.next((f) => f.type === 'reply')).conversationId as string;
  }
  expect(await alice.next((f) => f.type === 'data.proposed')).toMatchObject({ data: { name: erased.secrets[1] } });
  alice.send({ type: 'confirm', conversationId: erased.id, data: { name: `Ann ${erased.secrets[2]}`, email } });
  expect(await alice.next((f) => f.type === 'data.confirmed' || f.type === 'error')).toMatchObject({ type: 'data.confirmed' });
  alice.send({ ...seed, conversationId: randomUUID(), prompt: `mine too: ${byCli.secrets[0]}` });
  byCli.id = (await alice.next((f) => f.type === 'reply')).conversationId as string;
  alice.close();
  const bob = await connect(`ws://127.0.0.1:${port}/ws?token=key-bob`);
  for (const text of kept.secrets) {
    bob.send({ ...seed, prompt: `keep ${text}` });
    kept.id = (await bob.next((f) => f.type === 'reply')).conversationId as string;
  }
  bob.close();
  // Every copy exists before the erasure: the snapshots and the read model.
  for (const c of [erased, kept]) await until(`the snapshot of ${c.id}`, async () => (await redis.get(snapshotKey(c.id))) !== null);
  await until('the read model', async () => (await rawPostgres()).includes(kept.secrets[1]!) && (await rawPostgres()).includes(email));
}, 120_000);

afterAll(async () => {
  await app?.kill();
  await fake?.close();
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await sql.end();
  redis.disconnect();
});

const all = () => [...erased.secrets, ...byCli.secrets, ...kept.secrets];

describe('erasure', () => {
  it('never writes a prompt, a reply or confirmed data to the log in the clear, yet the key reads them back', async () => {
    const records = await rawLog();
    // The scan sees every conversation's commands, events and notices…
    for (const c of [erased, byCli, kept]) {
      expect(records.filter((r) => r.startsWith(`${TOPICS.commands} ${c.id} `)).length).toBeGreaterThan(0);
      expect(records.filter((r) => r.startsWith(`${TOPICS.events} ${c.id} `) && r.includes('"sealed":"1"')).length).toBeGreaterThan(1);
    }
    // …and none of what their people said, were told or confirmed.
    for (const s of all()) expect(records.filter((r) => r.includes(s))).toEqual([]);
    // The events of a conversation are sealed; with the key (the CLI reads it) they are whole.
    const events = await gemello('events', erased.id, '--json');
    expect(events.code).toBe(0);
    const texts = (JSON.parse(events.stdout) as { type: string; data: { text?: string } }[]).filter((e) => e.type === 'PromptReceived' || e.type === 'ReplyGenerated').map((e) => e.data.text);
    expect(texts).toEqual([`my secret is ${erased.secrets[0]}`, `echo: my secret is ${erased.secrets[0]}`, `my secret is name=${erased.secrets[1]}`, `echo: my secret is name=${erased.secrets[1]}`]);
  });

  it('lets only the owner erase a conversation through the API', async () => {
    const res = await api(`/api/conversations/${erased.id}`, 'key-bob', { method: 'DELETE' });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ code: 'forbidden' });
    expect((await api(`/api/conversations/${randomUUID()}`, 'key-alice', { method: 'DELETE' })).status).toBe(404);
  });

  it('DELETE /api/conversations/:id makes the content unreadable in Kafka, Postgres, Redis and the API, and records the erasure', async () => {
    const res = await api(`/api/conversations/${erased.id}`, 'key-alice', { method: 'DELETE' });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ status: 'erased', conversationId: erased.id, seq: 8, erasedBefore: false, erased: { prompts: 2, replies: 2, confirmedFields: 2 }, keyDestroyed: true, readModel: 'scrubbed' });
    expect(body.what).toMatch(/data key is destroyed/);

    // Kafka: the bytes never held it, and the key that sealed it is gone.
    const records = await rawLog();
    for (const s of erased.secrets) expect(records.filter((r) => r.includes(s))).toEqual([]);
    const [key] = await sql.unsafe(`SELECT key, wrapped, destroyed_at FROM "${schema}".conversation_keys WHERE conversation_id = $1`, [erased.id]);
    expect(key).toMatchObject({ key: null, wrapped: null });
    expect(key!.destroyed_at).not.toBeNull();
    // The key's home: the last record of the conversation in the keys topic is its tombstone,
    // and the topic is compacted within the bound its settings give, so the wrapped key goes too.
    const keyLog = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
    try {
      const mine: string[] = [];
      await keyLog.read(TOPICS.keys, partitionFor(erased.id, PARTITIONS), 0, (rs) => void mine.push(...rs.filter((r) => r.key === erased.id).map((r) => r.value)));
      expect(decodeKeyRecord(erased.id, mine.at(-1)!)).toMatchObject({ kind: 'destroyed' });
    } finally {
      await keyLog.close();
    }
    expect(await topicConfig(`${namespace}${TOPICS.keys}`)).toMatchObject({ ...COMPACTED_TOPIC_CONFIG });
    expect(Number((await topicConfig(`${namespace}${TOPICS.keys}`))['max.compaction.lag.ms'])).toBeLessThanOrEqual(3_600_000);
    // Postgres: no row of any table holds it.
    const pg = await rawPostgres();
    for (const s of erased.secrets) expect(pg).not.toContain(s);
    // Redis: no snapshot, and nothing else holds it.
    expect(await redis.get(snapshotKey(erased.id))).toBeNull();
    const rd = await rawRedis();
    for (const s of erased.secrets) expect(rd).not.toContain(s);
    // The API: the conversation is there, its content is not.
    const conv = await (await api(`/api/conversations/${erased.id}`, 'key-alice')).json();
    expect(conv).toMatchObject({ id: erased.id, messages: [], confirmedData: {}, confirmations: [] });
    expect(conv.erasedAt).toEqual(expect.any(String));
    const events = await (await api(`/api/conversations/${erased.id}/events`, 'key-alice')).json() as { type: string; data: Record<string, unknown> }[];
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated', 'PromptReceived', 'ReplyGenerated', 'DataProposed', 'DataConfirmed', 'ConversationErased']);
    expect(events[7]!.data).toMatchObject({ by: 'alice', via: 'api', prompts: 2, replies: 2, confirmedFields: 2 });
    for (const s of erased.secrets) expect(JSON.stringify([conv, events])).not.toContain(s);

    // Erasing again changes nothing and says so.
    const again = await api(`/api/conversations/${erased.id}`, 'key-alice', { method: 'DELETE' });
    // The key went with the first erasure: this one destroyed nothing.
    expect(await again.json()).toMatchObject({ status: 'erased', erasedBefore: true, seq: 8, keyDestroyed: false });
  });

  it('shows the erased events with their content replaced, from the log (gemello events)', async () => {
    const table = await gemello('events', erased.id);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^\s+2\s+\S+\s+PromptReceived\s.*"text":"\[erased\]"/m);
    expect(table.stdout).toMatch(/^\s+6\s+\S+\s+DataProposed\s.*"data":\{\}/m);
    expect(table.stdout).toMatch(/^\s+7\s+\S+\s+DataConfirmed\s.*"data":\{\}/m);
    expect(table.stdout).toMatch(/^\s+8\s+\S+\s+ConversationErased\s.*"by":"alice"/m);
    for (const s of erased.secrets) expect(table.stdout).not.toContain(s);
    const state = JSON.parse((await gemello('state', erased.id)).stdout);
    expect(state).toMatchObject({ seq: 8, messages: [], confirmedData: {}, erased: { seq: 8, by: 'alice' } });
    expect(state.proposal).toBeUndefined();
  });

  it('refuses further prompts to the erased conversation with conversation_erased', async () => {
    const alice = await connect(`ws://127.0.0.1:${port}/ws?token=key-alice`);
    alice.send({ ...seed, conversationId: erased.id, prompt: 'are you still there?', requestId: 'late' });
    expect(await alice.next((f) => f.type === 'error')).toMatchObject({ code: 'conversation_erased', conversationId: erased.id, requestId: 'late' });
    alice.close();
  });

  it('gemello erase erases through the running actor host and prints what it erased', async () => {
    const r = await gemello('erase', byCli.id, '--by', 'ops-oncall', '--reason', 'GDPR request 42');
    expect(r.stderr).toContain('waiting for its actor host');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`erased conversation ${byCli.id}`);
    expect(r.stdout).toMatch(/event\s+ConversationErased, seq 4, at \S+, by ops-oncall/);
    expect(r.stdout).toMatch(/content\s+1 prompt, 1 reply, 0 confirmed fields/);
    expect(r.stdout).toMatch(/key\s+destroyed/);
    expect(r.stdout).toMatch(/snapshot\s+none/);
    expect(r.stdout).toMatch(/read model\s+messages, confirmed data and event content removed/);
    const pg = await rawPostgres();
    expect(pg).not.toContain(byCli.secrets[0]);
    expect((await rawLog()).filter((x) => x.includes(byCli.secrets[0]!))).toEqual([]);
    // Again: the earlier erasure's tombstone destroyed the key, and the output says so.
    const again = await gemello('erase', byCli.id);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`conversation ${byCli.id} was already erased`);
    expect(again.stdout).toMatch(/key\s+already destroyed/);
    // A mistyped id: refused at once, and nothing is queued for a host to refuse later.
    // Though an erasure of it was asked for over HTTP before (refused by the actor host: its notice is in the log, no event is).
    const typoId = randomUUID();
    expect((await api(`/api/conversations/${typoId}`, 'key-bob', { method: 'DELETE' })).status).toBe(404);
    const commandsBefore = await commandsEnd();
    const typo = await gemello('erase', typoId);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/no conversation \S+ in the log \(partition \d+\): nothing to erase/);
    expect(await commandsEnd()).toBe(commandsBefore);
  });

  it('leaves the other conversation untouched: its content everywhere, and it still answers', async () => {
    const conv = await (await api(`/api/conversations/${kept.id}`, 'key-bob')).json();
    expect(conv.erasedAt).toBeNull();
    expect(conv.messages.map((m: { content: string }) => m.content)).toEqual([`keep ${kept.secrets[0]}`, `echo: keep ${kept.secrets[0]}`, `keep ${kept.secrets[1]}`, `echo: keep ${kept.secrets[1]}`]);
    expect(await redis.get(snapshotKey(kept.id))).not.toBeNull();
    const events = JSON.parse((await gemello('events', kept.id, '--json')).stdout) as { data: { text?: string } }[];
    expect(events.map((e) => e.data.text).filter(Boolean)).toContain(`echo: keep ${kept.secrets[1]}`);
    const bob = await connect(`ws://127.0.0.1:${port}/ws?token=key-bob`);
    bob.send({ ...seed, conversationId: kept.id, prompt: 'still here?' });
    expect(await bob.next((f) => f.type === 'reply' || f.type === 'error')).toMatchObject({ type: 'reply', conversationId: kept.id, reply: 'echo: still here?' });
    bob.close();
    // verify agrees with the log: nothing left of the erased ones, the rest consistent.
    const v = await gemello('verify');
    expect(v.stdout).toMatch(/0 mismatches/);
  });
});
