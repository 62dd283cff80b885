// The only actor host stalls for longer than its lease (SIGSTOP ≈ 1.2 s, as a loaded machine
// or a long pause would), then runs again: nobody else could have taken its partitions, and
// it must serve again at once — with nothing lost and nothing answered twice. (Two hosts,
// where the frozen one does lose its partitions, are in failover.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { KAFKA_BROKERS, realEnv } from '../support/env.ts';
import { kafkaLog } from '../support/kafka.ts';
import { fakeModelEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { expectEachPromptAnsweredOnce, openConversations } from '../support/traffic.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const PARTITIONS = 4;
const CONVERSATIONS = 6;
const FROZEN_MS = 1_200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let fake: FakeOpenAI;
let procs: Gemello[] = [];

beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterAll(async () => {
  for (const p of procs) p.child.kill('SIGCONT');
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  await fake?.close();
});

describe('a lone actor host that stalls longer than its lease', () => {
  it('serves again right after the stall: every prompt answered once, the log clean, the host keeps its partitions', async () => {
    const real = realEnv('st');
    const env = { ...real.env, ...fakeModelEnv(fake), GEMELLO_PARTITIONS: String(PARTITIONS), GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000', GEMELLO_LEASE_MS: '400', GEMELLO_RATE_PER_SEC: '1000', GEMELLO_RATE_BURST: '1000' };
    const port = await freePort();
    const gateway = await startGemello(['serve', '--roles', 'gateway,projections'], { ...env, PORT: String(port) });
    procs.push(gateway);
    const host = await startGemello(['actors'], env);
    procs.push(host);
    await host.waitFor(() => host.owned().length === PARTITIONS, 'the host to own every partition', 30_000);
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: real.namespace });
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
