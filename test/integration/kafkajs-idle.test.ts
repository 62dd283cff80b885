// An idle kafkajs log must not keep its connections busy. kafkajs 2.2.4 re-arms a 1 ms timer
// after every response on every connection, forever (log/kafkajs-request-queue.ts): measured
// as 4 % of a core for an idle producer and admin. Counted here as the request queue's checks
// while nothing is sent.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { createKafkaLog } from '../../log/kafka.ts';
import type { EventLog } from '../../log/port.ts';
import { KAFKA_BROKERS } from '../support/env.ts';

const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as {
  prototype: { checkPendingRequests(): void };
};

let log: EventLog | undefined;
afterAll(async () => log?.close());

describe('kafkajs connections at rest', () => {
  it('do not poll their request queue while nothing is sent, and still answer at once', async () => {
    log = createKafkaLog({ brokers: KAFKA_BROKERS, partitions: 2, namespace: `t${randomUUID().slice(0, 8)}.` });
    const topic = 'idle';
    await log.ensureTopics([topic]);
    const record = (i: number) => ({ key: `k${i}`, value: JSON.stringify({ i }), headers: {} });
    for (let i = 0; i < 5; i++) await log.append(topic, 0, [record(i)]);

    const proto = RequestQueue.prototype;
    const check = proto.checkPendingRequests;
    let checks = 0;
    proto.checkPendingRequests = function (this: unknown) {
      checks++;
      return check.call(this);
    };
    try {
      await new Promise((r) => setTimeout(r, 500));
      // Unpatched: one check a millisecond on each connection used (≈ 500 or more here).
      expect(checks).toBeLessThan(50);

      // Requests still go out and are answered: the queue is checked when responses arrive.
      const offset = await log.append(topic, 0, [record(5)]);
      const seen: string[] = [];
      await log.read(topic, 0, 0, (records) => void seen.push(...records.map((r) => r.key)), offset + 1);
      expect(seen).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5']);
    } finally {
      proto.checkPendingRequests = check;
    }
  });
});
