import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
const topic = `probe${randomUUID().slice(0, 8)}.t`;
const admin = kafka.admin(); await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 12 }], waitForLeaders: true });
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 }); await producer.connect();
const pct = (xs: number[], q: number) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length * q)]!.toFixed(2);
for (const mode of (process.env.MODES ?? 'commit,nocommit,uncommitted').split(',')) {
  const consumer = kafka.consumer({ groupId: `${topic}-${mode}`, maxWaitTimeInMs: 100, readUncommitted: mode === 'uncommitted' });
  await consumer.connect(); await consumer.subscribe({ topic, fromBeginning: false });
  const sent = new Map<string, number>(); const hop: number[] = []; let got: (() => void) | null = null;
  await consumer.run({ partitionsConsumedConcurrently: 12, autoCommit: mode !== 'nocommit', eachBatchAutoResolve: false, eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
    for (const m of batch.messages) { const t = sent.get(m.value!.toString()); if (t) hop.push(performance.now() - t); }
    got?.();
    resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
    if (mode !== 'nocommit') await commitOffsetsIfNecessary();
  } });
  await new Promise((r) => setTimeout(r, 3000));
  for (let i = 0; i < 100; i++) {
    const v = `${mode}${i}`; const wait = new Promise<void>((r) => (got = r));
    sent.set(v, performance.now());
    await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: v, partition: i % 12 }] });
    await wait;
    await new Promise((r) => setTimeout(r, 5));
  }
  console.log(`${mode}: append→handle p50 ${pct(hop, 0.5)} p99 ${pct(hop, 0.99)}`);
  await consumer.disconnect();
}
await producer.disconnect(); await admin.deleteTopics({ topics: [topic] }); 
const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(topic));
await admin.deleteGroups(groups).catch(() => {}); await admin.disconnect();
process.exit(0);
