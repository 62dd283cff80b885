// `deno task start` serves the same protocol: once embedded, once on real Kafka, Postgres and Redis.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../support/env.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { freePort, startCommand } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const DENO = fileURLToPath(new URL('../../node_modules/.bin/deno', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let proc: Gemello | null = null;
const dirs: string[] = [];

afterEach(async () => {
  await proc?.kill();
  proc = null;
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

async function promptOnce(env: Record<string, string>) {
  const port = await freePort();
  proc = await startCommand(DENO, ['task', '--cwd', ROOT, 'start'], { ...env, PORT: String(port), GEMELLO_SPEECH: 'off' });
  expect(proc.output()).toContain('on Deno 2.');
  // As on Node, it says that anyone on this machine may connect (the smoke test sets no keys).
  expect(proc.output()).toContain('auth is off, so only this machine can connect');
  const client = await connect(`ws://127.0.0.1:${port}/ws`);
  client.send({ digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett', prompt: 'Hello from the Deno smoke test' });
  const reply = await client.next((f) => f.type === 'reply', 30_000);
  // Speech in: the utterance's binary frames reach the session as bytes under Deno too.
  client.send({ type: 'audio.start', digitalTwinId: 'warren-buffett-001', format: 'pcm16', sampleRate: 16000 });
  client.ws.send(Buffer.alloc(3200, 7));
  client.ws.send(Buffer.alloc(3200, 9));
  client.send({ type: 'audio.end' });
  const heard = await client.next((f) => f.type === 'transcript' || f.type === 'error', 30_000);
  client.send('not json');
  const err = await client.next((f) => f.type === 'error');
  // A frame past 1 MB closes the socket with 1009, as on Node (Deno's sockets take any size).
  const closed = new Promise<number>((r) => client.ws.once('close', (code: number) => r(code)));
  client.ws.send('z'.repeat(2 * 1024 * 1024));
  const closeCode = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
  client.close();
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return { reply, heard, err, metrics, closeCode };
}

describe('Deno', () => {
  it('serves the seed protocol embedded (no backends configured)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gemello-deno-'));
    dirs.push(dir);
    const { reply, heard, err, metrics, closeCode } = await promptOnce({ GEMELLO_DATA_DIR: dir, KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '' });
    expect(closeCode).toBe(1009);
    expect(heard).toMatchObject({ code: 'stt_unavailable' });
    expect(reply).toMatchObject({ type: 'reply', digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett', seq: 3 });
    expect(String(reply.reply)).toContain('[offline]');
    expect(err.code).toBe('bad_json');
    // The memory and consumer-lag gauges, as on Node.
    expect(metrics).toMatch(/^gemello_process_rss_bytes [1-9]\d*$/m);
    expect(metrics).toMatch(/^gemello_process_heap_used_bytes [1-9]\d*$/m);
    expect(metrics).toContain('# TYPE gemello_log_consumer_lag_records gauge');
  }, 120_000);

  it.each(['platformatic', 'kafkajs'])('serves it on real Kafka (%s), Postgres and Redis, speech in too', async (client) => {
    const fake = await startFakeOpenAI();
    fake.setTranscript('ciao da Deno');
    const { reply, heard } = await promptOnce({
      OPENAI_API_KEY: 'test',
      OPENAI_BASE_URL: fake.url,
      GEMELLO_KAFKA_CLIENT: client,
      KAFKA_BROKERS: KAFKA_BROKERS.join(','),
      DATABASE_URL,
      DATABASE_SCHEMA: `deno_${randomUUID().slice(0, 8)}`,
      REDIS_URL,
      GEMELLO_NAMESPACE: `deno${randomUUID().slice(0, 8)}.`,
    });
    await fake.close();
    expect(reply).toMatchObject({ type: 'reply', seq: 3 });
    expect(heard).toMatchObject({ type: 'transcript', text: 'ciao da Deno', durationSec: 0.2 });
    // 6,400 bytes of pcm16 arrived whole, sent on as a 44-byte-header WAV.
    expect(fake.transcriptions[0]!.bytes.byteLength).toBe(44 + 6400);
    expect(fake.transcriptions[0]!.bytes[44 + 3200]).toBe(9);
    expect(proc!.output()).toContain(`event log: Kafka (${client})`);
  }, 120_000);
});
