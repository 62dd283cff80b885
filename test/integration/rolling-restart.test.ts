// A rolling restart: SIGTERM one of two actor hosts while 20 conversations keep talking.
// The host hands its partitions over (drains, writes snapshots and checkpoints, then leaves
// the group): no client sees an error frame, and every prompt gets exactly one reply.
import { loadavg } from 'node:os';
import { describe, expect, it } from 'vitest';
import { partitionFor } from '../../log/partition.ts';
import { hostFixture } from '../support/host-processes.ts';
import { KAFKA_BROKERS } from '../support/env.ts';
import { kafkaLog } from '../support/kafka.ts';
import { fakeModelEnv, startTwoHostCluster } from '../support/processes.ts';
import { expectEachPromptAnsweredOnce, openConversations } from '../support/traffic.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const PARTITIONS = 4;
const CONVERSATIONS = 20;
const fx = hostFixture('each');

describe('rolling restart of an actor host', () => {
  it('SIGTERM under traffic from 20 conversations: no error frame, every prompt answered exactly once', async () => {
    const { port, gateway, a, b, namespace } = await startTwoHostCluster('rr', PARTITIONS, { ...fakeModelEnv(fx.fake), GEMELLO_RATE_PER_SEC: '1000', GEMELLO_RATE_BURST: '1000' });
    fx.procs.push(gateway, a, b);
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace });
    try {
      const { clients, conversations } = await openConversations(`ws://127.0.0.1:${port}/ws`, CONVERSATIONS, seed, (f) => f.type === 'reply' || f.type === 'error');
      const leaving = a;
      const moved = new Set(leaving.owned());
      let traffic = true;
      let termAt = 0;
      /** Per prompt sent: when, and how long its reply took (for the conversations that moved). */
      const waits: Array<{ sentAt: number; ms: number; moved: boolean }> = [];
      /** Each conversation's prompts: when sent, when answered. */
      const timeline: Array<Array<{ sentAt: number; at: number }>> = clients.map(() => []);
      const sent = clients.map(() => 1);
      const loops = clients.map(async (c, i) => {
        const isMoved = moved.has(partitionFor(conversations[i]!, PARTITIONS));
        while (traffic) {
          const n = sent[i]!++;
          const t0 = performance.now();
          c.send({ ...seed, conversationId: conversations[i], prompt: `p${n}`, requestId: `r${n}` });
          const f = await c.next((x) => x.type === 'reply' || x.type === 'error', 20_000);
          waits.push({ sentAt: t0, ms: performance.now() - t0, moved: isMoved });
          timeline[i]!.push({ sentAt: t0, at: performance.now() });
          if (f.type === 'error') break;
        }
      });
      await new Promise((r) => setTimeout(r, 1_500));
      termAt = performance.now();
      const termWall = new Date().toISOString();
      await leaving.kill('SIGTERM');
      const exitedMs = performance.now() - termAt;
      await b.waitFor(() => b.owned().length === PARTITIONS, 'the other host to own every partition', 10_000);
      await new Promise((r) => setTimeout(r, 2_000));
      traffic = false;
      await Promise.all(loops);

      await expectEachPromptAnsweredOnce(clients, conversations, sent, log, { a, b, gateway });
      const around = waits.filter((w) => w.moved && w.sentAt >= termAt - 200 && w.sentAt <= termAt + exitedMs + 500);
      const worst = Math.max(0, ...around.map((w) => w.ms));
      console.log([leaving.output(), b.output()].join('\n').split('\n').filter((l) => /handed|partition \d+: read|SIGTERM|frozen|removing|warn|assigned/.test(l)).join('\n'));
      // Served again: every conversation that moved has its first reply from the new owner, i.e.
      // the first that came after the new owner was assigned the moved partitions (the leaving
      // host writes nothing after it logs that it handed over, but a reply it wrote just before
      // can reach the client after that: the gateway's feed lags; each conversation always has a
      // prompt under way).
      const movedIdx = conversations.map((id, i) => (moved.has(partitionFor(id, PARTITIONS)) ? i : -1)).filter((i) => i >= 0);
      const handedWall = /^(\S+) info actors: handed partitions/m.exec(leaving.output())?.[1];
      expect(handedWall).toBeDefined();
      const handedAt = termAt + (Date.parse(handedWall!) - Date.parse(termWall));
      const assignedWall = [...b.output().matchAll(/^(\S+) info actors: assigned partitions/gm)].map((m) => m[1]!).find((w) => Date.parse(w) >= Date.parse(handedWall!));
      expect(assignedWall).toBeDefined();
      const assignedAt = termAt + (Date.parse(assignedWall!) - Date.parse(termWall));
      const servedAgain = Math.max(0, ...movedIdx.map((i) => (timeline[i]!.find((p) => p.at > assignedAt)?.at ?? Infinity) - termAt));
      const before = waits.filter((w) => w.sentAt < termAt - 200).map((w) => w.ms).sort((x, y) => x - y);
      const p50 = before[Math.floor(before.length / 2)] ?? 0;
      console.log(`SIGTERM sent at ${termWall}`);
      console.log(`rolling restart: ${waits.length} prompts; SIGTERM -> host exited in ${exitedMs.toFixed(0)} ms; handed over ${(handedAt - termAt).toFixed(0)} ms after SIGTERM, assigned to the other host ${(assignedAt - termAt).toFixed(0)} ms after, every moved conversation (${movedIdx.length}) served again by the new owner ${servedAgain.toFixed(0)} ms after SIGTERM (a reply took ${p50.toFixed(0)} ms at the median before it); longest reply wait of a moved conversation around the handover ${worst.toFixed(0)} ms (${around.length} prompts); load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    } finally {
      await log.close();
    }
  }, 120_000);
});
