import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Integration suites share one broker, Postgres and Redis: run files one at a time
    // so their timings and consumer-group rebalances do not interfere.
    fileParallelism: false,
    reporters: ['default'],
    // The offline model streams its replies word by word with a pause for people; tests do not wait.
    env: { GEMELLO_OFFLINE_WORD_MS: '0' },
  },
});
