import { randomUUID } from 'node:crypto';
import { createKafkaLog } from '../log/kafka.ts';
import { TOPICS } from '../log/port.ts';
import { cleanUp } from './cleanup.ts';
const ns = `probe${randomUUID().slice(0, 8)}.`;
const a = createKafkaLog({ brokers: ['127.0.0.1:9092'], partitions: 12, namespace: ns });
const b = createKafkaLog({ brokers: ['127.0.0.1:9092'], partitions: 12, namespace: ns, maxWaitMs: Number(process.env.MW ?? 100) });
const pct = (xs: number[], q: number) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length * q)]!.toFixed(2);
try {
  await a.ensureTopics([TOPICS.commands]);
  const sent = new Map<string, number>();
  const hop: number[] = [];
  let got: (() => void) | null = null;
  const sub = await b.consume({ group: 'g', topic: TOPICS.commands, from: 'latest', handle: async (_p, rs) => { for (const r of rs) { const t = sent.get(r.value); if (t) hop.push(performance.now() - t); } got?.(); } });
  await new Promise((r) => setTimeout(r, 3000));
  const prod: number[] = [];
  for (let i = 0; i < 200; i++) {
    const v = `v${i}`;
    const wait = new Promise<void>((r) => (got = r));
    const t = performance.now(); sent.set(v, t);
    await a.append(TOPICS.commands, i % 12, [{ key: 'k', value: v, headers: {} }]);
    prod.push(performance.now() - t);
    await wait;
  }
  console.log(`append p50 ${pct(prod, 0.5)} p99 ${pct(prod, 0.99)}; append→handle p50 ${pct(hop, 0.5)} p99 ${pct(hop, 0.99)}`);
  // concurrent appends throughput
  const t = performance.now();
  await Promise.all(Array.from({ length: 1000 }, (_, i) => a.append(TOPICS.commands, i % 12, [{ key: 'k', value: 'x', headers: {} }])));
  console.log(`1000 concurrent single appends: ${(performance.now() - t).toFixed(0)} ms`);
  await sub.stop();
} finally {
  await a.close(); await b.close();
  await cleanUp({ brokers: ['127.0.0.1:9092'], namespace: ns, redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://postgres@127.0.0.1:5432/test', schemas: [] });
}
process.exit(0);
