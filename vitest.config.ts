import { defineConfig } from 'vitest/config';
import { DEFAULT_KAFKA_CLIENT } from './log/kafka-client.ts';

const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
  // The offline model streams its replies word by word with a pause for people; tests do not wait.
  env: { GEMELLO_OFFLINE_WORD_MS: '0' },
};

/**
 * Integration tests that judge timing under faults (a host killed, frozen, joining or leaving; a
 * broker or a database cut): one at a time, alone on the machine, so that another file's load
 * does not decide whether a lease lapses or a deadline passes.
 */
const ALONE = [
  'broker-outage', 'failover', 'gateway-backpressure', 'gateway-cluster', 'gateway-fuzz', 'host-joins',
  'host-stall', 'kafka-cluster', 'long-conversation', 'postgres-connection-loss', 'projector-pg-cuts',
  'readmodel-faults', 'rolling-restart', 'streaming', 'voice-failover',
].map((name) => `test/integration/${name}.test.ts`);

/**
 * The Kafka integration tests that exercise the client the most (a conversation end to end, a
 * failover, the projector): run again on the client that is not the default, last. The contract
 * suite covers both clients in-process; the broker faults (broker-outage, kafka-cluster) run
 * each client in turn over their own private brokers, started once.
 */
export const OTHER_CLIENT_TESTS = ['conversation-kafka', 'failover', 'projector-kafka']
  .map((name) => `test/integration/${name}.test.ts`);
const chosen = process.env.GEMELLO_KAFKA_CLIENT || DEFAULT_KAFKA_CLIENT;
const other = chosen === 'kafkajs' ? 'platformatic' : 'kafkajs';

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        // In-process tests with no shared service: two at a time, first, in workers that stay
        // up from file to file (a fresh process and module graph per file cost about as much
        // as the tests themselves).
        test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'], fileParallelism: true, maxWorkers: 2, isolate: false, sequence: { groupOrder: 0 } },
      },
      {
        // The other integration and contract suites: two files at a time. Each runs in a Kafka
        // namespace, a Postgres schema and Redis keys of its own (test/support/env.ts realEnv), or
        // embedded in a data directory of its own, so they share the services without meeting.
        test: { ...shared, name: 'integration', include: ['test/contract/**/*.test.ts', 'test/integration/**/*.test.ts'], exclude: ALONE, fileParallelism: true, maxWorkers: 2, sequence: { groupOrder: 1 } },
      },
      {
        test: { ...shared, name: 'faults', include: ALONE, fileParallelism: false, sequence: { groupOrder: 2 } },
      },
      {
        test: { ...shared, name: `on ${other}`, include: OTHER_CLIENT_TESTS, fileParallelism: false, env: { ...shared.env, GEMELLO_KAFKA_CLIENT: other }, sequence: { groupOrder: 3 } },
      },
    ],
  },
});
