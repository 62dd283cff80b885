// Looking for a piece of audio everywhere a deployment stores things: every record of its
// Kafka topics, every row of its PostgreSQL schema, every key of its Redis prefix. The audio
// is looked for raw, as hex (bytea as text) and as base64 at each of the three alignments.
import { Buffer } from 'node:buffer';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { TOPICS } from '../../log/port.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL } from './env.ts';
import { kafkaLog } from './kafka.ts';

/** Strings any copy of `audio` would contain: a 48-byte window from its middle, raw, hex, base64. */
export function needles(audio: Uint8Array): string[] {
  const mid = Math.floor(audio.byteLength / 2);
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const window = Buffer.from(audio.subarray(mid + shift, mid + shift + 48));
    out.push(window.toString('base64').slice(4, -4));
  }
  const window = Buffer.from(audio.subarray(mid, mid + 48));
  return [...out, window.toString('hex'), window.toString('latin1')];
}

/** Where the needles were found: `kafka:<topic>/<partition>`, `pg:<table>`, `redis:<key>`. */
export async function findAudio(audio: Uint8Array, where: { namespace: string; schema: string; partitions?: number }): Promise<string[]> {
  const n = needles(audio);
  const hits = new Set<string>();
  const look = (place: string, text: string) => n.some((x) => text.includes(x)) && hits.add(place);

  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: where.partitions ?? 12, namespace: where.namespace });
  try {
    for (const topic of Object.values(TOPICS)) {
      const ends = await log.endOffsets(topic).catch(() => [] as number[]);
      for (let p = 0; p < ends.length; p++) {
        if (!ends[p]) continue;
        await log.read(topic, p, 0, (records) => {
          for (const r of records) look(`kafka:${topic}/${p}`, `${r.value}\u0000${Buffer.from(r.value, 'utf8').toString('latin1')}`);
        });
      }
    }
  } finally {
    await log.close();
  }

  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const tables = await sql<{ table_name: string }[]>`SELECT table_name FROM information_schema.tables WHERE table_schema = ${where.schema} AND table_type = 'BASE TABLE'`;
    for (const { table_name } of tables) {
      const rows = await sql.unsafe(`SELECT t::text AS row FROM "${where.schema}"."${table_name}" t`);
      for (const r of rows) look(`pg:${table_name}`, String(r.row));
    }
  } finally {
    await sql.end();
  }

  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${where.namespace}*`, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        const type = await redis.type(key);
        const values = type === 'string' ? [await redis.getBuffer(key)] : type === 'hash' ? Object.values(await redis.hgetallBuffer(key)) : type === 'list' ? await redis.lrangeBuffer(key, 0, -1) : type === 'set' ? await redis.smembersBuffer(key) : type === 'zset' ? await redis.zrangeBuffer(key, 0, -1) : [];
        for (const v of values) if (v) look(`redis:${key}`, `${v.toString('utf8')}\u0000${v.toString('latin1')}`);
      }
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return [...hits];
}
