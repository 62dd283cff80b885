// Kept voice (GEMELLO_KEEP_VOICE) lives in the log: the clip is in topic gemello.voice only
// sealed, in segments; voice_clips is its read model. After PostgreSQL is lost, `gemello
// restore` brings the clip back byte for byte; erasing the conversation makes the segments
// unreadable, removes the row, and a later restore does not bring it back.
import { randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { serve, upgradeWebSocket } from '@hono/node-server';
import postgres from 'postgres';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../gateway/app.ts';
import { TOPICS } from '../../log/port.ts';
import { loadConfig } from '../../runtime/config.ts';
import { ALL_ROLES, createRuntime } from '../../runtime/wire.ts';
import type { Runtime } from '../../runtime/wire.ts';
import { openBytes } from '../../sealing/seal.ts';
import { clipContext, decodeSegment } from '../../stores/voice-records.ts';
import type { VoiceSegment } from '../../stores/voice-records.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { DATABASE_URL, KAFKA_BROKERS, realEnv } from '../support/env.ts';
import { findAudio } from '../support/find-audio.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { kafkaLog } from '../support/kafka.ts';
import { runCli } from '../support/processes.ts';
import { connect, speak } from '../support/ws-client.ts';
import { until } from '../support/until.ts';

const twin = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const real = realEnv('vr');
let fake: FakeOpenAI;
let env: Record<string, string> = {};
let up: { rt: Runtime; base: string; close(): Promise<void> } | null = null;

/** A 16 kHz mono WAV of noise, `seconds` long: ~620 KB for 19 s, so several segments. */
function noiseWav(seconds: number): Uint8Array {
  const data = randomBytes(seconds * 16_000 * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVE', 8); h.write('fmt ', 12);
  h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(16_000, 24);
  h.writeUInt32LE(32_000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write('data', 36); h.writeUInt32LE(data.length, 40);
  return new Uint8Array(Buffer.concat([h, data]));
}

async function boot(): Promise<NonNullable<typeof up>> {
  const rt = await createRuntime(loadConfig(env), ALL_ROLES, createLogger('voice-restore', true));
  await rt.start();
  const { app, close } = createApp(rt.appDeps!, upgradeWebSocket);
  let server: ReturnType<typeof serve>;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', websocket: { server: new WebSocketServer({ noServer: true }) } }, (info) => resolve(info.port));
  });
  return {
    rt,
    base: `127.0.0.1:${port}`,
    async close() {
      close();
      await new Promise<void>((r) => server.close(() => r()));
      await rt.stop();
    },
  };
}


/** The segments of one clip in the voice topic, as stored. */
async function segmentsOf(audioId: string): Promise<VoiceSegment[]> {
  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: 3, namespace: real.namespace });
  const out: VoiceSegment[] = [];
  try {
    const ends = await log.endOffsets(TOPICS.voice);
    for (let p = 0; p < ends.length; p++) {
      if (ends[p]) await log.read(TOPICS.voice, p, 0, (records) => {
        for (const r of records) {
          const s = decodeSegment(r.value);
          if (s?.audioId === audioId) out.push(s);
        }
      });
    }
  } finally {
    await log.close();
  }
  return out;
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  env = { ...real.env, GEMELLO_PARTITIONS: '3', OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_SPEECH: 'off', GEMELLO_KEEP_VOICE: '1', GEMELLO_LOG_QUIET: '1' };
  up = await boot();
}, 120_000);
afterAll(async () => {
  await up?.close();
  await fake?.close();
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${real.schema}" CASCADE`).catch(() => {});
  for (const s of await sql<{ nspname: string }[]>`SELECT nspname FROM pg_namespace WHERE nspname LIKE ${real.schema + '_old_%'}`) await sql.unsafe(`DROP SCHEMA "${s.nspname}" CASCADE`);
  await sql.end();
});

describe('kept voice in the log', () => {
  it('is in gemello.voice only sealed, plays back, comes back byte for byte after PostgreSQL is lost, and erasure makes it unreadable for good', async () => {
    const wav = noiseWav(19);
    fake.setTranscript('rumore');
    const c = await connect(`ws://${up!.base}/ws`);
    speak(c, wav, twin, 64 * 1024);
    const transcript = await c.next((f) => f.type === 'transcript');
    await c.next((f) => f.type === 'reply');
    c.close();
    const id = transcript.conversationId as string;
    const audioId = transcript.audioId as string;
    const play = () => fetch(`http://${up!.base}/api/conversations/${id}/voice/${audioId}`);

    // In the log, sealed, in segments under Kafka's record limit; nothing of it readable anywhere.
    const segments = await segmentsOf(audioId);
    expect(segments.length).toBeGreaterThan(2);
    expect(segments.map((s) => s.part)).toEqual(segments.map((_, i) => i));
    const sealed = Buffer.concat(segments.map((s) => s.sealed));
    const key = (await up!.rt.backends.keys.get([id])).get(id)!;
    expect(Buffer.from(openBytes(key, sealed, clipContext(id, audioId))!).equals(Buffer.from(wav))).toBe(true);
    await until('the clip projected', async () => (await play()).status === 200);
    expect(await findAudio(wav, { namespace: real.namespace, schema: real.schema, partitions: 3 })).toEqual([]);
    expect(Buffer.from(await (await play()).arrayBuffer()).equals(Buffer.from(wav))).toBe(true);

    // Lose PostgreSQL; restore from Kafka alone.
    await up!.close();
    up = null;
    const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    await sql.unsafe(`DROP SCHEMA "${real.schema}" CASCADE`);
    const r = await runCli(['restore'], env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restore: kept voice: \d+ records? of the voice topic read into voice_clips/);
    up = await boot();
    const back = await play();
    expect(back.status).toBe(200);
    expect(back.headers.get('content-type')).toBe('audio/wav');
    expect(Buffer.from(await back.arrayBuffer()).equals(Buffer.from(wav))).toBe(true);

    // Erasure: the key is destroyed (the segments stay in the log, unreadable) and the row goes.
    const res = await fetch(`http://${up.base}/api/conversations/${id}`, { method: 'DELETE' });
    expect(await res.json()).toMatchObject({ status: 'erased' });
    expect((await play()).status).toBe(404);
    expect((await up.rt.backends.keys.get([id])).has(id)).toBe(false);
    expect(await up.rt.backends.db.query('SELECT id FROM voice_clips WHERE conversation_id = $1', [id])).toEqual([]);

    // And a second disaster does not bring it back.
    await up.close();
    up = null;
    await sql.unsafe(`DROP SCHEMA "${real.schema}" CASCADE`);
    await sql.end();
    const again = await runCli(['restore'], env);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    up = await boot();
    expect(await up.rt.backends.db.query('SELECT id FROM voice_clips WHERE conversation_id = $1', [id])).toEqual([]);
    expect((await play()).status).toBe(404);
  }, 120_000);
});
