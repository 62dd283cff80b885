// `npm start` on a bare machine (no KAFKA_BROKERS, DATABASE_URL or REDIS_URL): the seed
// protocol works, and a conversation survives a restart and goes on at the next seq.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, groupAlive, groupGone, runCli, startCommand, startGemello } from '../support/processes.ts';
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
    // The caller's audio is not kept by default: nothing of it is made, not even an empty topic.
    expect(readdirSync(join(dir, 'log')).filter((n) => n.startsWith('gemello.')).sort()).toEqual(['gemello.commands', 'gemello.events', 'gemello.keys']);

    // Another partition count would hash conversations elsewhere and hide their events: refused.
    const wrong = await startExpectingRefusal({ ...env, GEMELLO_PARTITIONS: '6' }, 60_000);
    expect(wrong.code).toBe(1);
    expect(wrong.output).toMatch(/has 12 partitions but GEMELLO_PARTITIONS is 6; they must match \(set GEMELLO_PARTITIONS=12/);

    // With npm start stopped (the data directory is the command's), `gemello erase` carries the
    // erasure out itself instead of waiting 30 s for an actor host that cannot run beside it.
    const erased = await runCli(['erase', conversationId, '--reason', 'embedded'], bare, 60_000);
    expect(erased.stdout).toMatch(new RegExp(`erased conversation ${conversationId}`));
    expect(erased.stdout).toMatch(/key\s+destroyed/);
    expect(erased.code).toBe(0);
    const events = await runCli(['events', conversationId], bare, 60_000);
    expect(events.stdout).toMatch(/ConversationErased/);
    expect(events.stdout).not.toMatch(/What is a moat\?/);
  }, 150_000);
});

/** Runs `npm start` expecting it to give up: resolves with its exit code and output, or rejects after `ms`. */
function startExpectingRefusal(env: Record<string, string>, ms: number): Promise<{ code: number | null; output: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn('npm', ['start', '--prefix', ROOT, '--silent'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`a second npm start on the same data directory was still running after ${ms} ms:\n${output}`));
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - t0 });
    });
  });
}

describe('GEMELLO_LOG_QUIET', () => {
  it('drops every info line, the start lines too, and keeps the warnings', async () => {
    const quietDir = mkdtempSync(join(tmpdir(), 'gemello-quiet-'));
    try {
      const proc = await startGemello(['serve'], { ...bare, GEMELLO_DATA_DIR: quietDir, PORT: String(await freePort()), GEMELLO_LOG_QUIET: '1', GEMELLO_MASTER_KEY: '' });
      await proc.kill('SIGTERM');
      expect(proc.output()).not.toMatch(/ info /);
      // A new master key is a warning: it stays.
      expect(proc.output()).toMatch(/ warn gemello: made a new master key/);
    } finally {
      rmSync(quietDir, { recursive: true, force: true });
    }
  });
});

describe('one process per embedded data directory', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)('stops with the npm that started it: %s to npm alone shuts the server down and frees its data directory', async (signal) => {
    const own = mkdtempSync(join(tmpdir(), 'gemello-npm-'));
    const env = { ...bare, GEMELLO_DATA_DIR: own, PORT: String(await freePort()) };
    const app = await startCommand('npm', ['start', '--prefix', ROOT, '--silent'], env);
    const pid = app.child.pid!;
    try {
      expect(existsSync(join(own, 'lock'))).toBe(true);
      // npm alone, as a supervisor that knows only the pid it started signals it: npm passes
      // it to its shell, which dies without passing it on to the server.
      process.kill(pid, signal);
      expect(await groupGone(pid, 10_000)).toBe(true);
      expect(app.output()).toMatch(/the npm that started this process is gone: shutting down/);
      expect(existsSync(join(own, 'lock'))).toBe(false);
    } finally {
      if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
      rmSync(own, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    }
  }, 60_000);

  it('refuses a second npm start at once, keeps the first serving, and takes over the lock of a SIGKILLed holder', async () => {
    const own = mkdtempSync(join(tmpdir(), 'gemello-lock-'));
    const port = await freePort();
    const env = { ...bare, GEMELLO_DATA_DIR: own, PORT: String(port) };
    let first = await startCommand('npm', ['start', '--prefix', ROOT, '--silent'], env);
    let conversationId = '';
    try {
      const c = await connect(`ws://127.0.0.1:${port}`);
      c.send({ ...seed, prompt: 'first words' });
      conversationId = (await c.next((f) => f.type === 'reply')).conversationId as string;

      const second = await startExpectingRefusal({ ...env, PORT: String(await freePort()) }, 10_000);
      expect(second.code).not.toBe(0);
      expect(second.output).toMatch(/is in use by process \d+/);
      expect(second.output).toMatch(/KAFKA_BROKERS/);
      expect(second.output).toMatch(/DATABASE_URL/);
      expect(second.output).not.toMatch(/\n\s+at /); // a message, not a stack trace

      // Its own data directory but the first one's port: told which setting to change.
      const taken = mkdtempSync(join(tmpdir(), 'gemello-port-'));
      const third = await startExpectingRefusal({ ...env, GEMELLO_DATA_DIR: taken }, 60_000);
      rmSync(taken, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
      expect(third.code).toBe(1);
      expect(third.output).toContain(`127.0.0.1:${port} is already in use by another process: stop it, or set PORT to a free port`);
      expect(third.output).not.toMatch(/\n\s+at /);

      // The first one never noticed.
      c.send({ ...seed, prompt: 'still there?', conversationId });
      expect(await c.next((f) => f.type === 'reply')).toMatchObject({ conversationId, seq: 5 });
      c.close();
    } finally {
      await first.kill('SIGKILL');
    }

    // Its lock is stale now: the next start takes it, and nothing of the conversation is lost.
    first = await startCommand('npm', ['start', '--prefix', ROOT, '--silent'], env);
    try {
      const c = await connect(`ws://127.0.0.1:${port}`);
      c.send({ ...seed, prompt: 'after the crash', conversationId });
      expect(await c.next((f) => f.type === 'reply')).toMatchObject({ conversationId, seq: 7 });
      c.close();
      // The read model follows the log a moment later: wait (bounded) for the last reply's row.
      let said: string[] = [];
      for (let i = 0; i < 100 && said.length < 3; i++) {
        const view = (await (await fetch(`http://127.0.0.1:${port}/api/conversations/${conversationId}`)).json()) as { messages: { role: string; content: string }[] };
        said = view.messages.filter((m) => m.role === 'user').map((m) => m.content);
        if (said.length < 3) await new Promise((r) => setTimeout(r, 100));
      }
      expect(said).toEqual(['first words', 'still there?', 'after the crash']);
    } finally {
      await first.kill('SIGTERM');
      rmSync(own, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    }
  }, 150_000);
});
