// Two embedded logs (two data directories) pointed at one PostgreSQL schema and one Redis: the
// read models belong to the log that built them, and the second is refused instead of mixing
// its checkpoints and conversations into them, until they are rebuilt from it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../support/env.ts';
import { kafkaLog } from '../support/kafka.ts';
import { TOPICS } from '../../log/port.ts';
import { freePort, runCli, startGemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const { namespace, schema, env: real } = realEnv('logid');
const dirA = mkdtempSync(join(tmpdir(), 'gemello-log-a-'));
const dirB = mkdtempSync(join(tmpdir(), 'gemello-log-b-'));
// Embedded logs (no KAFKA_BROKERS), shared read models and Redis.
const shared = { ...real, KAFKA_BROKERS: '', GEMELLO_SPEECH: 'off', GEMELLO_SNAPSHOT_EVERY: '1' };
const envA = { ...shared, GEMELLO_DATA_DIR: dirA };
const envB = { ...shared, GEMELLO_DATA_DIR: dirB };
const redis = new Redis(REDIS_URL);
const sql = postgres(DATABASE_URL, { onnotice: () => {} });
let fake: FakeOpenAI;
let conversationId = '';

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const port = await freePort();
  const app = await startGemello(['serve'], { ...envA, PORT: String(port), OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url });
  const client = await connect(`ws://127.0.0.1:${port}/ws`);
  client.send({ digitalTwinId: 'warren-buffett-001', prompt: 'hello' });
  conversationId = (await client.next((f) => f.type === 'reply')).conversationId as string;
  client.close();
  await app.kill('SIGTERM');
}, 120_000);

afterAll(async () => {
  await fake?.close();
  const keys = await redis.keys(`${namespace}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await sql.end();
  for (const d of [dirA, dirB]) rmSync(d, { recursive: true, force: true });
});

const idOf = (dir: string) => readFileSync(`${dir}/log/id`, 'utf8').trim();

describe('read models and Redis keys belong to one log', () => {
  it('the first log keeps its Redis keys under its own id', async () => {
    const keys = await redis.keys(`${namespace}*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith(`${namespace}gemello:${idOf(dirA).slice(0, 8)}:`))).toBe(true);
  });

  it('a second data directory on the same read models is refused at start, in one line that says what to do', async () => {
    const r = await runCli(['serve'], { ...envB, PORT: String(await freePort()) }, 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('were built from another event log');
    expect(r.stderr).toContain(dirA);
    expect(r.stderr).toContain('replay --projection readmodel --restart');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // Nothing of it reached the read models: the first log's conversation is all they hold.
    const rows = await sql.unsafe(`SELECT id FROM ${schema}.conversations`);
    expect(rows.map((r) => r.id)).toEqual([conversationId]);
  });

  it('and so is a command reading them, while the first log goes on being served', async () => {
    const r = await runCli(['verify'], envB, 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('were built from another event log');
    const a = await runCli(['verify'], envA, 60_000);
    expect(a.code).toBe(0);
    const doctor = await runCli(['doctor'], envB, 60_000);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout + doctor.stderr).toContain('replay --projection readmodel --restart');
  });

  it('rebuilt from the second log, they are its own: the first log is refused now', async () => {
    const r = await runCli(['replay', '--projection', 'readmodel', '--restart'], envB, 120_000);
    expect(r.code).toBe(0);
    const rows = await sql.unsafe(`SELECT id FROM ${schema}.conversations`);
    expect(rows).toEqual([]);
    const b = await runCli(['verify'], envB, 60_000);
    expect(b.code).toBe(0);
    const a = await runCli(['events', conversationId], envA, 60_000);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain(dirB);
    const old = await sql.unsafe(`SELECT nspname FROM pg_namespace WHERE nspname LIKE '${schema}_old_%'`);
    for (const o of old) await sql.unsafe(`DROP SCHEMA "${o.nspname}" CASCADE`);
  });

  it('a command that only looks (doctor, verify, events) at a namespace nothing was written under says so, and claims no read models', async () => {
    const fresh = realEnv('logpeek');
    try {
      const doctor = await runCli(['doctor'], { ...fresh.env, GEMELLO_SPEECH: 'off' }, 60_000);
      // Nothing was ever written under this namespace: said, not failed on.
      expect(doctor.code).toBe(0);
      expect(doctor.stdout).toMatch(/ok {3}event log .*: no topic logpeek\w+\.gemello\.events yet: the first npm start makes it/);
      expect(doctor.stdout).toMatch(/read models' log: not claimed by any log yet: the first gemello process that builds them claims them for Kafka \(namespace logpeek/);
      const events = await runCli(['events', 'nobody'], fresh.env, 60_000);
      expect(events.code).toBe(1);
      expect(events.stdout).toContain('no events for nobody');
      expect(events.stderr).toMatch(/note: the broker has no topic logpeek\w+\.gemello\.events: nothing was ever written under GEMELLO_NAMESPACE=logpeek/);
      expect(events.stderr).not.toMatch(/\n\s+at /);
      expect((await runCli(['verify'], fresh.env, 60_000)).code).toBe(0);
      expect(await sql.unsafe(`SELECT log FROM ${fresh.schema}.log_identity`)).toEqual([]);
      // A rebuild from that log would empty the read models: refused, and nothing is touched.
      const rebuild = await runCli(['replay', '--projection', 'readmodel', '--restart'], fresh.env, 60_000);
      expect(rebuild.code).toBe(1);
      expect(rebuild.stderr).toMatch(/the broker has no topic logpeek\w+\.gemello\.events: .* a rebuild from it would leave the read models empty, so nothing was changed/);
      expect(await sql.unsafe(`SELECT nspname FROM pg_namespace WHERE nspname LIKE '${fresh.schema}_%'`)).toEqual([]);
      // The first process that builds them claims them.
      const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: 12, namespace: fresh.namespace });
      await log.ensureTopics([TOPICS.commands, TOPICS.events]);
      await log.close();
      expect((await runCli(['replay', '--projection', 'readmodel'], fresh.env, 60_000)).code).toBe(0);
      expect((await sql.unsafe(`SELECT log FROM ${fresh.schema}.log_identity`)).map((r) => r.log)).toEqual([`kafka:${fresh.namespace}`]);
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${fresh.schema} CASCADE`);
    }
  });
});
