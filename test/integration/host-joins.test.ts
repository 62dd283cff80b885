// A second actor host joins while 20 conversations talk to the first, serves for a moment and
// leaves (SIGTERM), four times: each join moves two partitions away from a host under traffic.
// The host losing them must write nothing more to them from the moment the group rebalances:
// the new owner reads their end as soon as it is assigned. Before the hold (actors/host/hold.ts)
// the log doubled 3–13 seqs in each of 4 runs of 4 with @platformatic/kafka (load 8–15; with
// kafkajs in none of 3).
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { KAFKA_BROKERS } from '../support/env.ts';
import { gatewayAndHost, hostFixture } from '../support/host-processes.ts';
import { kafkaLog } from '../support/kafka.ts';
import { explainDirtyLogs } from '../support/log-forensics.ts';
import { startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { openConversations } from '../support/traffic.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const PARTITIONS = 4;
const JOINS = 4;
const fx = hostFixture('all');

describe('actor hosts joining a host under traffic', () => {
  it('the host that loses partitions writes nothing more to them: every conversation\'s log stays clean', async () => {
    const { env, namespace, port, host: a } = await gatewayAndHost(fx, 'hj', PARTITIONS);
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
    try {
      const { clients, conversations } = await openConversations(`ws://127.0.0.1:${port}/ws`, 20, seed, (f) => f.type === 'reply' || f.type === 'error');
      let traffic = true;
      const loops = clients.map(async (c, i) => {
        for (let n = 1; traffic; n++) {
          c.send({ ...seed, conversationId: conversations[i], prompt: `p${n}`, requestId: `r${n}` });
          // A prompt caught in a handover may be answered late: the log is what is judged here.
          await c.next((x) => (x.type === 'reply' || x.type === 'error') && x.requestId === `r${n}`, 10_000).catch(() => {});
        }
      });
      const hosts: Record<string, Gemello> = { a };
      for (let k = 0; k < JOINS; k++) {
        await sleep(600);
        const b = await startGemello(['actors'], env);
        fx.procs.push(b);
        hosts[`b${k}`] = b;
        await b.waitFor(() => b.owned().length > 0, 'the joining host to be assigned partitions', 30_000);
        await sleep(800);
        await b.kill('SIGTERM');
        await a.waitFor(() => a.owned().length === PARTITIONS, 'the first host to own every partition again', 30_000);
      }
      traffic = false;
      await Promise.all(loops);
      for (const c of clients) c.close();
      const held = (a.output().match(/appends held \d+ ms/g) ?? []).map((x) => x.replace(/\D+/g, ''));
      console.log(`${JOINS} joins under traffic: the first host held its appends ${held.join(', ')} ms at the rebalances (${process.env.GEMELLO_KAFKA_CLIENT || 'default'} client)`);
      expect(await explainDirtyLogs(log, conversations, hosts)).toBeNull();
    } finally {
      await log.close();
    }
  }, 180_000);
});
