// `npm start` on a bare machine (no KAFKA_BROKERS, DATABASE_URL or REDIS_URL): the seed
// protocol works, and a conversation survives a restart and goes on at the next seq.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startCommand } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gemello-embedded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const bare = { GEMELLO_DATA_DIR: dir, KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '', OPENAI_API_KEY: '', GEMELLO_SPEECH: 'off' };

describe('npm start, embedded', () => {
  it('answers the seed frame, and continues the conversation after a restart', async () => {
    const port = await freePort();
    const env = { ...bare, PORT: String(port) };
    let proc = await startCommand('npm', ['start', '--prefix', ROOT, '--silent'], env);
    let conversationId: string;
    try {
      expect(proc.output()).toMatch(/event log: files under .* \(embedded\)/);
      const client = await connect(`ws://127.0.0.1:${port}`);
      client.send({ ...seed, prompt: 'What is a moat?' });
      const reply = await client.next((f) => f.type === 'reply');
      expect(Object.keys(reply).sort()).toEqual(['conversationId', 'digitalTwinId', 'digitalTwinName', 'reply', 'seq', 'type']);
      expect(reply).toMatchObject({ type: 'reply', ...seed, seq: 3 });
      expect(String(reply.reply)).toMatch(/offline/);
      conversationId = reply.conversationId as string;
      client.close();
    } finally {
      await proc.kill('SIGTERM');
    }

    proc = await startCommand('npm', ['start', '--prefix', ROOT, '--silent'], env);
    try {
      const client = await connect(`ws://127.0.0.1:${port}`);
      client.send({ ...seed, prompt: 'Tell me more', conversationId });
      const reply = await client.next((f) => f.type === 'reply');
      expect(reply).toMatchObject({ conversationId, seq: 5 });
      client.close();
    } finally {
      await proc.kill('SIGTERM');
    }
  }, 120_000);
});
