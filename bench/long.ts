// Conversations of 10, 1,000 and 10,000 prompts side by side, on real Kafka, PostgreSQL and
// Redis with a zero-latency OpenAI-compatible model: snapshot bytes, activation time (the
// snapshot tier and the read-model tier, in this process, as the actor host does it) and
// prompt → reply latency over a WebSocket, the first prompt after a restart included. Goal:
// the 10,000-prompt conversation within 1.2× of the 10-prompt one. Each conversation's first
// prompts and replies are appended straight to the log, as an actor host would have written
// them; the prompts measured go through sockets, the actor host and the model.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRecovery } from '../actors/recovery.ts';
import type { SnapshotStore } from '../actors/ports.ts';
import { TailIndex } from '../actors/tail.ts';
import { envelope } from '../events/codec.ts';
import type { DomainEvent } from '../events/schemas.ts';
import { createKafkaLog } from '../log/kafka.ts';
import { partitionFor } from '../log/partition.ts';
import { TOPICS } from '../log/port.ts';
import { createReadModelStateSource } from '../projections/state-source.ts';
import { createPostgresDb } from '../stores/db-postgres.ts';
import { createRedisSnapshotStore } from '../stores/snapshots/redis.ts';
import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../test/support/env.ts';
import { fakeModelEnv, freePort, startGemello } from '../test/support/processes.ts';
import type { Gemello } from '../test/support/processes.ts';
import { appendEvents } from '../test/support/readmodel.ts';
import { connect } from '../test/support/ws-client.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { percentile, report, round, startRun } from './report.ts';

const LENGTHS = [10, 1_000, 10_000];
const PROMPTS = Number(process.env.BENCH_LONG_PROMPTS ?? 200);
const WARMUP = 20;
const ACTIVATIONS = Number(process.env.BENCH_LONG_ACTIVATIONS ?? 300);
const PARTITIONS = 4;
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

/** A conversation's first `prompts` prompts and replies, of the size a chat has (≈ 90 and 160 characters). */
function history(id: string, prompts: number): ReturnType<typeof envelope> {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: seed.digitalTwinId, twinName: seed.digitalTwinName, userId: null, metadata: {} } }];
  for (let i = 0; i < prompts; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `Question ${i}: what do you look for in a company's management before you buy its shares?`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `Answer ${i}: integrity first, then intelligence and energy; without the first, the other two will hurt you. Look at how they allocate capital.`, model: 'm', tokens: { prompt: 30, completion: 40, total: 70 }, latencyMs: 1, audio: false } });
  }
  return envelope(id, 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
}

/**
 * The conversations of each length. The measured prompts make a conversation longer, so the
 * short length is a set of SHORT conversations taking turns (each ends near 10 prompts + its
 * share); the long ones are one conversation each whose backlog leaves room for the
 * measured prompts (each ends at its length).
 */
