import { defineConfig } from 'vitest/config';

const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
  // The offline model streams its replies word by word with a pause for people; tests do not wait.
  env: { GEMELLO_OFFLINE_WORD_MS: '0' },
};

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        // In-process tests with no shared service: two at a time, first, in workers that stay
        // up from file to file (a fresh process and module graph per file cost about as much
        // as the tests themselves).
        test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'], fileParallelism: true, isolate: false, sequence: { groupOrder: 0 } },
      },
      {
        // Integration and contract suites share one broker, Postgres and Redis: one file at a
        // time, after the unit tests, so their timings and consumer-group rebalances do not
        // interfere.
        test: { ...shared, name: 'integration', include: ['test/contract/**/*.test.ts', 'test/integration/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
