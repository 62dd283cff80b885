// A new user's first run: a fresh `git clone` (whose node_modules is what `npm ci` installs,
// linked from this checkout), no data directory yet, only the variables the README names.
// `npm start` on Kafka answers the seed frame, and so do the roles started one by one.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_URL, KAFKA_BROKERS } from '../support/env.ts';
import { freePort, startCommand } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const parent = mkdtempSync(join(tmpdir(), 'gemello-clone-'));
const clone = join(parent, 'gemello');
const id = Math.random().toString(36).slice(2, 10);
const schema = `clone_${id}`;
// Nothing of this machine's other settings: the README's variables only (a namespace keeps the test's topics apart).
const base = { KAFKA_BROKERS: KAFKA_BROKERS.join(','), GEMELLO_NAMESPACE: `clone${id}.`, DATABASE_URL: '', REDIS_URL: '', OPENAI_API_KEY: '', GEMELLO_MASTER_KEY: '', GEMELLO_DATA_DIR: '', GEMELLO_SPEECH: 'off' };

beforeAll(() => {
  execFileSync('git', ['clone', '--quiet', ROOT, clone]);
  symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
  expect(existsSync(join(clone, '.gemello'))).toBe(false);
});

afterAll(async () => {
  rmSync(parent, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  const sql = postgres(DATABASE_URL, { onnotice: () => {} });
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await sql.end();
});

async function seedFrame(port: number): Promise<Record<string, unknown>> {
  const c = await connect(`ws://127.0.0.1:${port}/ws`);
  try {
    c.send({ ...seed, prompt: 'What is a moat?' });
    return await c.next((f) => f.type === 'reply' || f.type === 'error', 30_000);
  } finally {
    c.close();
  }
}

describe('a fresh clone', () => {
  it('KAFKA_BROKERS=… npm start answers the seed frame (no data directory yet)', async () => {
    const port = await freePort();
    const app = await startCommand('npm', ['start', '--prefix', clone, '--silent'], { ...base, PORT: String(port) });
    let reply: Record<string, unknown>;
    try {
      reply = await seedFrame(port);
      expect(reply).toMatchObject({ type: 'reply', ...seed });
      expect(app.output()).toMatch(/made a new master key in .*master\.key/);
      expect(app.output()).not.toMatch(/ENOENT|\n\s+at /);
    } finally {
      await app.kill('SIGTERM');
    }
    // The CLI typed in a subfolder of the checkout uses the checkout's data directory (and master key),
    // not a new one beside it that cannot open what npm start sealed.
    const events = execFileSync(process.execPath, [join(clone, 'cli', 'gemello.ts'), 'events', String(reply.conversationId)], { cwd: join(clone, 'infra'), env: { ...process.env, ...base }, encoding: 'utf8' });
    expect(events).toContain('What is a moat?');
    expect(existsSync(join(clone, 'infra', '.gemello'))).toBe(false);
  }, 120_000);

  it('gateway, actors and projections started one by one with DATABASE_URL answer it too', async () => {
    const port = await freePort();
    const env = { ...base, DATABASE_URL, DATABASE_SCHEMA: schema, PORT: String(port) };
    const roles: Gemello[] = [];
    try {
      for (const role of ['gateway', 'actors', 'projections']) roles.push(await startCommand('npm', ['--prefix', clone, '--silent', 'run', 'gemello', '--', role], env));
      expect(await seedFrame(port)).toMatchObject({ type: 'reply', ...seed });
    } finally {
      for (const r of roles.reverse()) await r.kill('SIGTERM');
    }
  }, 180_000);
});
