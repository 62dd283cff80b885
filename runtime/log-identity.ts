import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Which event log a process reads and writes. What is built from a log (the read model's rows
 * and checkpoints, the snapshots and takeover checkpoints in Redis) belongs to that log alone:
 * two embedded data directories sharing one `DATABASE_URL` or `REDIS_URL` would otherwise take
 * each other's checkpoints for their own and skip records.
 */
export type LogIdentity = {
  /** `file:<uuid>` (the embedded log, its id kept beside it) or `kafka:<namespace>`. */
  id: string;
  /** For messages: where that log is. */
  where: string;
};

export function logIdentity(o: { kafkaBrokers: string[] | null; namespace: string; dataDir: string }): LogIdentity {
  if (o.kafkaBrokers) return { id: `kafka:${o.namespace}`, where: `Kafka${o.namespace ? ` (namespace ${o.namespace})` : ''}` };
  const dir = join(o.dataDir, 'log');
  return { id: `file:${fileLogId(dir)}`, where: `the embedded log under ${resolve(dir)}` };
}

/** The embedded log's id, made with the log (or the first time an earlier log is opened). */
function fileLogId(dir: string): string {
  const path = join(dir, 'id');
  const read = () => readFileSync(path, 'utf8').trim();
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(path, `${randomUUID()}\n`, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return read();
}
