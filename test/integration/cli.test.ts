// The operator's CLI, run as the real `gemello` binary against real Kafka, Postgres and Redis.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { logLevel } from 'kafkajs';
import { newKafka } from '../../log/kafkajs-request-queue.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../support/env.ts';
import { freePort, runCli, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { until } from '../support/until.ts';
import { connect } from '../support/ws-client.ts';

const { namespace, schema, env: realServices } = realEnv('cli');
const env = {
  ...realServices,
  GEMELLO_SNAPSHOT_EVERY: '2',
  GEMELLO_SPEECH: 'off',
};
let fake: FakeOpenAI;
let app: Gemello;
let conversationId = '';
const redis = new Redis(REDIS_URL);
const sql = postgres(DATABASE_URL, { onnotice: () => {} });

const gemello = (...args: string[]) => runCli(args, env, 60_000);

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const port = await freePort();
  app = await startGemello(['serve'], { ...env, PORT: String(port), OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url });
  const client = await connect(`ws://127.0.0.1:${port}/ws`);
  for (const prompt of ['first', 'second']) {
    client.send({ digitalTwinId: 'warren-buffett-001', prompt });
    conversationId = (await client.next((f) => f.type === 'reply')).conversationId as string;
  }
  client.close();
  // The projection has every event (a stop does not wait for it: what is not projected yet is
  // projected at the next start), then a clean stop writes the snapshots.
  await until('the read model to hold the conversation\'s 5 events', async () => {
    const [row] = await sql.unsafe(`SELECT count(*)::int AS n FROM ${schema}.events WHERE conversation_id = $1`, [conversationId]).catch(() => [{ n: 0 }]);
    return row!.n === 5;
  }, 30_000);
  await app.kill('SIGTERM');
}, 120_000);

afterAll(async () => {
  await app?.kill();
  await fake?.close();
  await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await sql.end();
  redis.disconnect();
});

