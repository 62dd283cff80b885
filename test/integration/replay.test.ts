// `gemello replay --projection readmodel` as an operator runs it, against a live node on
// real Kafka, Postgres and Redis: the rebuild goes into fresh tables while the old ones keep
// serving the HTTP API and the live projector keeps projecting new prompts, then switches;
// killed half-way, it resumes where it stopped. And the same rebuild on the embedded backends.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verify } from '../../cli/verify.ts';
import { createFileLog } from '../../log/file.ts';
import { kafkaLog } from '../support/kafka.ts';
import type { EventLog } from '../../log/port.ts';
import { createPGliteDb } from '../../stores/db-pglite.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import { testKeyStore } from '../support/keys.ts';
import { migrate } from '../../projections/migrate.ts';
import { createProjector } from '../../projections/projector.ts';
import { rebuildReadModel } from '../../projections/rebuild.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createRedisSnapshotStore } from '../../stores/snapshots/redis.ts';
import type { Db } from '../../stores/sql.ts';
import { createReadModelStateSource } from '../../projections/state-source.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../support/env.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { appendEvents, backlog, expectRowsMatchLog, waitCaughtUp } from '../support/readmodel.ts';
import { connect } from '../support/ws-client.ts';

const CLI = fileURLToPath(new URL('../../cli/gemello.ts', import.meta.url));
const PARTITIONS = 6;
const { namespace, schema, env: realServices } = realEnv('rp');
const env = {
  ...realServices,
  GEMELLO_PARTITIONS: String(PARTITIONS),
  GEMELLO_SPEECH: 'off',
  GEMELLO_LOG_QUIET: '1',
};
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let fake: FakeOpenAI;
let app: Gemello;
let base = '';
let log: EventLog;
let db: Db;
const admin = postgres(DATABASE_URL, { max: 2, onnotice: () => {} });
const snapshots = createRedisSnapshotStore({ url: REDIS_URL, prefix: `${namespace}gemello:` });

/** Runs `gemello <args>` as the operator would, with the node's environment. */
function gemello(...args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code, signal) => setImmediate(() => resolve({ code, signal, stdout, stderr })));
  });
  return { child, done, stderr: () => stderr };
}

/** Log records the rebuild schema has applied (0 before it exists). */
async function rebuilt(): Promise<number> {
  const rows = await admin.unsafe(`SELECT coalesce(sum(next_offset), 0)::int AS n FROM "${schema}_rebuild".projection_checkpoints`).catch(() => [{ n: 0 }]);
  return Number(rows[0]!.n);
}

async function logTotal(): Promise<number> {
  return (await log.endOffsets('gemello.events')).reduce((a, b) => a + b, 0);
}

async function verifyAll() {
  return verify({ log, snapshots, readModel: createReadModelStateSource(db), db, keys: testKeyStore(log, db) });
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const port = await freePort();
  base = `127.0.0.1:${port}`;
  app = await startGemello(['serve'], { ...env, PORT: String(port), OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url });
  log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
  db = createPostgresDb({ url: DATABASE_URL, schema });
}, 120_000);

afterAll(async () => {
  await app?.kill();
  await fake?.close();
  await log?.close();
  await db?.close();
  // This run's keys only (the shared Redis serves other suites meanwhile).
  for (let cursor = '0'; ; ) {
    const [next, keys] = await snapshots.redis.scan(cursor, 'MATCH', `${namespace}*`, 'COUNT', 1000);
    if (keys.length) await snapshots.redis.del(...keys);
    if ((cursor = next) === '0') break;
  }
  await snapshots.close();
  const rows = await admin`SELECT nspname FROM pg_namespace WHERE nspname = ${schema} OR nspname LIKE ${`${schema}\\_%`}`;
  for (const r of rows) await admin.unsafe(`DROP SCHEMA IF EXISTS "${r.nspname}" CASCADE`);
  await admin.end();
});

