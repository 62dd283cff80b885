// Prompt → reply latency over a WebSocket, one conversation, on real Kafka, Postgres and
// Redis with a zero-latency OpenAI-compatible model, plus the failover time after SIGKILL.
import { randomUUID } from 'node:crypto';
import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../test/support/env.ts';
import { freePort, startGemello } from '../test/support/processes.ts';
import { connect } from '../test/support/ws-client.ts';
import { partitionFor } from '../log/partition.ts';
import { percentile, report, round } from './report.ts';

const PROMPTS = Number(process.env.BENCH_PROMPTS ?? 200);

export async function run(): Promise<void> {
  const fake = await startFakeOpenAI();
  const namespace = `bench${randomUUID().slice(0, 8)}.`;
  const env = {
    KAFKA_BROKERS: KAFKA_BROKERS.join(','),
    DATABASE_URL,
    DATABASE_SCHEMA: `bench_${randomUUID().slice(0, 8)}`,
    REDIS_URL,
    GEMELLO_NAMESPACE: namespace,
    GEMELLO_PARTITIONS: '4',
    GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000',
    OPENAI_API_KEY: 'bench',
    OPENAI_BASE_URL: fake.url,
    GEMELLO_SPEECH: 'off',
    GEMELLO_RATE_PER_SEC: '100000',
    GEMELLO_RATE_BURST: '100000',
    GEMELLO_LOG_QUIET: '1',
  };
  const port = await freePort();
  const gateway = await startGemello(['serve', '--roles', 'gateway,projections'], { ...env, PORT: String(port) });
  const a = await startGemello(['actors'], env);
  const b = await startGemello(['actors'], env);
  try {
    await a.waitFor(() => a.owned().length + b.owned().length === 4 && a.owned().length > 0 && b.owned().length > 0, 'the group to settle', 40_000);
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
      params: { prompts: PROMPTS, partitions: 4, hosts: 2, model: 'fake OpenAI-compatible server, zero latency', kafka_session_timeout_ms: 6000 },
      metrics,
      table: [
        ['prompt → reply p50 (1 conversation, real Kafka)', `${metrics.prompt_reply_p50_ms} ms`, '< 5 ms'],
        ['prompt → reply p95', `${metrics.prompt_reply_p95_ms} ms`, '< 100 ms (seed)'],
        ['prompt → reply p99', `${metrics.prompt_reply_p99_ms} ms`, ''],
        ['SIGKILL of the owner → next reply from the other host', `${metrics.failover_ms} ms`, 'session timeout (6 s) + rebalance'],
      ],
    });
  } finally {
    await Promise.all([gateway.kill(), a.kill(), b.kill()]);
    await fake.close();
  }
}
