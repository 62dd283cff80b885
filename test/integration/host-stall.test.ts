// The only actor host stalls for longer than its lease (SIGSTOP ≈ 1.2 s, as a loaded machine
// or a long pause would), then runs again: nobody else could have taken its partitions, and
// it must serve again at once — with nothing lost and nothing answered twice. (Two hosts,
// where the frozen one does lose its partitions, are in failover.test.ts.)
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { KAFKA_BROKERS } from '../support/env.ts';
import { gatewayAndHost, hostFixture } from '../support/host-processes.ts';
import { kafkaLog } from '../support/kafka.ts';
import { expectEachPromptAnsweredOnce, openConversations } from '../support/traffic.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const PARTITIONS = 4;
const CONVERSATIONS = 6;
const FROZEN_MS = 1_200;
const fx = hostFixture('all');

describe('a lone actor host that stalls longer than its lease', () => {
  it('serves again right after the stall: every prompt answered once, the log clean, the host keeps its partitions', async () => {
    const { namespace, port, gateway, host } = await gatewayAndHost(fx, 'st', PARTITIONS, { GEMELLO_LEASE_MS: '400' });
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
    try {
      const { clients, conversations } = await openConversations(`ws://127.0.0.1:${port}/ws`, CONVERSATIONS, seed, (f) => f.type === 'reply' || f.type === 'error');
      let traffic = true;
      let contAt = Infinity;
      /** When each reply came, per conversation. */
      const answeredAt: number[][] = clients.map(() => []);
      const sent = clients.map(() => 1);
      const loops = clients.map(async (c, i) => {
        while (traffic) {
          const n = sent[i]!++;
          c.send({ ...seed, conversationId: conversations[i], prompt: `p${n}`, requestId: `r${n}` });
          const f = await c.next((x) => x.type === 'reply' || x.type === 'error', 20_000);
          answeredAt[i]!.push(performance.now());
          if (f.type === 'error') break;
          await sleep(20);
        }
      });
      await sleep(800);
      host.child.kill('SIGSTOP');
      await sleep(FROZEN_MS);
      host.child.kill('SIGCONT');
      contAt = performance.now();
      await host.waitFor(() => /was frozen/.test(host.output()), 'the host to notice its stall', 10_000);
      await sleep(2_000);
      traffic = false;
      await Promise.all(loops);

      await expectEachPromptAnsweredOnce(clients, conversations, sent, log, { host, gateway });
      expect(host.owned()).toHaveLength(PARTITIONS);
      // Each conversation's first reply after the stall, and how many replies came after it.
      const firstAfter = answeredAt.map((ts) => ts.find((t) => t >= contAt) ?? Infinity);
      expect(firstAfter.every((t) => t < Infinity)).toBe(true);
      const total = answeredAt.reduce((n, ts) => n + ts.length, 0);
      const lines = host.output().split('\n').filter((l) => /frozen|group|partitions|rejoin/.test(l));
      console.log(lines.join('\n'));
      console.log(`lone host SIGSTOPped ${FROZEN_MS} ms (lease 400 ms): first reply ${(Math.min(...firstAfter) - contAt).toFixed(0)} ms after SIGCONT, every conversation answered again within ${(Math.max(...firstAfter) - contAt).toFixed(0)} ms; ${total} replies`);
    } finally {
      await log.close();
    }
  }, 90_000);
});