describe('gemello replay --projection readmodel', () => {
  it('rebuilds into fresh tables while the old ones serve, switches, and loses or doubles nothing', async () => {
    // A conversation the API is asked for all along, and a backlog so the rebuild has work.
    const a = await connect(`ws://${base}/ws`);
    let conversationId = '';
    for (const prompt of ['one', 'two', 'three']) {
      a.send({ ...seed, prompt });
      conversationId = (await a.next((f) => f.type === 'reply')).conversationId as string;
    }
    a.close();
    await appendEvents(log, backlog(300, 10, 'replay'));
    await waitCaughtUp(db, log);

    let stop = false;
    const polls: { status: number; lastSeq?: number; messages?: number; at: number }[] = [];
    const poller = (async () => {
      while (!stop) {
        const res = await fetch(`http://${base}/api/conversations/${conversationId}`);
        const body = (await res.json()) as { lastSeq: number; messages: unknown[] };
        polls.push({ status: res.status, lastSeq: body.lastSeq, messages: body.messages?.length, at: Date.now() });
        await sleep(5);
      }
    })();
    // Live traffic: the live projector commits every few milliseconds, also while the switch runs.
    const replies: number[] = [];
    const talkers = Array.from({ length: 4 }, async (_, i) => {
      const c = await connect(`ws://${base}/ws`);
      for (let n = 0; !stop; n++) {
        c.send({ ...seed, prompt: `live ${i}.${n}` });
        const f = await c.next((x) => x.type === 'reply' || x.type === 'error', 20_000);
        if (f.type === 'reply') replies.push(f.seq as number);
        await sleep(50);
      }
      c.close();
    });

    const t0 = Date.now();
    const r = await gemello('replay', '--projection', 'readmodel', '--progress').done;
    const switchedAt = Date.now();
    await sleep(1_000);
    stop = true;
    await Promise.all([poller, ...talkers]);
    console.log(`replay while serving: ${((switchedAt - t0) / 1000).toFixed(1)} s, ${polls.length} API reads, ${replies.length} live replies\n${r.stdout}`);

    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/rebuilding readmodel from offset 0 into schema "rp_\w+_rebuild"/);
    expect(r.stderr).toMatch(/rebuilding readmodel: \d+\/\d+ \(\d+\/s\)/); // done/total (events/s), time left
    expect(r.stderr).toMatch(/rebuilding readmodel: (\d+)\/\1 \(\d+\/s\) in \d+\.\d s/);
    expect(r.stdout).toMatch(new RegExp(`switched: schema "${schema}" now serves the rebuilt tables \\([\\d,]+ conversations`));
    const old = /the old tables are in schema "([^"]+)"/.exec(r.stdout)?.[1];
    expect(old).toMatch(new RegExp(`^${schema}_old_\\d{8}_\\d{6}$`));

    // The API answered every time, before, during and after the switch, and never went back.
    expect(polls.length).toBeGreaterThan(20);
    expect(polls.filter((p) => p.status !== 200)).toEqual([]);
    expect(new Set(polls.map((p) => `${p.lastSeq}/${p.messages}`))).toEqual(new Set(['7/6']));
    expect(polls.some((p) => p.at > switchedAt)).toBe(true);
    expect(replies.length).toBeGreaterThan(10);

    // The old tables are kept aside; the rebuild schema is gone; the kept tables stayed.
    const [oldRows] = await admin.unsafe(`SELECT count(*)::int AS n FROM "${old}".events`);
    expect(oldRows!.n).toBeGreaterThan(6000);
    expect(await admin`SELECT 1 FROM pg_namespace WHERE nspname = ${`${schema}_rebuild`}`).toHaveLength(0);
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM digital_twins'))[0]!.n).toBeGreaterThan(0);

    // The live projector went on in the new tables: every event exactly once, and every copy agrees.
    await waitCaughtUp(db, log);
    const expected = await expectRowsMatchLog(db, log, testKeyStore(log, db));
    expect(expected.size).toBeGreaterThanOrEqual(300 + 1 + 4);
    const v = await verifyAll();
    expect(v.mismatches).toEqual([]);
    expect(v.behind).toBe(0);
    const res = await fetch(`http://${base}/api/conversations/${conversationId}`);
    expect(((await res.json()) as { messages: { content: string }[] }).messages.map((m) => m.content)).toEqual(['one', 'echo: one', 'two', 'echo: two', 'three', 'echo: three']);
  }, 90_000);

  it('resumes after SIGKILL and after Ctrl-C from the rebuild schema\'s checkpoints, not from 0', async () => {
    await appendEvents(log, backlog(800, 10, 'resume'));
    const total = await logTotal();

    const killed = gemello('replay', '--projection', 'readmodel', '--progress');
    for (const end = Date.now() + 60_000; (await rebuilt()) < 3_000 && Date.now() < end; ) await sleep(20);
    killed.child.kill('SIGKILL');
    expect((await killed.done).signal).toBe('SIGKILL');
    const afterKill = await rebuilt();
    expect(afterKill).toBeGreaterThan(0);
    expect(afterKill).toBeLessThan(total);

    const interrupted = gemello('replay', '--projection', 'readmodel', '--progress');
    for (const end = Date.now() + 60_000; (await rebuilt()) < afterKill + 3_000 && Date.now() < end; ) await sleep(20);
    interrupted.child.kill('SIGINT');
    const i = await interrupted.done;
    expect(i.code, i.stderr).toBe(130);
    expect(i.stderr).toMatch(/resuming the rebuild of readmodel in schema "rp_\w+_rebuild": \d+ of \d+ log records were applied by an earlier run/);
    expect(i.stderr).toMatch(/interrupted; the rebuild so far is kept in schema "rp_\w+_rebuild": run the same command again to resume/);
    const afterInt = await rebuilt();
    expect(afterInt).toBeGreaterThan(afterKill);
    // Ctrl-C stops after the batches in flight: on a fast machine those can be the last ones
    // (then the next run only switches); what matters is that they are kept, not redone.
    expect(afterInt).toBeLessThanOrEqual(total);

    const t0 = Date.now();
    const r = await gemello('replay', '--projection', 'readmodel', '--progress').done;
    console.log(`resumed replay: ${((Date.now() - t0) / 1000).toFixed(1)} s (killed at ${afterKill}, interrupted at ${afterInt} of ${total} records)\n${r.stdout}`);
    expect(r.code, r.stderr).toBe(0);
    const resumed = Number(/resumed: ([\d,]+) records/.exec(r.stdout)?.[1]?.replaceAll(',', ''));
    const read = Number(/: ([\d,]+) log records read/.exec(r.stdout)?.[1]?.replaceAll(',', ''));
    expect(resumed).toBeGreaterThanOrEqual(afterInt);
    expect(read).toBeLessThanOrEqual(total - afterInt);

    await waitCaughtUp(db, log, 60_000);
    const expected = await expectRowsMatchLog(db, log, testKeyStore(log, db));
    expect(expected.size).toBeGreaterThanOrEqual(300 + 1 + 4 + 800);
    const v = await verifyAll();
    expect(v.mismatches).toEqual([]);
    expect(v.behind).toBe(0);
  }, 90_000);

  it('explains what it can rebuild', async () => {
    const r = await gemello('replay', '--projection', 'nope').done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no projection "nope"');
    expect(r.stderr).toMatch(/readmodel\s+the Postgres read model/);
  });
});

