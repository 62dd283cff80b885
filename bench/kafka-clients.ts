// The two Kafka clients side by side through gemello's own EventLog port, on the same broker in
// one run: single appends (what a prompt waits for), batched appends (catch-up writers), a
// partition read to its end (recovery and replay) and a consumer group draining a topic (the
// actor host and the projector). The faster one is the default (log/kafka-client.ts).
import { randomUUID } from 'node:crypto';
import { createKafkaLog } from '../log/kafka.ts';
import type { KafkaClient } from '../log/kafka-client.ts';
import type { KafkaLogOptions } from '../log/kafka-options.ts';
import { createPlatformaticLog } from '../log/platformatic.ts';
import type { EventLog, OutgoingRecord } from '../log/port.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../test/support/env.ts';
import { cleanUp } from './cleanup.ts';
import { percentile, report, round, startRun } from './report.ts';

const SINGLE = Number(process.env.BENCH_SINGLE ?? 300);
const BATCHED = Number(process.env.BENCH_BATCHED ?? 40_000);
const BATCH = 500;
const PARTITIONS = 12;
const make: Record<KafkaClient, (o: KafkaLogOptions) => EventLog> = { kafkajs: createKafkaLog, platformatic: createPlatformaticLog };

const value = 'x'.repeat(560);
const rec = (i: number): OutgoingRecord => ({ key: `conv-${i % 97}`, value: `{"i":${i},"v":"${value}"}`, headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });

async function measure(client: KafkaClient, namespace: string) {
  const log = make[client]({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: `${namespace}${client}.`, clientId: `gemello-bench-${client}` });
  try {
    await log.ensureTopics(['single', 'batched']);
    // Single appends, one at a time: the latency a prompt's PromptReceived waits for.
    const single: number[] = [];
    for (let i = 0; i < SINGLE + 30; i++) {
      const t0 = performance.now();
      await log.append('single', i % PARTITIONS, [rec(i)]);
      if (i >= 30) single.push(performance.now() - t0);
    }
    // Batched appends, 8 writers side by side.
    const t1 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < BATCHED) {
        const start = next;
        next += BATCH;
        await log.append('batched', (start / BATCH) % PARTITIONS, Array.from({ length: BATCH }, (_, j) => rec(start + j)));
      }
    }));
    const appendPerSec = BATCHED / ((performance.now() - t1) / 1000);
    // Read every partition to its end, side by side (recovery, replay).
    const t2 = performance.now();
    let read = 0;
    await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => log.read('batched', p, 0, (rs) => void (read += rs.length))));
    const readPerSec = read / ((performance.now() - t2) / 1000);
    // A consumer group draining the topic from the start (join included).
    const t3 = performance.now();
    let consumed = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const sub = await log.consume({ group: 'drain', topic: 'batched', from: 'earliest', handle: async (_p, rs) => { consumed += rs.length; if (consumed >= BATCHED) done(); } });
    await all;
    const consumePerSec = BATCHED / ((performance.now() - t3) / 1000);
    await sub.stop();
    return {
      single_append_p50_ms: round(percentile(single, 50)),
      single_append_p99_ms: round(percentile(single, 99)),
      batched_append_per_s: Math.round(appendPerSec),
      read_per_s: Math.round(readPerSec),
      consume_per_s: Math.round(consumePerSec),
    };
  } finally {
    await log.close();
  }
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const namespace = `benchkc${randomUUID().slice(0, 8)}.`;
  try {
    // Each client twice, interleaved, so a noisy minute on the shared machine hits both.
    const results: Record<KafkaClient, Array<Awaited<ReturnType<typeof measure>>>> = { kafkajs: [], platformatic: [] };
    for (const round_ of [0, 1]) for (const c of ['kafkajs', 'platformatic'] as const) results[c].push(await measure(c, `${namespace}${round_}`));
    const best = (c: KafkaClient) => {
      const [a, b] = results[c] as [Awaited<ReturnType<typeof measure>>, Awaited<ReturnType<typeof measure>>];
      return {
        single_append_p50_ms: Math.min(a.single_append_p50_ms, b.single_append_p50_ms),
        single_append_p99_ms: Math.min(a.single_append_p99_ms, b.single_append_p99_ms),
        batched_append_per_s: Math.max(a.batched_append_per_s, b.batched_append_per_s),
        read_per_s: Math.max(a.read_per_s, b.read_per_s),
        consume_per_s: Math.max(a.consume_per_s, b.consume_per_s),
      };
    };
    const k = best('kafkajs');
    const p = best('platformatic');
    const metrics: Record<string, number> = {};
    for (const [key, v] of Object.entries(k)) metrics[`kafkajs_${key}`] = v;
    for (const [key, v] of Object.entries(p)) metrics[`platformatic_${key}`] = v;
    const row = (what: string, key: keyof typeof k, unit: string, lowerIsBetter = false): [string, string, string] => {
      const winner = (lowerIsBetter ? p[key] < k[key] : p[key] > k[key]) ? 'platformatic' : 'kafkajs';
      return [what, `kafkajs ${k[key]}${unit} · platformatic ${p[key]}${unit}`, `faster: ${winner}`];
    };
    report({
      name: 'kafka-clients',
      params: { ...runInfo.params(), backends: 'Kafka 4.1 on 127.0.0.1 (shared broker)', single_appends: SINGLE, batched_records: BATCHED, batch: BATCH, record_bytes: rec(0).value.length, partitions: PARTITIONS, runs_per_client: 2, figure: 'best of the two runs' },
      metrics,
      table: [
        row('single append (acks=all) p50', 'single_append_p50_ms', ' ms', true),
        row('single append p99', 'single_append_p99_ms', ' ms', true),
        row(`append, batches of ${BATCH}, 8 writers`, 'batched_append_per_s', '/s'),
        row('read 12 partitions to the end', 'read_per_s', '/s'),
        row('consumer group drains the topic (join incl.)', 'consume_per_s', '/s'),
      ],
    });
  } finally {
    const problems = await cleanUp({ brokers: KAFKA_BROKERS, namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [] });
    if (problems.length) console.log(`clean-up problems: ${problems.join('; ')}`);
  }
}