const SHORT = 20;
function groups(): Array<{ length: number; ids: string[]; backlog: number }> {
  return LENGTHS.map((length, i) => {
    const n = i === 0 ? SHORT : 1;
    const measured = Math.ceil((WARMUP + PROMPTS) / n) + 1;
    return { length, ids: Array.from({ length: n }, () => `long-${length}-${randomUUID()}`), backlog: Math.max(0, i === 0 ? length : length - measured) };
  });
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const real = realEnv('benchlong');
  const env = { ...real.env, GEMELLO_PARTITIONS: String(PARTITIONS), GEMELLO_RATE_PER_SEC: '100000', GEMELLO_RATE_BURST: '100000', GEMELLO_LOG_QUIET: '1' };
  const leftovers = { brokers: KAFKA_BROKERS, namespace: real.namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [real.schema] };
  const fake = await startFakeOpenAI({ keep: 5 });
  let app = null as Gemello | null;
  const disarm = onInterrupt(async () => {
    await app?.kill('SIGKILL');
    await fake.close();
    await cleanUp(leftovers);
  });
  const sets = groups();
  /** The conversation of each length that snapshot bytes and activation are measured on. */
  const conversations = sets.map((g) => g.ids[0]!);
  const log = createKafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: real.namespace });
  const db = createPostgresDb({ url: DATABASE_URL, schema: real.schema });
  const snapshots = createRedisSnapshotStore({ url: REDIS_URL, prefix: `${real.namespace}gemello:` });
  const redis = new Redis(REDIS_URL);
  try {
    await log.ensureTopics([TOPICS.commands, TOPICS.events]);
    await appendEvents(log, sets.flatMap((g) => g.ids.flatMap((id) => history(id, g.backlog))));
    const port = await freePort();
    const start = async () => {
      app = await startGemello(['serve'], { ...env, ...fakeModelEnv(fake), PORT: String(port) });
      return app;
    };
    let serving = await start();
    // The read model has every backlog event before the prompts start.
    for (const g of sets) {
      for (const id of g.ids) {
        for (let k = 0; k < 600; k++) {
          const r = await fetch(`http://127.0.0.1:${port}/api/conversations/${id}`);
          if (r.status === 200 && ((await r.json()) as { lastSeq: number }).lastSeq >= 2 * g.backlog + 1) break;
          await new Promise((res) => setTimeout(res, 100));
        }
      }
    }

    // Prompt → reply, round robin over the three conversations so that the machine's noise falls on each alike.
    const clients = await Promise.all(sets.map(() => connect(`ws://127.0.0.1:${port}/ws`)));
    const latency: number[][] = sets.map(() => []);
    for (let k = 0; k < WARMUP + PROMPTS; k++) {
      for (const [i, g] of sets.entries()) {
        const id = g.ids[k % g.ids.length]!;
        const t0 = performance.now();
        clients[i]!.send({ ...seed, conversationId: id, prompt: `prompt ${k} now` });
        const f = await clients[i]!.next((x) => x.type === 'reply' || x.type === 'error', 30_000);
        if (f.type !== 'reply') throw new Error(`prompt failed: ${JSON.stringify(f)}`);
        if (k >= WARMUP) latency[i]!.push(performance.now() - t0);
      }
    }
    for (const c of clients) c.close();
    await serving.kill('SIGTERM'); // writes every resident conversation's snapshot
    app = null;

    const snapshotBytes = await Promise.all(conversations.map((id) => redis.strlen(`${real.namespace}gemello:snapshot:${id}`)));
    const stateBytes = await Promise.all(conversations.map(async (id) => Number((await db.query<{ n: number }>('SELECT octet_length(state::text) AS n FROM conversations WHERE id = $1', [id]))[0]?.n ?? 0)));

    // Activation as the actor host does it, with an empty tail (a clean stop left nothing after the snapshots).
    const endsNow = await log.endOffsets(TOPICS.events);
    const tails = conversations.map((id) => new TailIndex(endsNow[partitionFor(id, PARTITIONS)]!));
    const readModel = createReadModelStateSource(db, 'readmodel', 40);
    const none: SnapshotStore = { ...snapshots, get: async () => null };
    const viaSnapshot = createRecovery({ log, snapshots, readModel, historyMessages: 40 });
    const viaReadModel = createRecovery({ log, snapshots: none, readModel, historyMessages: 40 });
    const activation = { snapshot: conversations.map(() => [] as number[]), readmodel: conversations.map(() => [] as number[]) };
    for (let k = 0; k < ACTIVATIONS; k++) {
      for (const [i, id] of conversations.entries()) {
        for (const [tier, recovery] of [['snapshot', viaSnapshot], ['readmodel', viaReadModel]] as const) {
          const t0 = performance.now();
          const r = await recovery.recover(id, partitionFor(id, PARTITIONS), tails[i]!);
          const ms = performance.now() - t0;
          if (r.tier !== tier) throw new Error(`expected the ${tier} tier for ${id}, got ${r.tier} (${r.skipped.join('; ')})`);
          if (k >= 20) activation[tier][i]!.push(ms);
        }
      }
    }

    // The first prompt after a restart: activation from the snapshot plus the prompt.
    serving = await start();
    const firstAfterRestart: number[] = [];
    for (const id of conversations) {
      const c = await connect(`ws://127.0.0.1:${port}/ws`);
      const t0 = performance.now();
      c.send({ ...seed, conversationId: id, prompt: 'after the restart' });
      const f = await c.next((x) => x.type === 'reply' || x.type === 'error', 30_000);
      if (f.type !== 'reply') throw new Error(`prompt after restart failed: ${JSON.stringify(f)}`);
      firstAfterRestart.push(performance.now() - t0);
      c.close();
    }
    await serving.kill('SIGTERM');
    app = null;

    const metrics: Record<string, number> = {};
    const table: Array<[string, string, string]> = [];
    const cols = (f: (i: number) => number, unit: string, digits = 2) => LENGTHS.map((_, i) => `${round(f(i), digits)}${unit}`).join(' / ');
    for (const [i, n] of LENGTHS.entries()) {
      metrics[`snapshot_bytes_${n}`] = snapshotBytes[i]!;
      metrics[`readmodel_state_bytes_${n}`] = stateBytes[i]!;
      metrics[`prompt_p50_ms_${n}`] = round(percentile(latency[i]!, 50));
      metrics[`prompt_p95_ms_${n}`] = round(percentile(latency[i]!, 95));
      metrics[`activation_snapshot_p50_ms_${n}`] = round(percentile(activation.snapshot[i]!, 50));
      metrics[`activation_snapshot_p99_ms_${n}`] = round(percentile(activation.snapshot[i]!, 99));
      metrics[`activation_readmodel_p50_ms_${n}`] = round(percentile(activation.readmodel[i]!, 50));
      metrics[`activation_readmodel_p99_ms_${n}`] = round(percentile(activation.readmodel[i]!, 99));
      metrics[`first_prompt_after_restart_ms_${n}`] = round(firstAfterRestart[i]!);
    }
    const ratio = (name: string) => round(metrics[`${name}_10000`]! / metrics[`${name}_10`]!);
    for (const name of ['snapshot_bytes', 'prompt_p50_ms', 'activation_snapshot_p50_ms', 'activation_readmodel_p50_ms']) metrics[`${name}_ratio_10000_over_10`] = ratio(name);
    const goal = (name: string) => (metrics[`${name}_ratio_10000_over_10`]! <= 1.2 ? `≤ 1.2× (met: ${metrics[`${name}_ratio_10000_over_10`]}×)` : `≤ 1.2× (NOT met: ${metrics[`${name}_ratio_10000_over_10`]}×)`);
    table.push(
      ['conversation length (prompts)', sets.map((g) => (g.ids.length > 1 ? `${g.length}–${g.length + Math.ceil((WARMUP + PROMPTS) / g.ids.length) + 1}` : String(g.length))).join(' / '), ''],
      ['snapshot bytes', cols((i) => snapshotBytes[i]!, ' B', 0), `≤ 32 KB; ${goal('snapshot_bytes')}`],
      ['read-model state bytes (conversations.state)', cols((i) => stateBytes[i]!, ' B', 0), ''],
      ['prompt → reply p50', cols((i) => metrics[`prompt_p50_ms_${LENGTHS[i]}`]!, ' ms'), goal('prompt_p50_ms')],
      ['prompt → reply p95', cols((i) => metrics[`prompt_p95_ms_${LENGTHS[i]}`]!, ' ms'), ''],
      ['activation, snapshot tier, p50', cols((i) => metrics[`activation_snapshot_p50_ms_${LENGTHS[i]}`]!, ' ms', 3), goal('activation_snapshot_p50_ms')],
      ['activation, snapshot tier, p99', cols((i) => metrics[`activation_snapshot_p99_ms_${LENGTHS[i]}`]!, ' ms', 3), ''],
      ['activation, read-model tier, p50', cols((i) => metrics[`activation_readmodel_p50_ms_${LENGTHS[i]}`]!, ' ms', 3), goal('activation_readmodel_p50_ms')],
      ['first prompt after a restart (one each)', cols((i) => firstAfterRestart[i]!, ' ms'), ''],
    );
    report({
      name: 'long',
      params: { ...runInfo.params(), lengths: LENGTHS, short_conversations: SHORT, prompts_measured: PROMPTS, warmup: WARMUP, activations: ACTIVATIONS, partitions: PARTITIONS, history_messages: 40, model: 'fake OpenAI-compatible server, zero latency', speech: 'off' },
      metrics,
      table,
    });
  } finally {
    await app?.kill();
    await fake.close();
    await log.close().catch(() => {});
    await snapshots.close().catch(() => {});
    await db.close().catch(() => {});
    redis.disconnect();
    const problems = await cleanUp(leftovers);
    disarm();
    if (problems.length) console.log(`clean-up problems: ${problems.join('; ')}`);
  }
}