describe('the same rebuild on the embedded backends (file log, PGlite)', () => {
  it('rebuilds into fresh tables beside a live projector and switches in PGlite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gemello-replay-'));
    const flog = createFileLog({ dir, partitions: 3 });
    const pg = createPGliteDb();
    const projector = createProjector({ log: flog, db: pg, keys: testKeyStore(flog, pg), idleCheckMs: 200 });
    try {
      await migrate(pg);
      await projector.start();
      await appendEvents(flog, backlog(30, 3, 'embedded'));
      await projector.caughtUp({ timeoutMs: 20_000 });
      const r = await rebuildReadModel({ log: flog, db: pg, keys: testKeyStore(flog, pg) });
      expect(r.live).toBe('public');
      expect(r.old).toMatch(/^public_old_\d{8}_\d{6}$/);
      expect(r.counts).toEqual({ conversations: 30, messages: 180, events: 210 });
      // The live projector carries on in the new tables.
      await appendEvents(flog, backlog(5, 1, 'after'));
      await projector.caughtUp({ timeoutMs: 20_000 });
      const expected = await expectRowsMatchLog(pg, flog);
      expect(expected.size).toBe(35);
      const v = await verify({ log: flog, snapshots: createMemorySnapshotStore(), readModel: createReadModelStateSource(pg), db: pg });
      expect(v).toEqual({ conversations: 35, mismatches: [], behind: 0 });
    } finally {
      await projector.stop();
      await flog.close();
      await pg.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('drops the replaced tables when they held nothing, and leaves what is not its own in the schema where it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gemello-replay-'));
    const flog = createFileLog({ dir, partitions: 3 });
    const pg = createPGliteDb();
    try {
      // A fresh database (what restore rebuilds into): the migrations made the tables, nothing is in them.
      await migrate(pg);
      await pg.exec("CREATE TABLE analyst_notes (note text); INSERT INTO analyst_notes VALUES ('mine')");
      await appendEvents(flog, backlog(3, 1, 'fresh'));
      const r = await rebuildReadModel({ log: flog, db: pg, keys: testKeyStore(flog, pg) });
      expect(r.counts.conversations).toBe(3);
      expect(r.old).toBeNull();
      expect(await pg.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'public_old_%'")).toEqual([]);
      expect(await pg.query('SELECT note FROM public.analyst_notes')).toEqual([{ note: 'mine' }]);
    } finally {
      await flog.close();
      await pg.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
