import type { Config } from './config.ts';
import { within } from './deadline.ts';

type Backend = 'log' | 'db' | 'snapshots';

/** The backends a process uses, each with its `ping` and how it is described at start. */
type Pingable = { log: { ping(): Promise<unknown> }; db: { ping(): Promise<unknown> }; snapshots: { ping(): Promise<unknown> }; describe: Record<string, string> };

/** A start (or a CLI command) that failed because a backend does not answer: one message naming each and what to do. */
export class BackendUnreachable extends Error {
  readonly code = 'backend_unreachable';
}


/** The backends reached over the network (the embedded ones are files of this process: they answer once opened). */
export const remoteBackends = (config: Config): Backend[] => [
  ...(config.kafkaBrokers ? ['log' as const] : []),
  ...(config.databaseUrl ? ['db' as const] : []),
  ...(config.redisUrl ? ['snapshots' as const] : []),
];

/**
 * After a failure at start: asks each backend whether it answers. Those that do not are named
 * with their address, the error and the fix (a BackendUnreachable); null when all answer (the
 * failure was something else and is reported as it is).
 */
export async function explainUnreachable(config: Config, b: Pingable, ms = 3000, which: readonly Backend[] = ['log', 'db', 'snapshots']): Promise<BackendUnreachable | null> {
  const fixes: [Backend, string, string, string][] = [
    ['log', 'event log', b.describe['event log'] ?? '', config.kafkaBrokers
      ? 'start Kafka (npm run infra:up, or docker compose -p gemello -f infra/docker-compose.yml up -d) or correct KAFKA_BROKERS; unset it for the embedded file log'
      : `check that ${config.dataDir} is writable (GEMELLO_DATA_DIR)`],
    ['db', 'read models', b.describe['read models'] ?? '', config.databaseUrl
      ? 'start PostgreSQL (npm run infra:up) or correct DATABASE_URL (its database must exist); unset it for the embedded PGlite'
      : `check that ${config.dataDir} is writable (GEMELLO_DATA_DIR)`],
    ['snapshots', 'snapshots', b.describe.snapshots ?? '', 'start Redis (npm run infra:up) or correct REDIS_URL; unset it for the in-process cache'],
  ];
  const failed = await Promise.all(fixes.filter(([key]) => which.includes(key)).map(async ([key, name, where, fix]) => {
    try {
      await within(b[key].ping(), ms);
      return null;
    } catch (err) {
      return `  ${name} (${where}) does not answer: ${(err as Error).message || String(err)}\n    fix: ${fix}`;
    }
  }));
  const lines = failed.filter((l): l is string => l !== null);
  return lines.length ? new BackendUnreachable(`a backend does not answer\n${lines.join('\n')}\n(npx gemello doctor checks them again)`) : null;
}
