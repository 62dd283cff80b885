// Every SQL query of the README's "For analysts" section runs as written against read
// models filled by real traffic, and answers something.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Buffer } from 'node:buffer';
import { TOPICS } from '../../log/port.ts';
import { ANALYST_ROLE } from '../../projections/analyst-role.ts';
import { sealContext } from '../../sealing/personal.ts';
import { isSealed, open } from '../../sealing/seal.ts';
import type { Sealed } from '../../sealing/seal.ts';
import { kafkaLog } from '../support/kafka.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../support/env.ts';
import { freePort, startGemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const section = readme.split('## For analysts')[1]!.split('\n## ')[0]!;
const queries = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
const schema = `an_${randomUUID().slice(0, 8)}`;
const namespace = `an${randomUUID().slice(0, 8)}.`;
const admin = postgres(DATABASE_URL, { onnotice: () => {} });
// The analysts' own login: a member of the read-only role the migrations keep up to date.
const analystUser = `analyst_${randomUUID().slice(0, 8)}`;
const analystUrl = Object.assign(new URL(DATABASE_URL), { username: analystUser, password: '' }).toString();
let sql: ReturnType<typeof postgres>;
let fake: FakeOpenAI;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const port = await freePort();
  // No OpenAI key for speech: espeak-ng speaks, so the audio cache fills; chat goes to the fake.
  const app = await startGemello(['serve'], {
    PORT: String(port), KAFKA_BROKERS: KAFKA_BROKERS.join(','), DATABASE_URL, DATABASE_SCHEMA: schema, REDIS_URL,
    GEMELLO_NAMESPACE: namespace, OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_RETRIES: '0',
  });
  try {
    // Typed prompts: audio and proposals go only to clients that speak the typed protocol.
    const seed = { type: 'prompt', digitalTwinId: 'warren-buffett-001' };
    for (let i = 0; i < 2; i++) {
      const c = await connect(`ws://127.0.0.1:${port}/ws`);
      c.send({ ...seed, prompt: 'What is a moat?' });
      const { conversationId } = await c.next((f) => f.type === 'reply');
      await c.next((f) => f.type === 'audio' || f.type === 'audio.failed', 30_000);
      c.send({ type: 'confirm', conversationId, data: { name: `Analyst ${i}` } });
      await c.next((f) => f.type === 'data.confirmed');
      // The model reads an address out of this one: a proposal the user leaves open.
      c.send({ ...seed, prompt: `Write to email=analyst${i}@example.com` });
      await c.next((f) => f.type === 'data.proposed');
      fake.setMode('error500');
      c.send({ ...seed, prompt: 'this one fails' });
      await c.next((f) => f.type === 'error');
      fake.setMode('ok');
      // One utterance transcribed, one that fails: the speech-in query counts both.
      for (const mode of ['ok', 'error500'] as const) {
        fake.setTranscriptMode(mode);
        c.send({ type: 'audio.start', digitalTwinId: 'warren-buffett-001', conversationId, format: 'pcm16', sampleRate: 16000 });
        c.ws.send(Buffer.alloc(16000));
        c.send({ type: 'audio.end' });
        await c.next((f) => f.type === (mode === 'ok' ? 'reply' : 'error'));
      }
      fake.setTranscriptMode('ok');
      c.close();
    }
  } finally {
    await app.kill('SIGTERM');
  }
  await admin.unsafe(`CREATE ROLE ${analystUser} LOGIN IN ROLE ${ANALYST_ROLE}`);
  sql = postgres(analystUrl, { onnotice: () => {}, connection: { search_path: schema } });
}, 120_000);

afterAll(async () => {
  await fake?.close();
  await sql?.end();
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.unsafe(`DROP ROLE IF EXISTS ${analystUser}`);
  await admin.end();
});

/** Every value that could be a 32-byte key: raw bytes, and strings read as base64 or hex, anywhere inside a value. */
function candidates(v: unknown, out: Uint8Array[] = []): Uint8Array[] {
  if (v == null) return out;
  if (v instanceof Uint8Array) {
    if (v.length === 32) out.push(v);
    return out;
  }
  if (typeof v === 'string') {
    for (const b of [Buffer.from(v, 'base64'), /^[0-9a-f]+$/i.test(v) ? Buffer.from(v, 'hex') : Buffer.alloc(0), Buffer.from(v, 'utf8')]) if (b.length === 32) out.push(new Uint8Array(b));
    if (/^[\[{]/.test(v)) {
      try {
        candidates(JSON.parse(v), out);
      } catch {
        // not JSON
      }
    }
    return out;
  }
  if (typeof v === 'object') for (const x of Object.values(v as object)) candidates(x, out);
  return out;
}

describe('the analysts\' role', () => {
  it('reads the read models but nothing that decrypts a sealed event of the log', async () => {
    // A sealed record, as Kafka holds it.
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: 12, namespace });
    const sealed: { context: string; value: Sealed }[] = [];
    try {
      for (let p = 0; p < 12 && sealed.length < 3; p++) {
        await log.read(TOPICS.events, p, 0, (records) => {
          for (const r of records) {
            const e = JSON.parse(r.value) as { eventId?: string; type?: string; data?: Record<string, unknown> };
            if (e.type === 'PromptReceived' && isSealed(e.data?.text)) sealed.push({ context: sealContext(r.key, e.eventId!, 'text'), value: e.data.text });
          }
        });
      }
    } finally {
      await log.close();
    }
    expect(sealed.length).toBeGreaterThan(0);
    // Every table and view the role can read in the deployment's schema (other schemas of this
    // database belong to other test runs, made and dropped meanwhile).
    const readable = await sql<{ schema: string; name: string }[]>`
      SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname = ${schema}
        AND has_table_privilege(c.oid, 'SELECT')`;
    expect(readable.map((r) => r.name)).toEqual(expect.arrayContaining(['conversations', 'messages', 'events']));
    expect(readable.map((r) => r.name)).not.toContain('conversation_keys');
    let tried = 0;
    for (const { schema: s, name } of readable) {
      for (const row of await sql.unsafe(`SELECT * FROM "${s}"."${name}"`)) {
        for (const key of candidates(Object.values(row))) {
          tried++;
          for (const x of sealed) expect(open(key, x.value, x.context), `${s}.${name} opens a sealed event`).toBeNull();
        }
      }
    }
    console.log(`analyst role: ${readable.length} readable tables and views, ${tried} candidate keys tried against ${sealed.length} sealed events`);
    await expect(sql`SELECT * FROM conversation_keys`).rejects.toThrow(/permission denied/);
    await expect(sql`DELETE FROM messages`).rejects.toThrow(/permission denied/);
  });
});

describe('the README\'s analyst queries', () => {
  it('are there', () => {
    expect(queries.length).toBeGreaterThanOrEqual(5);
  });
  it.each(queries.map((q) => [q.split('\n')[0]!, q]))('%s', async (_title, query) => {
    const rows = await sql.unsafe(query);
    expect(rows.length).toBeGreaterThan(0);
    // Two conversations said the same thing: the second clip came from the cache.
    if (query.includes('FROM audio_cache')) expect(Number(rows[0]!.hit_rate)).toBeGreaterThan(0);
  });
});
