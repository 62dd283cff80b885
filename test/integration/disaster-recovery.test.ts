// The log is the whole truth: conversations with prompts, replies and confirmed data (one of
// them erased) survive the loss of the read-model database and of every Redis key. The
// documented path (`gemello restore`) rebuilds both from Kafka alone, and `gemello verify`
// then finds the snapshots and the read model equal to the log.
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, REDIS_URL, realEnv } from '../support/env.ts';
import { fakeModelEnv, freePort, runCli, startGemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';
import { topicsStartingWith } from '../support/kafka-admin.ts';

const { namespace, schema, env: realServices } = realEnv('dr');
const redis = new Redis(REDIS_URL);
const sql = postgres(DATABASE_URL, { onnotice: () => {} });
const seed = { digitalTwinId: 'warren-buffett-001' };
let fake: FakeOpenAI;
let env: Record<string, string>;
type Conv = { id: string; said: string[]; data?: Record<string, string> };
const kept: Conv[] = [];
const erased: Conv = { id: '', said: [] };

const gemello = (...args: string[]) => runCli(args, env);
let backup = '';
const pg = new URL(DATABASE_URL);
const pgArgs = ['-h', pg.hostname, '-p', pg.port || '5432', '-U', decodeURIComponent(pg.username || 'postgres'), pg.pathname.slice(1)];
function pgDump(name: string): string {
  const r = spawnSync('pg_dump', ['--no-owner', '-n', name, ...pgArgs], { encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(pg.password) } });
  if (r.status !== 0) throw new Error(`pg_dump failed: ${r.stderr}`);
  return r.stdout;
}
function psqlRun(script: string): void {
  const r = spawnSync('psql', ['-v', 'ON_ERROR_STOP=1', '-q', ...pgArgs], { input: script, encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(pg.password) } });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
}
const redisKeys = async () => (await redis.keys(`${namespace}*`)).length;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  env = { ...realServices, ...fakeModelEnv(fake), GEMELLO_SNAPSHOT_EVERY: '2' };
  const port = await freePort();
  const app = await startGemello(['serve'], { ...env, PORT: String(port) });
  try {
    for (let i = 0; i < 3; i++) {
      // A socket keeps one conversation per twin: a socket each.
      const c = await connect(`ws://127.0.0.1:${port}/ws`);
      const conv: Conv = { id: '', said: [`dr prompt ${i} alpha`, `dr prompt ${i} beta`] };
      for (const prompt of conv.said) {
        c.send({ ...seed, prompt, ...(conv.id ? { conversationId: conv.id } : {}) });
        conv.id = (await c.next((f) => f.type === 'reply' && (!conv.id || f.conversationId === conv.id))).conversationId as string;
      }
      conv.data = { name: `Person ${i}` };
      c.send({ type: 'confirm', conversationId: conv.id, data: conv.data });
      await c.next((f) => f.type === 'data.confirmed' && f.conversationId === conv.id);
      if (i === 2) Object.assign(erased, conv);
      else kept.push(conv);
      c.close();
    }
    // A database backup taken before the erasure (pg_dump of the read models' schema), for the restore over it below.
    backup = pgDump(schema);
    const res = await fetch(`http://127.0.0.1:${port}/api/conversations/${erased.id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
  } finally {
    await app.kill('SIGTERM');
  }
}, 180_000);

afterAll(async () => {
  await fake?.close();
  for (const k of await redis.keys(`${namespace}*`)) await redis.del(k);
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const s of await sql<{ nspname: string }[]>`SELECT nspname FROM pg_namespace WHERE nspname LIKE ${schema + '_old_%'}`) await sql.unsafe(`DROP SCHEMA "${s.nspname}" CASCADE`);
  redis.disconnect();
  await sql.end();
});

describe('disaster recovery from Kafka alone', () => {
  it('rebuilds PostgreSQL and Redis with gemello restore: every conversation reads back, the erased one stays erased', async () => {
    expect(new Set([...kept.map((c) => c.id), erased.id]).size).toBe(3);
    // Lose everything that is not Kafka.
    await sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
    for (const k of await redis.keys(`${namespace}*`)) await redis.del(k);
    expect(await redisKeys()).toBe(0);

    const t0 = Date.now();
    const r = await gemello('restore');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restore: data keys: \d+ records of the keys topic/);
    expect(r.stdout).toMatch(/\d+ snapshots written/);
    // The caller's audio is not kept here (GEMELLO_KEEP_VOICE off): neither serve nor restore made its topic.
    expect(r.stdout).toContain('restore: kept voice: not read (GEMELLO_KEEP_VOICE is off');
    expect(await topicsStartingWith(namespace)).toEqual(['commands', 'events', 'keys'].map((t) => `${namespace}gemello.${t}`));
    console.log(`gemello restore of ${kept.length + 1} conversations took ${Date.now() - t0} ms (process start included)`);
    expect(await redisKeys()).toBeGreaterThan(0);
    // The empty tables restore made before rebuilding are not left behind for the operator to drop.
    expect(await sql<{ nspname: string }[]>`SELECT nspname FROM pg_namespace WHERE nspname LIKE ${schema + '_old_%'}`).toEqual([]);
    expect(r.stdout).not.toContain('DROP SCHEMA');

    const v = await gemello('verify');
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/0 mismatches/);

    const port = await freePort();
    const app = await startGemello(['serve'], { ...env, PORT: String(port) });
    try {
      for (const c of kept) {
        const view = await (await fetch(`http://127.0.0.1:${port}/api/conversations/${c.id}`)).json() as { messages: { role: string; content: string }[]; confirmedData: Record<string, unknown>; erasedAt: unknown };
        expect(view.erasedAt).toBeNull();
        expect(view.messages.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(c.said);
        expect(view.messages.filter((m) => m.role === 'assistant').map((m) => m.content)).toEqual(c.said.map((s) => `echo: ${s}`));
        expect(view.confirmedData).toEqual(c.data);
      }
      const gone = await (await fetch(`http://127.0.0.1:${port}/api/conversations/${erased.id}`)).json() as { messages: unknown[]; confirmedData: unknown; erasedAt: unknown };
      expect(gone).toMatchObject({ messages: [], confirmedData: {} });
      expect(gone.erasedAt).toEqual(expect.any(String));
      const events = JSON.stringify(await (await fetch(`http://127.0.0.1:${port}/api/conversations/${erased.id}/events`)).json());
      for (const s of erased.said) expect(events).not.toContain(s);
      // And the restored deployment goes on: the next prompt continues a kept conversation.
      const c = await connect(`ws://127.0.0.1:${port}/ws`);
      c.send({ ...seed, conversationId: kept[0]!.id, prompt: 'after the restore' });
      expect(await c.next((f) => f.type === 'reply')).toMatchObject({ conversationId: kept[0]!.id, reply: 'echo: after the restore' });
      c.close();
    } finally {
      await app.kill('SIGTERM');
    }
  }, 240_000);

  it('restored over a database backup older than an erasure, keeps the erased conversation erased: nothing of it readable in the live or the set-aside tables', async () => {
    // The backup's tables in place of the live ones, as an operator loading a dump would have them.
    await sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
    psqlRun(backup);
    const clear = async (where: string) => (await sql.unsafe(`SELECT content FROM "${where}".messages WHERE conversation_id = $1`, [erased.id])).map((r) => r.content as string);
    expect(await clear(schema)).toEqual(expect.arrayContaining(erased.said)); // the backup holds it in the clear

    const r = await gemello('restore');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/erased conversations: 1 conversation stays erased/);
    expect(await clear(schema)).toEqual([]);
    // The backup's tables are set aside (they held rows); the erasure reached them there too.
    const [old] = await sql<{ nspname: string }[]>`SELECT nspname FROM pg_namespace WHERE nspname LIKE ${schema + '_old_%'}`;
    expect(old).toBeDefined();
    expect(await clear(old!.nspname)).toEqual([]);
    expect(await sql.unsafe(`SELECT 1 FROM "${old!.nspname}".confirmed_data WHERE conversation_id = $1`, [erased.id])).toEqual([]);
    expect((await sql.unsafe(`SELECT count(*)::int AS n FROM "${old!.nspname}".messages`))[0]!.n).toBeGreaterThan(0); // the kept conversations are still there
    const v = await gemello('verify');
    expect(v.code, v.stdout + v.stderr).toBe(0);
  }, 240_000);
});
