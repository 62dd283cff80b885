// The production shape: three KRaft brokers on loopback (replication factor 3,
// min.insync.replicas 2, acks=all), started by infra/kafka-cluster.sh for this test alone.
// The leader of a conversation's partition is SIGKILLed under traffic: no event a client was
// told about is lost, and the conversations go on.
import { randomUUID } from 'node:crypto';
import { logLevel } from 'kafkajs';
import { newKafka } from '../../log/kafkajs-request-queue.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionFor } from '../../log/partition.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { BOTH_CLIENTS, kafkaLog } from '../support/kafka.ts';
import { privateCluster } from '../support/private-kafka.ts';
import type { PrivateCluster } from '../support/private-kafka.ts';
import { brokerFaultEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { expectRepliesInLog, openConversations, promptsUntilStopped } from '../support/traffic.ts';

const PARTITIONS = 4;
const CONVERSATIONS = 6;
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
let cluster: PrivateCluster;
let brokers: string[] = [];
let fake: FakeOpenAI;

beforeAll(async () => {
  cluster = await privateCluster();
  brokers = cluster.brokers;
  [fake] = await Promise.all([startFakeOpenAI(), cluster.start()]);
}, 300_000);

afterAll(async () => {
  await fake?.close();
  await cluster?.remove();
}, 120_000);

// One cluster for both clients (three brokers take ≈ 15 s to start on two cores): each client's
// node has a namespace of its own, and the node the first one killed is started again first.
describe.each(BOTH_CLIENTS)('three brokers, RF 3, min.insync.replicas 2 (%s)', (client) => {
  const namespace = `kc${randomUUID().slice(0, 8)}.`;
  let gemello: Gemello;
  let port = 0;

  beforeAll(async () => {
    await cluster.start(); // starts a node killed before, waits until all three answer
    port = await freePort();
    gemello = await startGemello(['serve'], brokerFaultEnv({ port, brokers, client, namespace, tag: 'kc', partitions: PARTITIONS, fake }), 120_000);
  }, 300_000);

  afterAll(async () => {
    await gemello?.kill();
  }, 60_000);

  it('SIGKILL of a partition leader under traffic loses no acknowledged event, and the conversations go on', async () => {
    const { clients, conversations } = await openConversations(`ws://127.0.0.1:${port}/ws`, CONVERSATIONS, seed, (f) => f.type === 'reply', 30_000);
    const { outcomes, stop } = promptsUntilStopped(clients, conversations, seed);
    await new Promise((r) => setTimeout(r, 1_500));
    // The leader of the first conversation's partition of the events topic.
    const kafka = newKafka({ clientId: 'test-cluster', brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const p = partitionFor(conversations[0]!, PARTITIONS);
    const meta = await admin.fetchTopicMetadata({ topics: [`${namespace}gemello.events`] });
    const leader = meta.topics[0]!.partitions.find((x) => x.partitionId === p)!.leader;
    const replicas = meta.topics[0]!.partitions.find((x) => x.partitionId === p)!.replicas.length;
    await admin.disconnect();
    await cluster.kill(leader);
    const killedAt = performance.now();
    // The dead node is fenced after the brokers' session (2.5 s), then its partitions have new
    // leaders: traffic goes on until every conversation has had two prompts sent after that
    // answered (at most 10 s). A prompt still waiting then is waited for by stop(), up to 10 s.
    const fenced = killedAt + 3_000;
    const goneOn = () => outcomes.every((os) => os.filter((o) => o.kind === 'reply' && o.sentAt > fenced).length >= 2);
    for (const end = performance.now() + 10_000; performance.now() < end && !goneOn(); ) await new Promise((r) => setTimeout(r, 50));
    await stop();
    const all = outcomes.flat();
    const after = all.filter((o) => o.kind === 'reply' && o.sentAt > killedAt);
    console.log(`3-broker cluster (${client}): leader ${leader} of partition ${p} (${replicas} replicas) SIGKILLed; ${all.length} prompts: ${all.filter((o) => o.kind === 'reply').length} replies (${after.length} sent after the kill), ${all.filter((o) => o.kind === 'unavailable').length} unavailable, ${all.filter((o) => o.kind === 'silence').length} silent`);

    if (all.some((o) => o.kind === 'silence')) console.log(gemello.output().split('\n').filter((l) => /warn|error/.test(l)).slice(-40).join('\n'));
    expect(replicas).toBe(3);
    expect(all.filter((o) => o.kind === 'silence' || o.kind === 'other')).toEqual([]);
    // The conversations go on: each got replies to prompts sent after the kill.
    for (const os of outcomes) expect(os.filter((o) => o.kind === 'reply' && o.sentAt > killedAt).length).toBeGreaterThan(0);
    // No acknowledged event lost: every reply a client saw is in the log at its seq; the log is clean.
    const log = kafkaLog({ brokers, partitions: PARTITIONS, namespace }, client);
    try {
      await expectRepliesInLog(log, conversations, outcomes);
    } finally {
      await log.close();
    }
    for (const c of clients) c.close();
  }, 180_000);
});
