// Disaster recovery's RTO: 10,000 conversations × 50 events (500,000, their content sealed
// as the actor host writes it, keys in the keys topic) on real Kafka, with PostgreSQL and
// Redis empty, as after losing both; then `gemello restore` as an operator runs it (a child
// process, the CLI), timed from its start to its exit, each step from its own report.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Buffer } from 'node:buffer';
import postgres from 'postgres';
import { encodeSealedEvent, envelope } from '../events/codec.ts';
import type { DomainEvent } from '../events/schemas.ts';
import { kafkaLog } from '../test/support/kafka.ts';
import { partitionFor } from '../log/partition.ts';
import { TOPICS } from '../log/port.ts';
import type { OutgoingRecord } from '../log/port.ts';
import { createLoggedKeyStore } from '../sealing/key-store.ts';
import { fingerprint } from '../sealing/master-key.ts';
import { createPostgresDb } from '../stores/db-postgres.ts';
import { migrate } from '../projections/migrate.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../test/support/env.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { report, round, startRun } from './report.ts';

const CONVERSATIONS = Number(process.env.BENCH_RESTORE_CONVERSATIONS ?? 10_000);
const EVENTS = 50;
const PARTITIONS = 12;
const CLI = fileURLToPath(new URL('../cli/gemello.ts', import.meta.url));

function conversation(id: string): ReturnType<typeof envelope> {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: null, metadata: {} } }];
  for (let i = 0; domain.length < EVENTS - 1; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `Question ${i}: what do you look for in a company's management?`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `Answer ${i}: integrity first, then intelligence and energy. Look at how they allocate capital.`, model: 'm', tokens: { prompt: 30, completion: 40, total: 70 }, latencyMs: 1, audio: false } });
  }
  domain.push({ type: 'DataConfirmed', data: { data: { name: `Person ${id.slice(0, 6)}` }, requestId: null } });
  return envelope(id, 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
}

const pool = async <T>(items: T[], n: number, f: (x: T) => Promise<void>) => {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await f(items[next++]!);
  }));
};

export async function run(): Promise<void> {
  const runInfo = startRun();
  const real = realEnv('benchrestore');
  const masterKey = new Uint8Array(randomBytes(32));
  const env = { ...real.env, GEMELLO_PARTITIONS: String(PARTITIONS), GEMELLO_MASTER_KEY: Buffer.from(masterKey).toString('base64') };
  const leftovers = { brokers: KAFKA_BROKERS, namespace: real.namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [real.schema, `${real.schema}_rebuild`] };
  const disarm = onInterrupt(() => cleanUp(leftovers));
  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: real.namespace });
  // A scratch database only to make the keys (it is dropped before the restore: the keys then live only in the topic).
  const scratch = createPostgresDb({ url: DATABASE_URL, schema: real.schema });
  try {
    await log.ensureTopics([TOPICS.commands, TOPICS.events]);
    await migrate(scratch);
    const keys = createLoggedKeyStore({ log, db: scratch, master: { key: masterKey, id: fingerprint(masterKey), source: 'bench' } });
    const ids = Array.from({ length: CONVERSATIONS }, () => randomUUID());
    const t0 = performance.now();
    const byPartition = new Map<number, OutgoingRecord[]>();
    await pool(ids, 32, async (id) => {
      const key = await keys.create(id);
      const p = partitionFor(id, PARTITIONS);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      for (const e of conversation(id)) list.push(encodeSealedEvent(e, key));
    });
    await Promise.all([...byPartition].map(async ([p, list]) => {
      for (let i = 0; i < list.length; i += 1000) await log.append(TOPICS.events, p, list.slice(i, i + 1000));
    }));
    const writeS = (performance.now() - t0) / 1000;
    const total = CONVERSATIONS * EVENTS;
    console.log(`wrote ${total} events of ${CONVERSATIONS} conversations in ${writeS.toFixed(1)} s`);
    await scratch.close();
    const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP SCHEMA "${real.schema}" CASCADE`);
    await admin.end();

    const r0 = performance.now();
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [CLI, 'restore'], { env: { ...process.env, ...env }, timeout: 1_800_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
    });
    const rto = (performance.now() - r0) / 1000;
    console.log(out);
    const replay = /in ([\d.]+) s \(([\d,]+) records\/s\)/.exec(out);
    const replayS = replay ? Number(replay[1]) : NaN;
    const check = postgres(DATABASE_URL, { max: 1, onnotice: () => {}, connection: { search_path: real.schema } });
    const n = (await check<{ n: number }[]>`SELECT count(*)::int AS n FROM conversations`)[0]!.n;
    const m = (await check<{ m: number }[]>`SELECT count(*)::int AS m FROM messages WHERE content LIKE 'Question%'`)[0]!.m;
    await check.end();
    if (n !== CONVERSATIONS) throw new Error(`restore left ${n} conversations, not ${CONVERSATIONS}`);
    report({
      name: 'restore',
      params: { ...runInfo.params(), conversations: CONVERSATIONS, events_per_conversation: EVENTS, events: total, partitions: PARTITIONS, sealed: true, command: 'gemello restore (child process, Node 24)' },
      metrics: { rto_s: round(rto, 1), replay_s: round(replayS, 1), replay_events_per_s: Math.round(total / replayS), rest_s: round(rto - replayS, 1), conversations_restored: n, prompts_readable: m },
      table: [
        [`RTO: gemello restore, ${total.toLocaleString('en-US')} events, PG and Redis empty`, `${rto.toFixed(1)} s`, 'measured (no goal set)'],
        ['  of which the read model replay', `${replayS.toFixed(1)} s (${Math.round(total / replayS).toLocaleString('en-US')} events/s)`, '≥ 100,000 events/s (replay)'],
        ['  migrations, key sync, snapshots, process start', `${(rto - replayS).toFixed(1)} s`, ''],
        ['conversations / prompts readable after', `${n} / ${m}`, `${CONVERSATIONS} / ${CONVERSATIONS * 24}`],
      ],
    });
  } finally {
    disarm();
    await log.close().catch(() => {});
    await scratch.close().catch(() => {});
    await cleanUp(leftovers);
    // The restore's replay leaves the tables it replaced in <schema>_old_<time>.
    const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    for (const { nspname } of await admin<{ nspname: string }[]>`SELECT nspname FROM pg_namespace WHERE nspname LIKE ${real.schema + '_old_%'}`) await admin.unsafe(`DROP SCHEMA "${nspname}" CASCADE`);
    await admin.end();
  }
}
