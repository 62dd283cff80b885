// What the data-path benchmarks (replay, projector, append) share: both Kafka clients, a
// run's namespace and schemas, the data keys' home, and a log filled with synthetic
// conversations (sealed as the actor host writes them) whose final states are known.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evolve, initialState } from '../actors/state.ts';
import type { ConversationState } from '../actors/state.ts';
import { encodeSealedEvent } from '../events/codec.ts';
import { createFileLog } from '../log/file.ts';
import { createKafkaEventLog } from '../log/kafka-client.ts';
import type { KafkaClient } from '../log/kafka-client.ts';
import { partitionFor } from '../log/partition.ts';
import { TOPICS } from '../log/port.ts';
import type { EventLog, OutgoingRecord } from '../log/port.ts';
import { migrate } from '../projections/migrate.ts';
import { createLoggedKeyStore } from '../sealing/key-store.ts';
import type { KeyStore } from '../sealing/keys.ts';
import { fingerprint } from '../sealing/master-key.ts';
import { createPostgresDb } from '../stores/db-postgres.ts';
import type { Db } from '../stores/sql.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from '../test/support/env.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { envelopeAt } from './synthetic.ts';

/** Both clients, or those BENCH_CLIENTS names (comma-separated): one client halves a run, for paired runs. */
export const CLIENTS: KafkaClient[] = process.env.BENCH_CLIENTS ? (process.env.BENCH_CLIENTS.split(',') as KafkaClient[]) : ['kafkajs', 'platformatic'];
export const PARTITIONS = 12;
/** Records per append: ~700 B each, well under the broker's 1 MB batch limit. */
export const APPEND_BATCH = 500;
const env = process.env;
export const CONVERSATIONS = Number(env.BENCH_CONVERSATIONS ?? 2_000);
export const EVENTS = Number(env.BENCH_EVENTS ?? 50);
/** Personal content sealed with each conversation's data key, as the actor host writes it (BENCH_SEAL=0: in the clear). */
export const SEAL = env.BENCH_SEAL !== '0';

export const now = () => performance.now();
export const logger = (bench: string) => (msg: string) => console.log(`[${bench} ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** A run's private names on the shared services and their clean-up (also on Ctrl-C). */
export function runScope(tag: string) {
  const id = randomUUID().slice(0, 8);
  const namespace = `bench${tag}${id}.`;
  const schemas: string[] = [];
  const leftovers = { brokers: KAFKA_BROKERS, namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas };
  const disarm = onInterrupt(() => cleanUp(leftovers));
  // The data keys' home for this run: a keys topic in a private file log (the measured
  // paths read keys from the database cache, as every gemello process does).
  const masterKey = new Uint8Array(randomBytes(32));
  const master = { key: masterKey, id: fingerprint(masterKey), source: 'bench' };
  const keyLog = createFileLog({ dir: mkdtempSync(join(tmpdir(), 'gemello-bench-keys-')), partitions: PARTITIONS });
  return {
    namespace,
    /** Schemas of this run, dropped at its end (add one made elsewhere). */
    schemas,
    /** The log on `client`, in this run's namespace (topics are shared by the clients). */
    log: (client: KafkaClient, name = 'bench'): Promise<EventLog> =>
      createKafkaEventLog(client, { brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace, clientId: `gemello-bench-${name}-${client}` }),
    /** A migrated read-model schema of this run, dropped at its end; `app` is its connections' application_name (bench/pg-cpu.ts). */
    async db(suffix: string): Promise<Db & { app: string }> {
      const schema = `bench_${tag}_${id}_${suffix}`;
      schemas.push(schema);
      const db = createPostgresDb({ url: DATABASE_URL, schema, applicationName: schema });
      await migrate(db);
      return Object.assign(db, { app: schema });
    },
    /** A fresh key store on `db` (its cache empty, as after a restart). */
    keys: (db: Db): KeyStore => createLoggedKeyStore({ log: keyLog, db, master }),
    async close(): Promise<string[]> {
      disarm();
      return cleanUp(leftovers);
    },
  };
}

/** A synthetic conversation of the run: where it lives, its key and its state after its last event. */
export type Conv = { id: string; index: number; partition: number; key: Uint8Array | null; state: ConversationState };

export function conversations(n = CONVERSATIONS): Conv[] {
  return Array.from({ length: n }, (_, index) => {
    const id = randomUUID();
    return { id, index, partition: partitionFor(id, PARTITIONS), key: null, state: initialState(id) };
  });
}

/** Makes the conversations' data keys (rows of conversation_keys in `db`). */
export async function makeKeys(convs: Conv[], keys: KeyStore): Promise<void> {
  if (!SEAL) return;
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < convs.length) {
      const c = convs[next++]!;
      c.key = await keys.create(c.id);
    }
  }));
}

/**
 * Each partition's records for seqs `from..to` of its conversations, interleaved as under
 * real traffic, in batches of APPEND_BATCH; folds each conversation's state on the way.
 */
export function batches(convs: Conv[], from = 1, to = EVENTS): OutgoingRecord[][][] {
  const out: OutgoingRecord[][][] = Array.from({ length: PARTITIONS }, () => []);
  const byPartition = Array.from({ length: PARTITIONS }, (_, p) => convs.filter((c) => c.partition === p));
  byPartition.forEach((list, p) => {
    let batch: OutgoingRecord[] = [];
    for (let seq = from; seq <= to; seq++) {
      for (const c of list) {
        const e = envelopeAt(c, seq);
        c.state = evolve(c.state, e);
        batch.push(encodeSealedEvent(e, c.key));
        if (batch.length >= APPEND_BATCH) {
          out[p]!.push(batch);
          batch = [];
        }
      }
    }
    if (batch.length) out[p]!.push(batch);
  });
  return out;
}

/** Appends every partition's batches, the partitions side by side; resolves with the events appended and the time taken. */
export async function appendAll(log: EventLog, parts: OutgoingRecord[][][], topic: string = TOPICS.events): Promise<{ events: number; ms: number }> {
  const t0 = now();
  let events = 0;
  await Promise.all(parts.map(async (list, p) => {
    for (const b of list) {
      await log.append(topic, p, b);
      events += b.length;
    }
  }));
  return { events, ms: now() - t0 };
}
