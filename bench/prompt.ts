// Prompt → reply latency over a WebSocket, one conversation, on real Kafka, Postgres and
// Redis with a zero-latency OpenAI-compatible model, plus the failover time after SIGKILL.
import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../test/support/env.ts';
import { fakeModelEnv, startTwoHostCluster } from '../test/support/processes.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { connect } from '../test/support/ws-client.ts';
import { partitionFor } from '../log/partition.ts';
import { percentile, report, round } from './report.ts';

const PROMPTS = Number(process.env.BENCH_PROMPTS ?? 200);

export async function run(): Promise<void> {
  const fake = await startFakeOpenAI();
  let cluster: Awaited<ReturnType<typeof startTwoHostCluster>>;
  try {
    cluster = await startTwoHostCluster('bench', 4, { ...fakeModelEnv(fake), GEMELLO_RATE_PER_SEC: '100000', GEMELLO_RATE_BURST: '100000', GEMELLO_LOG_QUIET: '1' });
  } catch (err) {
    await fake.close();
    throw err;
  }
  const { port, gateway, a, b, namespace, schema } = cluster;
  const leftovers = { brokers: KAFKA_BROKERS, namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [schema] };
  const disarm = onInterrupt(async () => {
    await Promise.all([gateway, a, b].map((p) => p.kill('SIGKILL')));
    await cleanUp(leftovers);
  });
  try {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
    const latencies: number[] = [];
    let conversationId = '';
    for (let i = 0; i < PROMPTS + 20; i++) {
      const t0 = performance.now();
      client.send({ ...seed, prompt: `question ${i}` });
      const r = await client.next((f) => f.type === 'reply');
      if (i >= 20) latencies.push(performance.now() - t0); // the first 20 warm up
      conversationId = r.conversationId as string;
    }
    // Failover: kill the owner of this conversation's partition, time until the next reply.
    const p = partitionFor(conversationId, 4);
    const owner = a.owned().includes(p) ? a : b;
    await owner.kill('SIGKILL');
    const t0 = performance.now();
    client.send({ ...seed, prompt: 'after the kill' });
    await client.next((f) => f.type === 'reply', 60_000);
    const failoverMs = performance.now() - t0;
    client.close();
    const metrics = {
      prompt_reply_p50_ms: round(percentile(latencies, 50)),
      prompt_reply_p95_ms: round(percentile(latencies, 95)),
      prompt_reply_p99_ms: round(percentile(latencies, 99)),
      failover_ms: Math.round(failoverMs),
    };
    report({
      name: 'prompt',
      params: { prompts: PROMPTS, partitions: 4, hosts: 2, model: 'fake OpenAI-compatible server, zero latency', kafka_session_timeout_ms: 6000, kafka_client: process.env.GEMELLO_KAFKA_CLIENT || 'platformatic (default)', lease_ms: Number(process.env.GEMELLO_LEASE_MS || 400) },
      metrics,
      table: [
        ['prompt → reply p50 (1 conversation, real Kafka)', `${metrics.prompt_reply_p50_ms} ms`, '< 5 ms'],
        ['prompt → reply p95', `${metrics.prompt_reply_p95_ms} ms`, '< 100 ms (seed)'],
        ['prompt → reply p99', `${metrics.prompt_reply_p99_ms} ms`, ''],
        ['SIGKILL of the owner → next reply from the other host', `${metrics.failover_ms} ms`, '< 1 s (kafkajs: session timeout 6 s + rebalance)'],
      ],
    });
  } finally {
    await Promise.all([gateway.kill(), a.kill(), b.kill()]);
    await fake.close();
    const problems = await cleanUp(leftovers);
    disarm();
    if (problems.length) console.log(`clean-up problems: ${problems.join('; ')}`);
  }
}
