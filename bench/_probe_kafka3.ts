import { randomUUID } from 'node:crypto';
import { createKafkaLog } from '../log/kafka.ts';
import { TOPICS } from '../log/port.ts';
import { cleanUp } from './cleanup.ts';
const ns = `probe${randomUUID().slice(0, 8)}.`;
const log = createKafkaLog({ brokers: ['127.0.0.1:9092'], partitions: 12, namespace: ns });
try {
  await log.ensureTopics([TOPICS.commands, TOPICS.events]);
  const expect = new Map<string, string>();
  await Promise.all(Array.from({ length: 2000 }, async (_, i) => {
    const p = Math.floor(Math.random() * 12);
    const topic = i % 3 ? TOPICS.events : TOPICS.commands;
    const n = 1 + (i % 3);
    const recs = Array.from({ length: n }, (_, k) => ({ key: 'k', value: `${i}-${k}-${'x'.repeat(i % 7 === 0 ? 200_000 : 10)}`, headers: {} }));
    const base = await log.append(topic, p, recs);
    recs.forEach((r, k) => expect.set(`${topic}/${p}/${base + k}`, r.value));
  }));
  let checked = 0, bad = 0;
  for (const topic of [TOPICS.commands, TOPICS.events]) for (let p = 0; p < 12; p++) await log.read(topic, p, 0, (rs) => { for (const r of rs) { checked++; if (expect.get(`${topic}/${p}/${r.offset}`) !== r.value) bad++; } });
  console.log(`expected ${expect.size}, read ${checked}, mismatched ${bad}`);
} finally {
  await log.close();
  await cleanUp({ brokers: ['127.0.0.1:9092'], namespace: ns, redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://postgres@127.0.0.1:5432/test', schemas: [] });
}
process.exit(0);
