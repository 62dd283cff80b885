// The opening of a failover test: two actor hosts and a gateway (startTwoHostCluster) talking
// to the fake model, and a conversation whose owner is known, so that the test can kill it.
import type { FakeOpenAI } from './fake-openai.ts';
import { KAFKA_BROKERS } from './env.ts';
import { kafkaLog } from './kafka.ts';
import { partitionFor } from '../../log/partition.ts';
import type { EventLog } from '../../log/port.ts';
import { fakeModelEnv, startTwoHostCluster } from './processes.ts';
import type { Gemello } from './processes.ts';
import { connect } from './ws-client.ts';
import type { Frame } from './ws-client.ts';

/**
 * A two-host cluster on `fake` whose model calls wait up to 30 s and are not retried (the call
 * of a host that dies is the survivor's to make again); its three processes are pushed onto
 * `procs` for the caller to kill. `url` is the gateway's WebSocket, `log` the cluster's event
 * log (the caller closes it).
 */
export async function failoverCluster(tag: string, partitions: number, fake: FakeOpenAI, procs: Gemello[]): Promise<{ url: string; a: Gemello; b: Gemello; log: EventLog }> {
  const { port, gateway, a, b, namespace } = await startTwoHostCluster(tag, partitions, { ...fakeModelEnv(fake), GEMELLO_MODEL_TIMEOUT_MS: '30000', GEMELLO_MODEL_RETRIES: '0' });
  procs.push(gateway, a, b);
  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions, namespace });
  return { url: `ws://127.0.0.1:${port}`, a, b, log };
}

/** A conversation's first prompt (`frame`) and reply on a new socket, and which of the hosts owns its partition (`other` is the one that does not). */
export async function firstReply(url: string, a: Gemello, b: Gemello, partitions: number, frame: Frame) {
  const client = await connect(url);
  client.send(frame);
  const conversationId = (await client.next((f) => f.type === 'reply')).conversationId as string;
  const p = partitionFor(conversationId, partitions);
  const [owner, other] = a.owned().includes(p) ? [a, b] : [b, a];
  return { client, conversationId, p, owner: owner!, other: other! };
}
