/** Where the integration tests find the real services (started by `npm run infra:up`). */
import { randomUUID } from 'node:crypto';
import { TEST_MASTER_KEY_B64 } from './keys.ts';

export const KAFKA_BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A gemello process's environment on the real services, in a namespace and a schema of its own. */
export type RealEnv = {
  /** The prefix of its Kafka topics and groups and its Redis keys (GEMELLO_NAMESPACE): `<tag><id>.`. */
  namespace: string;
  /** Its Postgres schema (DATABASE_SCHEMA): `<tag>_<id>`. */
  schema: string;
  env: { KAFKA_BROKERS: string; DATABASE_URL: string; DATABASE_SCHEMA: string; REDIS_URL: string; GEMELLO_NAMESPACE: string; GEMELLO_MASTER_KEY: string };
};

/** The environment for gemello processes on the real services, with a fresh namespace and schema named after `tag`. */
export function realEnv(tag: string): RealEnv {
  const id = randomUUID().slice(0, 8);
  const namespace = `${tag}${id}.`;
  const schema = `${tag}_${id}`;
  return { namespace, schema, env: { KAFKA_BROKERS: KAFKA_BROKERS.join(','), DATABASE_URL, DATABASE_SCHEMA: schema, REDIS_URL, GEMELLO_NAMESPACE: namespace, GEMELLO_MASTER_KEY: TEST_MASTER_KEY_B64 } };
}