describe('the gemello CLI', () => {
  it('started with a start log that names the namespaced keys topic it uses', () => {
    expect(app.output()).toContain(`(namespace ${namespace})`);
    expect(app.output()).toContain(`data keys: topic ${namespace}gemello.keys,`);
  });

  it('lists a conversation\'s events from the log, as a table and as JSON', async () => {
    const table = await gemello('events', conversationId);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^\s+1\s+\S+\s+ConversationStarted/m);
    expect(table.stdout).toMatch(/^\s+5\s+\S+\s+ReplyGenerated/m);
    // A switch before the id does not swallow it.
    const json = await gemello('events', '--json', conversationId);
    expect(JSON.parse(json.stdout).map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('a command that only looks makes no master key: without the deployment\'s it says so and leaves no stray key behind', async () => {
    const dataDir = join(tmpdir(), `gemello-nokey-${randomUUID()}`);
    const r = await runCli(['events', conversationId], { ...env, GEMELLO_MASTER_KEY: '', GEMELLO_DATA_DIR: dataDir }, 60_000);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toContain(`no ${join(dataDir, 'master.key')} and no GEMELLO_MASTER_KEY; this command makes none`);
    expect(r.stderr).toContain('every process of a deployment needs the same GEMELLO_MASTER_KEY');
    expect(existsSync(join(dataDir, 'master.key'))).toBe(false);
  });

  it('shows the state as it was at a seq', async () => {
    const at3 = JSON.parse((await gemello('state', conversationId, '--at', '3')).stdout);
    expect(at3.seq).toBe(3);
    expect(at3.messages.map((m: { content: string }) => m.content)).toEqual(['first', 'echo: first']);
    const now = JSON.parse((await gemello('state', conversationId)).stdout);
    expect(now.seq).toBe(5);
    // Past the end: the state now, and said so.
    const past = await gemello('state', conversationId, '--at', '99');
    expect(JSON.parse(past.stdout).seq).toBe(5);
    expect(past.stderr).toContain("--at 99 is past the conversation's last seq (5)");
    expect(past.code).toBe(0);
    expect((await gemello('state', randomUUID())).code).toBe(1);
    expect((await gemello('state', conversationId, '--at', 'x')).code).toBe(2);
  });

  it('verify passes on consistent copies and finds a corrupted snapshot and read-model row', async () => {
    const ok = await gemello('verify');
    expect(ok.stdout).toMatch(/0 mismatches/);
    expect(ok.code).toBe(0);

    const key = `${namespace}gemello:snapshot:${conversationId}`;
    const snap = JSON.parse((await redis.get(key))!);
    snap.state.messages[0].content = 'tampered in redis';
    await redis.set(key, JSON.stringify(snap));
    await sql.unsafe(`UPDATE ${schema}.messages SET content = 'tampered in postgres' WHERE conversation_id = $1 AND seq = 3`, [conversationId]);

    const bad = await gemello('verify');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`MISMATCH ${conversationId} snapshot`);
    expect(bad.stdout).toContain(`MISMATCH ${conversationId} messages`);
    expect(bad.stdout).toMatch(/^1 conversation checked: [2-9] mismatches$/m);

    // The snapshot comes back from the log.
    expect((await gemello('snapshots', 'rebuild')).code).toBe(0);
    expect(JSON.parse((await redis.get(key))!).state.messages[0].content).toBe('first');
  });

  it('doctor checks each backend', async () => {
    const r = await gemello('doctor');
    expect(r.stdout).toMatch(/^ok\s+event log \(Kafka/m);
    expect(r.stdout).toMatch(/^ok\s+read models \(PostgreSQL/m);
    expect(r.stdout).toMatch(/^ok\s+snapshots \(Redis/m);
    expect(r.code).toBe(0);
    // A partition count that is not the topics': refused, as the start refuses it, with what to set.
    const count = Number(/ok\s+event log partitions: GEMELLO_PARTITIONS=(\d+)/.exec(r.stdout)?.[1]);
    const wrong = await runCli(['doctor'], { ...env, GEMELLO_PARTITIONS: String(count + 1) }, 60_000);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(new RegExp(`^FAIL event log partitions: topic \\S+gemello\\.events has ${count} partitions but GEMELLO_PARTITIONS is ${count + 1}`, 'm'));
    expect(wrong.stdout).toMatch(/fix: set GEMELLO_PARTITIONS to the partition count/);
    const down = await runCli(['doctor'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' }, 60_000);
    expect(down.code).toBe(1);
    // Why, in the socket's words (it once said only that ioredis had reached its retry limit).
    expect(down.stdout).toMatch(/^FAIL snapshots \(Redis at redis:\/\/127\.0\.0\.1:1\): connect ECONNREFUSED 127\.0\.0\.1:1$/m);
    expect(down.stdout).toMatch(/fix: start Redis/);
    // Kafka away too: doctor still reports every backend (it used to die reading the keys topic first).
    const both = await runCli(['doctor'], { ...env, KAFKA_BROKERS: `127.0.0.1:${await freePort()}`, REDIS_URL: 'redis://127.0.0.1:1' }, 60_000);
    expect(both.stdout).toMatch(/^FAIL event log \(Kafka/m);
    expect(both.stdout).toMatch(/^ok\s+read models/m);
    expect(both.stdout).toMatch(/^FAIL snapshots/m);
  });

  it('doctor, events and verify change no read model of an earlier release: doctor names the migrations it lacks', async () => {
    const [last] = await sql.unsafe(`SELECT version, name FROM ${schema}.schema_migrations ORDER BY version::int DESC LIMIT 1`);
    await sql.unsafe(`DELETE FROM ${schema}.schema_migrations WHERE version = $1`, [last!.version]);
    try {
      const doctor = await gemello('doctor');
      expect(doctor.code).toBe(1);
      expect(doctor.stdout).toContain(`FAIL read models (PostgreSQL`);
      expect(doctor.stdout).toContain(`1 migrations not applied: ${last!.name} (doctor changes no schema)`);
      const events = await gemello('events', conversationId);
      expect(events.code, events.stderr).toBe(0);
      expect(events.stderr).toContain(`note: the read model lacks 1 migrations of this gemello (${last!.name}); events changes no schema: gemello migrate applies them`);
      const verified = await gemello('verify');
      expect(verified.stderr).toContain('verify changes no schema');
      expect(await sql.unsafe(`SELECT 1 FROM ${schema}.schema_migrations WHERE version = $1`, [last!.version])).toHaveLength(0);
    } finally {
      await sql.unsafe(`INSERT INTO ${schema}.schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [last!.version, last!.name]);
    }
  });

  it('doctor and verify tell a lost read model from one still catching up, and name a stretch it skipped', async () => {
    // The log's read model lost: a schema of nothing, beside the real one.
    const lost = `${schema}_lost`;
    const onLost = { ...env, DATABASE_SCHEMA: lost };
    try {
      expect((await gemello('doctor')).stdout).toMatch(/^ok\s+read model progress: every one of the log's \d+ records projected/m);
      // A schema that is not there (dropped, or DATABASE_SCHEMA mistyped) is said so, and not made by a command that only looks.
      const missing = await runCli(['doctor'], onLost, 60_000);
      expect(missing.code).toBe(1);
      expect(missing.stdout).toMatch(new RegExp(`^FAIL read models .*there is no schema ${lost} \\(DATABASE_SCHEMA\\)`, 'm'));
      const events = await runCli(['events', conversationId], onLost, 60_000);
      expect(events.code).toBe(1);
      expect(events.stderr).toMatch(new RegExp(`^gemello: there is no schema ${lost} `, 'm'));
      expect(await sql`SELECT 1 FROM pg_namespace WHERE nspname = ${lost}`).toHaveLength(0);
      // Made again, empty: it holds none of the log.
      expect((await runCli(['migrate'], onLost, 60_000)).code).toBe(0);
      const doctor = await runCli(['doctor'], onLost, 60_000);
      expect(doctor.code).toBe(1);
      expect(doctor.stdout).toMatch(/^FAIL read model progress: the read model holds none of the log's \d+ records/m);
      expect(doctor.stdout).toMatch(/fix: start the projections role .* gemello restore/);
      const behind = await runCli(['verify'], onLost, 60_000);
      expect(behind.code).toBe(0);
      expect(behind.stdout).toMatch(/1 conversation checked: 0 mismatches, 1 not yet fully projected \(.*gemello restore/);
      // A checkpoint past the conversation's events, with none of them projected: skipped, not behind.
      await sql.unsafe(`INSERT INTO ${lost}.projection_checkpoints (projection, partition, next_offset) SELECT 'readmodel', p, 1000000 FROM generate_series(0, 11) AS p`);
      const skipped = await runCli(['verify'], onLost, 60_000);
      expect(skipped.code).toBe(1);
      expect(skipped.stdout).toContain(`MISMATCH ${conversationId} read model: not there at all: the read model's checkpoint of partition`);
      expect(skipped.stdout).toMatch(/run `gemello replay --projection readmodel`/);
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${lost} CASCADE`);
    }
  });

  it('doctor says when the events topic would lose history (a topic made with the broker\'s 7 days), and how to fix it', async () => {
    // gemello makes its events topic to keep everything; one made before, or by an operator, may not.
    const ns = `${namespace}short.`;
    const admin = newKafka({ brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: `${ns}gemello.events`, numPartitions: 12, replicationFactor: -1, configEntries: [{ name: 'retention.ms', value: String(7 * 86_400_000) }] }] });
    } finally {
      await admin.disconnect();
    }
    const r = await runCli(['doctor'], { ...env, GEMELLO_NAMESPACE: ns }, 60_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^FAIL event log retention: ${ns.replace(/\./g, '\\.')}gemello\\.events keeps records only 7 days:`, 'm'));
    expect(r.stdout).toContain(`fix: kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${ns}gemello.events --add-config retention.ms=-1,retention.bytes=-1`);
    // The run's own topic, made by gemello, keeps everything.
    expect((await gemello('doctor')).stdout).toMatch(/^ok\s+event log retention: .*gemello\.events keeps every record/m);
  });

  it('names a backend that does not answer and its fix, not a client library\'s stack trace', async () => {
    const r = await runCli(['snapshots', 'rebuild'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' }, 60_000);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/snapshots \(Redis at redis:\/\/127\.0\.0\.1:1\) does not answer/);
    expect(r.stderr).toMatch(/fix: start Redis .* or correct REDIS_URL/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // A role alone too: an actor host whose Redis is away refuses to start before it joins the
    // group (it used to take partitions, say ready, and serve them slowly with no checkpoint).
    const actors = await runCli(['actors'], { ...env, REDIS_URL: 'redis://127.0.0.1:1', GEMELLO_OPS_PORT: String(await freePort()) }, 60_000);
    expect(actors.code, actors.stdout + actors.stderr).toBe(1);
    expect(actors.stderr).toMatch(/snapshots \(Redis at redis:\/\/127\.0\.0\.1:1\) does not answer: connect ECONNREFUSED/);
    expect(actors.stdout + actors.stderr).not.toMatch(/assigned partitions|\bready\b/);
  });

  it('explains bad usage', async () => {
    const r = await gemello('nonsense');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command');
  });

  it('tells bad usage before opening anything: an embedded data directory is not made for it', async () => {
    const dataDir = join(tmpdir(), `gemello-usage-${randomUUID()}`);
    const embedded = { KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '', GEMELLO_DATA_DIR: dataDir };
    for (const [args, message] of [
      [['evnets', conversationId], 'unknown command "evnets"'],
      [['events'], 'usage: gemello events <conversationId>'],
      [['snapshots'], 'usage: gemello snapshots rebuild'],
      [['retention', '--days', '--dry-run'], '--days takes a number of days (0: retention off); none was given'],
      [['state', conversationId, '--at', 'two'], '--at takes a seq (a whole number), not "two"'],
      [['replay'], 'usage: gemello replay --projection <name> [--restart]'],
      [['events', conversationId, '--bogus', 'x'], 'unknown flag --bogus (this command takes --json)'],
      [['events', conversationId, 'extra'], '"extra" is one word too many'],
      [['erase', conversationId, '--by'], '--by takes a value; none was given'],
      // The roles and flows compile too: nothing starts on a command line that says something else.
      [['serve', 'extra'], '"extra" is one word too many'],
      [['serve', '--roles'], '--roles takes a value; none was given'],
      [['gateway', '--roles', 'actors'], 'unknown flag --roles (this command takes none)'],
      [['flows', 'compile', 'flows/examples/onboarding.flow.json', '--bogus'], 'unknown flag --bogus'],
    ] as const) {
      const r = await runCli([...args], embedded, 30_000);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
    }
    // A twins file that cannot be used is named, as a setting, before anything is opened.
    const twins = await runCli(['doctor'], { ...embedded, GEMELLO_TWINS_FILE: join(dataDir, 'twins.json') }, 30_000);
    expect(twins.code, twins.stderr).toBe(2);
    expect(twins.stderr).toContain(`GEMELLO_TWINS_FILE=${join(dataDir, 'twins.json')} cannot be read`);
    expect(twins.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(dataDir)).toBe(false);
  });
});
