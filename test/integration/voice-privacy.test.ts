// Privacy with GEMELLO_KEEP_VOICE and retention, with the whole runtime in this process on
// real Kafka, PostgreSQL and Redis (and a fake OpenAI-compatible server over real HTTP): the
// caller's audio is kept only sealed with its conversation's key, erasure removes it, and the
// retention job (its clock moved on by the test) erases a conversation older than the period
// through the normal erasure path, leaving the newer one alone.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, upgradeWebSocket } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../gateway/app.ts';
import { loadConfig } from '../../runtime/config.ts';
import { ALL_ROLES, createRuntime } from '../../runtime/wire.ts';
import type { Runtime } from '../../runtime/wire.ts';
import { createVoiceClips } from '../../stores/voice-clips.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { realEnv } from '../support/env.ts';
import { findAudio } from '../support/find-audio.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { conversationOnKafka } from '../support/log.ts';
import { runCli } from '../support/processes.ts';
import { connect, speak } from '../support/ws-client.ts';
import { until } from '../support/until.ts';

const twin = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const DAY_MS = 86_400_000;
const real = realEnv('vp');
let fake: FakeOpenAI;
let rt: Runtime;
let server: ReturnType<typeof serve>;
let closeApp: () => void;
let base = '';
let wav: Uint8Array;
const clients: Awaited<ReturnType<typeof connect>>[] = [];
const open = async () => {
  const c = await connect(`ws://${base}/ws`);
  clients.push(c);
  return c;
};
let env: Record<string, string> = {};
/** The retention job's clock runs this far ahead of the wall clock. */
let ahead = 0;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'voice-privacy-'));
  execFileSync('espeak-ng', ['-v', 'it', '-w', join(dir, 'it.wav'), 'Tenete i miei dati al sicuro.']);
  wav = new Uint8Array(readFileSync(join(dir, 'it.wav')));
  fake = await startFakeOpenAI();
  env = { ...real.env, GEMELLO_PARTITIONS: '3', OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_SPEECH: 'off', GEMELLO_KEEP_VOICE: '1', GEMELLO_RETENTION_DAYS: '1', GEMELLO_LOG_QUIET: '1' };
  rt = await createRuntime(loadConfig(env), ALL_ROLES, createLogger('voice-privacy', true), { now: () => new Date(Date.now() + ahead) });
  await rt.start();
  const { app, close } = createApp(rt.appDeps!, upgradeWebSocket);
  closeApp = close;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', websocket: { server: new WebSocketServer({ noServer: true }) } }, (info) => resolve(info.port));
  });
  base = `127.0.0.1:${port}`;
}, 120_000);
afterAll(async () => {
  closeApp?.();
  // A socket a failed test left open would hold close() for ever.
  for (const c of clients) c.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await rt?.stop();
  await fake?.close();
});

const q = <T>(sql: string, params: unknown[] = []) => rt.backends.db.query<T & Record<string, unknown>>(sql, params);

describe('the caller\'s voice with GEMELLO_KEEP_VOICE', () => {
  it('is kept sealed with the conversation\'s key (no copy readable anywhere), and erasing the conversation removes it', async () => {
    fake.setTranscript('tenete i miei dati al sicuro');
    const c = await open();
    speak(c, wav, twin, wav.byteLength);
    const transcript = await c.next((f) => f.type === 'transcript');
    await c.next((f) => f.type === 'reply');
    c.close();
    const id = transcript.conversationId as string;
    const audioId = transcript.audioId as string;

    // voice_clips is the read model of the voice topic: projected shortly after the append.
    const [row] = await until('the clip projected', async () => {
      const rows = await q<{ size_bytes: number; conversation_id: string }>('SELECT size_bytes, conversation_id FROM voice_clips WHERE id = $1', [audioId]);
      return rows.length ? rows : null;
    });
    expect(row).toMatchObject({ size_bytes: wav.byteLength, conversation_id: id });
    const clips = createVoiceClips(rt.backends.db, rt.backends.keys);
    expect(Buffer.from((await clips.read(id, audioId))!.bytes).equals(Buffer.from(wav))).toBe(true);
    await until('the conversation projected', async () => (await q('SELECT 1 FROM conversations WHERE id = $1', [id])).length > 0);
    const served = await fetch(`http://${base}/api/conversations/${id}/voice/${audioId}`);
    expect(served.headers.get('content-type')).toBe('audio/wav');
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(wav))).toBe(true);
    expect((await conversationOnKafka(real.namespace, id, 3)).find((e) => e.type === 'SpeechReceived')?.data).toMatchObject({ audioId, kept: true });
    // Kept, but sealed: no copy of the audio reads in the log, the database or Redis.
    expect(await findAudio(wav, { namespace: real.namespace, schema: real.schema, partitions: 3 })).toEqual([]);

    const transcriptInReadModel = () => q<{ text: string }>("SELECT data->>'text' AS text FROM events WHERE conversation_id = $1 AND type = 'SpeechReceived'", [id]);
    expect(await transcriptInReadModel()).toEqual([{ text: 'tenete i miei dati al sicuro' }]);

    const res = await fetch(`http://${base}/api/conversations/${id}`, { method: 'DELETE' });
    expect(await res.json()).toMatchObject({ status: 'erased', readModel: 'scrubbed' });
    expect(await q('SELECT id FROM voice_clips WHERE conversation_id = $1', [id])).toEqual([]);
    expect(await clips.read(id, audioId)).toBeNull();
    expect((await fetch(`http://${base}/api/conversations/${id}/voice/${audioId}`)).status).toBe(404);
    expect(await transcriptInReadModel()).toEqual([{ text: '[erased]' }]);
  });
});

