import { randomUUID } from 'node:crypto';
import { createKafkaLog } from '../log/kafka.ts';
import { TOPICS } from '../log/port.ts';
import { cleanUp } from './cleanup.ts';
const ns = `probe${randomUUID().slice(0, 8)}.`;
const log = createKafkaLog({ brokers: ['127.0.0.1:9092'], partitions: 12, namespace: ns });
try {
  await log.ensureTopics([TOPICS.events]);
  const PER = Number(process.env.PER ?? 2000), SIZE = Number(process.env.SIZE ?? 600);
  for (let p = 0; p < 12; p++) for (let b = 0; b < PER; b += 500) await log.append(TOPICS.events, p, Array.from({ length: 500 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(SIZE), headers: { 'event-type': 'PromptReceived', traceparent: 'x'.repeat(55) } })));
  const ends = await log.endOffsets(TOPICS.events);
  console.log('ends', ends.join(','));
  const readAll = async (from: (p: number) => number, parts: number[]) => {
    const t = performance.now();
    const counts = await Promise.all(parts.map(async (p) => {
      let n = 0;
      const timer = setTimeout(() => console.log(`partition ${p} stuck at ${n}`), 10000);
      await log.read(TOPICS.events, p, from(p), (rs) => { n += rs.length; });
      clearTimeout(timer);
      return n;
    }));
    console.log('read', counts.join(','), (performance.now() - t).toFixed(0), 'ms');
  };
  await readAll((p) => PER - 250, [...Array(12).keys()]);
  await readAll(() => 0, [3]);
  await readAll(() => 0, [7]);
  await readAll(() => 0, [...Array(12).keys()]);
  await readAll(() => 0, [0]);
} finally {
  await log.close();
  console.log(await cleanUp({ brokers: ['127.0.0.1:9092'], namespace: ns, redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://postgres@127.0.0.1:5432/test', schemas: [] }));
}
process.exit(0);
