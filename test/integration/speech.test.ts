// Replies become speech (espeak-ng offline) on real Kafka and Postgres: the audio is valid,
// served with its content type, stored once per text and voice, and a speech failure
// gives AudioFailed without stopping the conversation.
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { parseWav } from '../../models/wav.ts';
import { DATABASE_URL, realEnv } from '../support/env.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

// Typed prompts: audio and proposals go only to clients that speak the typed protocol (seed clients get reply and error frames).
const seed = { type: 'prompt', digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const procs: Gemello[] = [];
const schemas: string[] = [];
const sql = postgres(DATABASE_URL, { onnotice: () => {} });

afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  for (const s of schemas) await sql.unsafe(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await sql.end();
});

async function start(extra: Record<string, string>) {
  const port = await freePort();
  const { schema, env } = realEnv('sp');
  schemas.push(schema);
  const p = await startGemello(['serve'], { PORT: String(port), ...env, OPENAI_API_KEY: '', ...extra });
  procs.push(p);
  return { http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws`, schema, proc: p };
}

describe('speech', () => {
  it('speaks each reply with espeak-ng, serves valid WAV, and reuses the audio for the same text and voice', async () => {
    const { http, ws, schema, proc } = await start({});
    expect(proc.output()).toContain('speech: espeak-ng');
    const a = await connect(ws);
    a.send({ ...seed, prompt: 'Tell me about moats' });
    const reply = await a.next((f) => f.type === 'reply');
    const audio = await a.next((f) => f.type === 'audio', 30_000);
    expect(audio).toMatchObject({ conversationId: reply.conversationId, replySeq: reply.seq, format: 'wav' });
    const res = await fetch(`${http}${audio.audioUrl}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('audio/wav');
    const wav = parseWav(new Uint8Array(await res.arrayBuffer()));
    expect(wav.durationSec).toBeGreaterThan(0.5);
    expect(Math.abs(wav.durationSec - (audio.durationSec as number))).toBeLessThan(0.05);
    a.close();

    // Another conversation, the same prompt: the offline reply is the same text, so the audio is the cached one.
    const b = await connect(ws);
    b.send({ ...seed, prompt: 'Tell me about moats' });
    const again = await b.next((f) => f.type === 'audio', 30_000);
    expect(again.audioUrl).toBe(audio.audioUrl);
    b.close();
    // One row for the whole reply (its sentences have rows of their own: they were spoken one by one as it streamed).
    const audioId = String(audio.audioUrl).split('/').pop()!;
    const [row] = await sql.unsafe(`SELECT hits, count(*) OVER () AS n FROM ${schema}.audio_cache WHERE text_hash = (SELECT text_hash FROM ${schema}.audio_cache WHERE id = $1)`, [audioId]);
    expect(Number(row!.n)).toBe(1);
    expect(Number(row!.hits)).toBeGreaterThanOrEqual(1);
    expect((await fetch(`${http}/api/audio/${randomUUID()}`)).status).toBe(404);
  }, 90_000);

  it('records AudioFailed with the reason when speech fails, and the next prompt works', async () => {
    // No espeak-ng on PATH and no OpenAI key: every synthesis fails with a reason.
    const { ws } = await start({ PATH: '/nonexistent' });
    const c = await connect(ws);
    c.send({ ...seed, prompt: 'first' });
    await c.next((f) => f.type === 'reply');
    const failed = await c.next((f) => f.type === 'audio.failed', 30_000);
    expect(String(failed.reason)).toMatch(/espeak-ng|OPENAI_API_KEY/);
    c.send({ ...seed, prompt: 'second' });
    expect((await c.next((f) => f.type === 'reply')).seq).toBe(6);
    c.close();
  }, 90_000);
});
