// One `gemello serve` for a bench, talking to a fake model in this process
// (startServeWithFakeModel: real Kafka, PostgreSQL and Redis in a namespace and schema of the
// run's own). An interrupt kills it and removes what the run left; close() stops the server
// and the fake, then removes it, telling what it could not remove.
import { startServeWithFakeModel } from '../test/support/processes.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../test/support/env.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';

export type BenchServe = Awaited<ReturnType<typeof startServeWithFakeModel>> & { close(): Promise<void> };

export async function startBenchServe(tag: string, extra: Record<string, string>): Promise<BenchServe> {
  const s = await startServeWithFakeModel(tag, extra);
  const leftovers = { brokers: KAFKA_BROKERS, namespace: s.namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [s.schema] };
  const disarm = onInterrupt(async () => {
    await s.gemello.kill('SIGKILL');
    await cleanUp(leftovers);
  });
  return {
    ...s,
    async close() {
      s.fake.onChunk(null);
      await s.gemello.kill();
      await s.fake.close();
      const problems = await cleanUp(leftovers);
      disarm();
      if (problems.length) console.log(`clean-up problems: ${problems.join('; ')}`);
    },
  };
}