describe('retention (GEMELLO_RETENTION_DAYS=1, the job\'s clock moved a day on)', () => {
  it('erases the conversation with no event for longer than the period through the normal erasure path and counts it in /metrics; the newer one stays', async () => {
    const c = await open();
    c.send({ type: 'prompt', ...twin, conversationId: `old-${real.schema}`, prompt: 'an old conversation' });
    await c.next((f) => f.type === 'reply');
    await until('the old one projected', async () => (await q('SELECT 1 FROM conversations WHERE id = $1 AND last_seq >= 3', [`old-${real.schema}`])).length > 0);
    await new Promise((r) => setTimeout(r, 100));
    const between = Date.now();
    await new Promise((r) => setTimeout(r, 100));
    c.send({ type: 'prompt', ...twin, conversationId: `new-${real.schema}`, prompt: 'a newer one' });
    await c.next((f) => f.type === 'reply');
    await until('the new one projected', async () => (await q('SELECT 1 FROM conversations WHERE id = $1 AND last_seq >= 3', [`new-${real.schema}`])).length > 0);

    // One day on from the moment between them: only the old one is past retention.
    ahead = between + DAY_MS - Date.now();
    // While another gateway sweeps (it holds the deployment's retention lease), this one skips.
    await q(`INSERT INTO retention_lease (id, holder, until) VALUES (1, 'another gateway', now() + interval '1 minute')`);
    expect(await rt.retention!.sweep()).toMatchObject({ skipped: true, found: 0 });
    await q('DELETE FROM retention_lease');
    const result = await rt.retention!.sweep();
    ahead = 0;
    expect(result).toMatchObject({ found: 1, erased: 1, failed: 0, pending: 0 });
    const old = await conversationOnKafka(real.namespace, `old-${real.schema}`, 3);
    expect(old.at(-1)).toMatchObject({ type: 'ConversationErased', data: { via: 'retention', by: 'retention' } });
    expect(old.find((e) => e.type === 'PromptReceived')?.data).toMatchObject({ text: '[erased]' });
    expect((await conversationOnKafka(real.namespace, `new-${real.schema}`, 3)).some((e) => e.type === 'ConversationErased')).toBe(false);
    const metrics = await (await fetch(`http://${base}/metrics`)).text();
    expect(metrics).toMatch(/gemello_retention_erased_total\{outcome="erased"\} 1/);
    expect(metrics).toMatch(/gemello_voice_utterances_total\{outcome="transcribed"\} 1/);
    // The erased one refuses prompts; the newer one goes on.
    c.send({ type: 'prompt', ...twin, conversationId: `old-${real.schema}`, prompt: 'still there?' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'conversation_erased' });
    c.send({ type: 'prompt', ...twin, conversationId: `new-${real.schema}`, prompt: 'and you?' });
    expect(await c.next((f) => f.type === 'reply')).toMatchObject({ reply: 'echo: and you?' });
    c.close();
  });

  it('`gemello retention --dry-run` lists what is past retention and erases nothing', async () => {
    await new Promise((r) => setTimeout(r, 1_000));
    const days = String(0.5 / 86_400); // half a second
    const dry = await runCli(['retention', '--dry-run', '--days', days], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`new-${real.schema}`);
    expect(dry.stdout).not.toContain(`old-${real.schema}`); // erased already
    expect((await conversationOnKafka(real.namespace, `new-${real.schema}`, 3)).some((e) => e.type === 'ConversationErased')).toBe(false);
  }, 60_000);
});
