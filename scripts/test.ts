// `npm test`: bring up what the tests need, typecheck, then run the whole suite.
import { spawnSync } from 'node:child_process';
import { DEFAULT_KAFKA_CLIENT } from '../log/kafka-client.ts';

const OTHER_CLIENT_TESTS = [
  'test/integration/conversation-kafka.test.ts',
  'test/integration/failover.test.ts',
  'test/integration/projector-kafka.test.ts',
  // Broker faults: a single broker SIGKILLed and restarted, a partition leader SIGKILLed in three.
  'test/integration/broker-outage.test.ts',
  'test/integration/kafka-cluster.test.ts',
];

const env = {
  ...process.env,
  KAFKAJS_NO_PARTITIONER_WARNING: '1',
};

function step(name: string, command: string, args: string[], hint: string, extraEnv: Record<string, string> = {}): void {
  console.log(`\n== ${name}`);
  const r = spawnSync(command, args, { stdio: 'inherit', env: { ...env, ...extraEnv } });
  if (r.status !== 0) {
    console.error(`\nnpm test stopped: ${name} failed. ${hint}`);
    process.exit(r.status ?? 1);
  }
}

step('infrastructure: Kafka, PostgreSQL, Redis (npm run infra:up)', 'bash', ['infra/up.sh'],
  'The integration tests need them: see the message above; `npm run infra:up` alone retries it, and infra/docker-compose.yml is the alternative with Docker.');
step('typecheck (tsc --noEmit)', 'tsc', ['--noEmit', '-p', 'tsconfig.json'], 'Fix the type errors above.');
step('tests (vitest)', 'vitest', ['run', ...process.argv.slice(2)], 'See the failures above.');
// The suite ran on the default Kafka client (GEMELLO_KAFKA_CLIENT unset, or as set); the
// contract suite covers both clients in-process. The Kafka integration tests that exercise the
// client the most (a conversation end to end, a failover, the projector, broker faults) run again on the other.
if (process.argv.length <= 2) {
  const other = (process.env.GEMELLO_KAFKA_CLIENT || DEFAULT_KAFKA_CLIENT) === 'kafkajs' ? 'platformatic' : 'kafkajs';
  step(`Kafka integration tests on the other client (GEMELLO_KAFKA_CLIENT=${other})`, 'vitest', ['run', ...OTHER_CLIENT_TESTS], 'See the failures above.', { GEMELLO_KAFKA_CLIENT: other });
}
