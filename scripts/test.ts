// `npm test`: bring up what the tests need, typecheck, then run the whole suite (vitest.config.ts:
// the unit tests, the integration and contract suites two files at a time, the fault tests one at
// a time, then the Kafka integration tests again on the client that is not the default).
import { spawnSync } from 'node:child_process';

const env = {
  ...process.env,
  KAFKAJS_NO_PARTITIONER_WARNING: '1',
};

function step(name: string, command: string, args: string[], hint: string): void {
  console.log(`\n== ${name}`);
  const r = spawnSync(command, args, { stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`\nnpm test stopped: ${name} failed. ${hint}`);
    process.exit(r.status ?? 1);
  }
}

step('infrastructure: Kafka, PostgreSQL, Redis (npm run infra:up)', 'bash', ['infra/up.sh'],
  'The integration tests need them: see the message above; `npm run infra:up` alone retries it, and infra/docker-compose.yml is the alternative with Docker.');
step('typecheck (tsc --noEmit)', 'tsc', ['--noEmit', '-p', 'tsconfig.json'], 'See the type errors above.');
step('tests (vitest)', 'vitest', ['run', ...process.argv.slice(2)], 'See the failures above.');
