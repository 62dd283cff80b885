// Every SQL query of the README's "For analysts" section runs as written against read
// models filled by real traffic, and answers something.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../support/env.ts';
import { freePort, startGemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const section = readme.split('## For analysts')[1]!.split('\n## ')[0]!;
const queries = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
const schema = `an_${randomUUID().slice(0, 8)}`;
const sql = postgres(DATABASE_URL, { onnotice: () => {}, connection: { search_path: schema } });
let fake: FakeOpenAI;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const port = await freePort();
  // No OpenAI key for speech: espeak-ng speaks, so the audio cache fills; chat goes to the fake.
  const app = await startGemello(['serve'], {
    PORT: String(port), KAFKA_BROKERS: KAFKA_BROKERS.join(','), DATABASE_URL, DATABASE_SCHEMA: schema, REDIS_URL,
    GEMELLO_NAMESPACE: `an${randomUUID().slice(0, 8)}.`, OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_RETRIES: '0',
  });
  try {
    const seed = { digitalTwinId: 'warren-buffett-001' };
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
      c.close();
    }
  } finally {
    await app.kill('SIGTERM');
  }
}, 120_000);

afterAll(async () => {
  await fake?.close();
  await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await sql.end();
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
