import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createFileLog } from '../../log/file.ts';
import { createKafkaLog } from '../../log/kafka.ts';
import type { KafkaLogOptions } from '../../log/kafka-options.ts';
import { Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import { createPlatformaticLog } from '../../log/platformatic.ts';
import { fetchPlain } from '../../log/platformatic-fetch.ts';
import { contiguousProduces } from '../../log/platformatic-produce.ts';
import { contiguousKafkajsProduces } from '../../log/kafkajs-produce.ts';
import { decodeGroupFetches } from '../../log/platformatic-group-fetch.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS, UnknownTopic } from '../../log/port.ts';
import { KAFKA_BROKERS } from '../support/env.ts';

type Maker = { name: string; make: () => EventLog; reopen?: (log: EventLog) => EventLog };

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const file: Maker = (() => {
  let dir = '';
  return {
    name: 'file log (embedded)',
    make: () => {
      dir = mkdtempSync(join(tmpdir(), 'gemello-log-'));
      dirs.push(dir);
      return createFileLog({ dir, partitions: 4 });
    },
    reopen: () => createFileLog({ dir, partitions: 4 }),
  };
})();

const onKafka = (name: string, create: (o: KafkaLogOptions) => EventLog): Maker => {
  let ns = '';
  return {
    name,
    make: () => {
      ns = `t${randomUUID().slice(0, 8)}.`;
      return create({ brokers: KAFKA_BROKERS, partitions: 4, namespace: ns });
    },
    reopen: () => create({ brokers: KAFKA_BROKERS, partitions: 4, namespace: ns }),
  };
};
const kafkajs = onKafka('Kafka (kafkajs, real broker)', createKafkaLog);
const platformatic = onKafka('Kafka (@platformatic/kafka, real broker)', createPlatformaticLog);

const rec = (key: string, i: number) => ({ key, value: JSON.stringify({ i }), headers: { h: String(i) } });

async function until(cond: () => boolean, ms = 20_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each([file, kafkajs, platformatic])('event log contract: $name', (maker) => {
  it('appends in order with consecutive offsets and reads a partition back to its end', async () => {
    const log = maker.make();
    try {
      await log.ensureTopics(['a']);
      const first = await log.append('a', 1, [rec('k', 0), rec('k', 1)]);
      const next = await log.append('a', 1, [rec('k', 2)]);
      expect(next).toBe(first + 2);
      const seen: LogRecord[] = [];
      const end = await log.read('a', 1, first, (rs) => void seen.push(...rs));
      expect(end).toBe(first + 3);
      expect(seen.map((r) => [r.offset, r.key, JSON.parse(r.value).i, r.headers.h])).toEqual([
        [first, 'k', 0, '0'],
        [first + 1, 'k', 1, '1'],
        [first + 2, 'k', 2, '2'],
      ]);
      expect((await log.endOffsets('a'))[1]).toBe(first + 3);
      expect(await log.read('a', 2, 0, () => {})).toBe(0);
    } finally {
      await log.close();
    }
  });

  it('reads a range larger than a fetch in order, each record once, and rejects with a failing handler', async () => {
    const log = maker.make();
    try {
      await log.ensureTopics(['big']);
      // Three appends of ≈ 360 KB: each more than one bounded fetch of @platformatic/kafka (256 KB).
      const pad = 'x'.repeat(280);
      const big = (b: number) => Array.from({ length: 1_200 }, (_, i) => ({ key: 'k', value: JSON.stringify({ i: b * 1_200 + i, pad }), headers: { h: String(i) } }));
      const first = await log.append('big', 0, big(0));
      await log.append('big', 0, big(1));
      await log.append('big', 0, big(2));
      const seen: number[] = [];
      const end = await log.read('big', 0, first + 5, async (rs) => {
        await new Promise((r) => setTimeout(r, 5)); // a handler that takes a while: the next fetch may be under way
        for (const r of rs) {
          expect(JSON.parse(r.value).i).toBe(r.offset - first);
          seen.push(r.offset);
        }
      });
      expect(end).toBe(first + 3_600);
      expect(seen).toEqual(Array.from({ length: 3_595 }, (_, i) => first + 5 + i));
      let batches = 0;
      await expect(log.read('big', 0, first, () => {
        if (++batches === 1) throw new Error('handler failed');
      })).rejects.toThrow('handler failed');
    } finally {
      await log.close();
    }
  });

  it('delivers to a group, and a restarted group resumes after what it committed', async () => {
    let log = maker.make();
    try {
      await log.ensureTopics(['b']);
      await log.append('b', 0, [rec('x', 1), rec('x', 2)]);
      const got: number[] = [];
      let sub = await log.consume({ group: 'g', topic: 'b', from: 'earliest', handle: async (_p, rs) => void got.push(...rs.map((r) => JSON.parse(r.value).i)) });
      await until(() => got.length === 2);
      await sub.stop();
      await log.append('b', 0, [rec('x', 3)]);
      await log.close();
      log = maker.reopen!(log);
      sub = await log.consume({ group: 'g', topic: 'b', from: 'earliest', handle: async (_p, rs) => void got.push(...rs.map((r) => JSON.parse(r.value).i)) });
      await until(() => got.length === 3);
      expect(got).toEqual([1, 2, 3]);
      await sub.stop();
    } finally {
      await log.close();
    }
  });

  it('delivers a batch again when its handler fails', async () => {
    const log = maker.make();
    try {
      await log.ensureTopics(['c']);
      await log.append('c', 2, [rec('y', 1)]);
      let calls = 0;
      const sub = await log.consume({
        group: 'g2', topic: 'c', from: 'earliest',
        handle: async () => {
          calls++;
          if (calls === 1) throw new Error('boom');
        },
      });
      await until(() => calls >= 2, 40_000);
      await sub.stop();
    } finally {
      await log.close();
    }
  }, 60_000);

  it('a non-committing reader starting at latest sees what is appended the moment it has subscribed', async () => {
    const log = maker.make();
    try {
      await log.ensureTopics(['d']);
      await log.append('d', 1, [rec('y', 1)]);
      const got: number[] = [];
      const sub = await log.consume({ group: `feed-${randomUUID()}`, topic: 'd', from: 'latest', commit: false, handle: async (_p, rs) => void got.push(...rs.map((r) => JSON.parse(r.value).i)) });
      // Before its group has assigned it anything: 'latest' is the end when it subscribed.
      await log.append('d', 1, [rec('y', 2)]);
      await until(() => got.length >= 1);
      expect(got).toEqual([2]);
      await sub.stop();
    } finally {
      await log.close();
    }
  });

  it('a non-committing reader starting at latest sees only what comes after it', async () => {
    const log = maker.make();
    try {
      await log.ensureTopics(['d']);
      await log.append('d', 3, [rec('z', 1)]);
      const got: number[] = [];
      let assigned = false;
      const sub = await log.consume({ group: `feed-${randomUUID()}`, topic: 'd', from: 'latest', commit: false, onAssigned: (ps) => void (assigned = ps.length > 0), handle: async (_p, rs) => void got.push(...rs.map((r) => JSON.parse(r.value).i)) });
      await until(() => assigned);
      await new Promise((r) => setTimeout(r, 300));
      await log.append('d', 3, [rec('z', 2)]);
      await until(() => got.length >= 1);
      expect(got).toEqual([2]);
      await sub.stop();
    } finally {
      await log.close();
    }
  });
});

describe.each([kafkajs, platformatic])('topics gemello creates: $name', (maker) => {
  it('keeps the events and the voice clips forever, whatever the broker\'s default; the commands take its default', async () => {
    const log = maker.make();
    try {
      await log.ensureTopics([TOPICS.commands, TOPICS.events]);
      await log.ensureTopics([TOPICS.voice]);
      expect(await log.retentionOf!(TOPICS.events)).toEqual({ ms: null, bytes: null });
      expect(await log.retentionOf!(TOPICS.voice)).toEqual({ ms: null, bytes: null });
      // The local broker keeps its default of 7 days: what the events topic would have had.
      expect((await log.retentionOf!(TOPICS.commands)).ms).toBe(7 * 86_400_000);
    } finally {
      await log.close();
    }
  });

  it('says a topic nothing was written to is not there (UnknownTopic, with its name on the broker)', async () => {
    const log = maker.make();
    try {
      const err = await log.endOffsets(TOPICS.events).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnknownTopic);
      expect((err as UnknownTopic).topic).toMatch(/^t[0-9a-f]{8}\.gemello\.events$/);
    } finally {
      await log.close();
    }
  });
});

describe('@platformatic/kafka bounded reads', () => {
  it('decode the broker\'s fetch response themselves (the library\'s fetch is only the fallback)', async () => {
    const ns = `t${randomUUID().slice(0, 8)}.`;
    const log = createPlatformaticLog({ brokers: KAFKA_BROKERS, partitions: 4, namespace: ns });
    const client = new Consumer({ clientId: 'contract-plain-fetch', bootstrapBrokers: KAFKA_BROKERS, groupId: `${ns}plain`, deserializers: stringDeserializers });
    try {
      await log.ensureTopics(['p']);
      const first = await log.append('p', 3, [rec('k', 0), rec('k', 1), rec('k', 2)]);
      const meta = await client.metadata({ topics: [`${ns}p`] });
      const t = meta.topics.get(`${ns}p`)!;
      const got = await fetchPlain(client, meta.brokers.get(t.partitions[3]!.leader)!, 'p', t.id, 3, first + 1, first + 3, 256 * 1024, 100);
      expect(got?.records.map((r) => [r.topic, r.partition, r.offset, r.key, JSON.parse(r.value).i, r.headers.h])).toEqual([
        ['p', 3, first + 1, 'k', 1, '1'],
        ['p', 3, first + 2, 'k', 2, '2'],
      ]);
      expect(got?.next).toBe(first + 3);
    } finally {
      await client.close(true);
      await log.close();
    }
  });

  it.each([
    ['@platformatic/kafka', createPlatformaticLog, contiguousProduces],
    ['kafkajs', createKafkaLog, contiguousKafkajsProduces],
  ] as const)('%s writes its Produce requests in one buffer on the real broker (the library\'s writer is only the fallback)', async (_client, create, written) => {
    const ns = `t${randomUUID().slice(0, 8)}.`;
    const log = create({ brokers: KAFKA_BROKERS, partitions: 4, namespace: ns });
    try {
      await log.ensureTopics(['w']);
      const before = written();
      const first = await log.append('w', 1, [rec('k', 0), rec('k', 1)]);
      await log.append('w', 2, [rec('j', 2)]);
      expect(written()).toBeGreaterThanOrEqual(before + 2);
      const got: LogRecord[] = [];
      await log.read('w', 1, first, (rs) => void got.push(...rs), first + 2);
      expect(got.map((r) => [r.offset, r.key, JSON.parse(r.value).i, r.headers.h])).toEqual([[first, 'k', 0, '0'], [first + 1, 'k', 1, '1']]);
    } finally {
      await log.close();
    }
  });

  /** A platformatic log in a namespace of its own, and a library consumer of its topic `name` (full name `topic`). */
  const groupOf = (name: string, clientId: string) => {
    const ns = `t${randomUUID().slice(0, 8)}.`;
    const log = createPlatformaticLog({ brokers: KAFKA_BROKERS, partitions: 4, namespace: ns });
    const client = new Consumer({ clientId, bootstrapBrokers: KAFKA_BROKERS, groupId: `${ns}group`, deserializers: stringDeserializers, maxWaitTime: 100 });
    return { log, topic: `${ns}${name}`, client };
  };

  it('a group consumer\'s fetches are decoded here too: the records come in order, the library builds no message', async () => {
    const { log, topic, client } = groupOf('g', 'contract-plain-group');
    const got: LogRecord[] = [];
    let messages = 0;
    try {
      await log.ensureTopics(['g']);
      const first = await log.append('g', 1, [rec('k', 0), rec('k', 1), rec('k', 2)]);
      await log.append('g', 2, [rec('j', 3)]);
      decodeGroupFetches(client, topic, 'g', (_p, records) => void got.push(...records));
      const stream = await client.consume({ topics: [topic], mode: 'earliest', autocommit: false, maxWaitTime: 100 });
      stream.on('data', () => void messages++);
      await until(() => got.length >= 4);
      await log.append('g', 1, [rec('k', 4)]);
      await until(() => got.length >= 5);
      await stream.close();
      const of = (p: number) => got.filter((r) => r.partition === p).map((r) => [r.topic, r.offset, r.key, JSON.parse(r.value).i, r.headers.h]);
      expect(of(1)).toEqual([['g', first, 'k', 0, '0'], ['g', first + 1, 'k', 1, '1'], ['g', first + 2, 'k', 2, '2'], ['g', first + 3, 'k', 4, '4']]);
      expect(of(2).map((r) => r[3])).toEqual([3]);
      expect(messages).toBe(0);
    } finally {
      await client.close(true);
      await log.close();
    }
  });

  it('a batch the group consumer\'s own decoding does not read (gzip) comes through the library instead: every record once, in order', async () => {
    const { log, topic, client } = groupOf('z', 'contract-plain-gzip');
    const gzip = new Producer({ clientId: 'contract-gzip', bootstrapBrokers: KAFKA_BROKERS, serializers: stringSerializers, compression: 'gzip' });
    const got: Array<[string, number, number]> = [];
    try {
      await log.ensureTopics(['z']);
      const first = await log.append('z', 1, [rec('k', 0)]);
      await gzip.send({ messages: [{ topic, partition: 1, key: 'k', value: JSON.stringify({ i: 1 }), headers: { h: '1' } }] });
      await log.append('z', 1, [rec('k', 2)]);
      decodeGroupFetches(client, topic, 'z', (_p, records) => void got.push(...records.map((r): [string, number, number] => ['here', r.offset, JSON.parse(r.value).i])));
      const stream = await client.consume({ topics: [topic], mode: 'earliest', autocommit: false, maxWaitTime: 100 });
      stream.on('data', (m) => void got.push(['library', Number(m.offset), JSON.parse(m.value as string).i]));
      await until(() => got.length >= 3);
      await log.append('z', 1, [rec('k', 3)]);
      await until(() => got.length >= 4);
      await new Promise((r) => setTimeout(r, 300)); // time for a record to come a second time
      await stream.close();
      expect(got.map(([, offset, i]) => [offset - first, i])).toEqual([[0, 0], [1, 1], [2, 2], [3, 3]]);
      // The fetch that met the gzip batch went to the library; the next one was read here again.
      expect(got.some(([by]) => by === 'library')).toBe(true);
      expect(got[3]![0]).toBe('here');
    } finally {
      await gzip.close();
      await client.close(true);
      await log.close();
    }
  });
});
