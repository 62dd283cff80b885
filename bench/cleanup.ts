// What a benchmark run leaves behind on the shared services, removed at its end: its
// Kafka topics and consumer groups (by namespace prefix), its Redis keys (by prefix) and
// its Postgres schemas.
import { logLevel } from 'kafkajs';
import { newKafka } from '../log/kafkajs-request-queue.ts';
import { Redis } from 'ioredis';
import postgres from 'postgres';

export type Leftovers = {
  brokers: string[];
  /** Prefix of the run's topics, groups and Redis keys (GEMELLO_NAMESPACE). */
  namespace: string;
  redisUrl: string;
  databaseUrl: string;
  schemas: string[];
};

const IDENT = /^[a-z_][a-z0-9_]*$/;

/** Removes everything named with the run's namespace and its schemas; reports what failed instead of throwing. */
export async function cleanUp(l: Leftovers): Promise<string[]> {
  const problems: string[] = [];
  if (!l.namespace || l.namespace.length < 6) throw new Error(`refusing to clean up with the short namespace "${l.namespace}"`);
  const kafka = newKafka({ clientId: 'gemello-bench-cleanup', brokers: l.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(l.namespace));
    if (groups.length) {
      const results = await admin.deleteGroups(groups).catch((err: { groups?: { groupId: string; errorCode: number }[] }) => err.groups ?? []);
      const failed = results.filter((r) => r.errorCode !== 0);
      if (failed.length) problems.push(`${failed.length} Kafka groups not deleted (still active?)`);
    }
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(l.namespace));
    if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 });
  } catch (err) {
    problems.push(`Kafka: ${(err as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
  const redis = new Redis(l.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${l.namespace}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } catch (err) {
    problems.push(`Redis: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
  const sql = postgres(l.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (const s of l.schemas) {
      if (!IDENT.test(s) || s === 'public') throw new Error(`refusing to drop schema ${s}`);
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    }
  } catch (err) {
    problems.push(`Postgres: ${(err as Error).message}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return problems;
}

/** Runs `clean` if the process is interrupted (Ctrl-C, a timeout's SIGTERM) before the bench's own clean-up; returns the disposer. */
export function onInterrupt(clean: () => Promise<unknown>): () => void {
  const handler = (signal: NodeJS.Signals) => {
    console.error(`${signal}: cleaning up before exiting`);
    const force = setTimeout(() => process.exit(130), 30_000);
    force.unref();
    void clean().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
