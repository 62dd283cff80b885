// A private Kafka broker of this file (never the shared one) goes away and comes back,
// under one `gemello serve`:
// - a clean stop: /health stays 200 (the process lives), /ready turns 503 naming the log,
//   then 200 again once it is back, and prompts work again (what an orchestrator sees);
// - a SIGKILL under traffic, then a restart: nothing is lost or doubled, every prompt gets a
//   reply or a clear `unavailable` within 10 s, /ready says 503 while the broker is away, and
//   the conversations are served again soon after it answers.
// One broker serves both, for each client in turn (each start of a broker costs seconds).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { BOTH_CLIENTS, kafkaLog } from '../support/kafka.ts';
import { privateBroker } from '../support/private-kafka.ts';
import type { PrivateBroker } from '../support/private-kafka.ts';
import { brokerFaultEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { expectRepliesInLog, openConversations, promptsUntilStopped } from '../support/traffic.ts';
import { connect } from '../support/ws-client.ts';

const PARTITIONS = 4;
const CONVERSATIONS = 8;
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
let kafka: PrivateBroker;
let fake: FakeOpenAI;

beforeAll(async () => {
  kafka = await privateBroker();
  [fake] = await Promise.all([startFakeOpenAI(), kafka.start()]);
}, 150_000);

afterAll(async () => {
  await fake?.close();
  await kafka?.remove();
}, 60_000);

type Ready = { status: number; body: { status: string; backends: Record<string, string> } };

// One broker for both clients: each client's node has a namespace of its own; the broker is
// answering again when either test ends.
describe.each(BOTH_CLIENTS)('on %s', (client) => {
  const namespace = `bf${randomUUID().slice(0, 8)}.`;
  let gemello: Gemello;
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
    gemello = await startGemello(['serve'], brokerFaultEnv({ port, brokers: [kafka.broker], client, namespace, tag: 'bf', partitions: PARTITIONS, fake }));
  }, 150_000);

  afterAll(async () => {
    await gemello?.kill();
  }, 60_000);

  const readyNow = async (): Promise<Ready> => {
    const res = await fetch(`http://127.0.0.1:${port}/ready`);
    return { status: res.status, body: (await res.json()) as Ready['body'] };
  };

  describe('/health and /ready across a Kafka outage', () => {
    it('/ready is 503 naming the log while Kafka is down and 200 once it is back; /health is 200 throughout', async () => {
      // /health is polled the whole time in the background.
      const health: number[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          health.push(await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const until = async (ok: (r: Ready) => boolean, ms: number, what: string) => {
        let last: Ready | null = null;
        for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) if (ok((last = await readyNow()))) return last;
        throw new Error(`timed out waiting for ${what}; last /ready: ${JSON.stringify(last)}`);
      };

      const t0 = Date.now();
      const marks: string[] = [];
      const mark = (what: string) => marks.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      try {
        expect(await readyNow()).toEqual({ status: 200, body: { status: 'ready', backends: { log: 'ok', readModel: 'ok', snapshots: 'ok', feed: 'ok' } } });

        await kafka.stop();
        mark('stopped');
        const down = await until((r) => r.status === 503, 20_000, '/ready to turn 503');
        expect(down.body.status).toBe('unavailable');
        expect(down.body.backends.log).not.toBe('ok');
        expect(down.body.backends).toMatchObject({ readModel: 'ok', snapshots: 'ok' });

        mark('503');
        await kafka.start();
        mark('started');
        await until((r) => r.status === 200, 45_000, '/ready to turn 200 again');
        mark('200');
        expect(gemello.child.exitCode).toBeNull();
      } finally {
        polling = false;
        await poller;
      }
      expect(health.length).toBeGreaterThan(10);
      expect(health.filter((s) => s !== 200)).toEqual([]);

      // And the whole path works again.
      const c = await connect(`ws://127.0.0.1:${port}/ws`);
      c.send({ digitalTwinId: 'warren-buffett-001', prompt: 'are you back?' });
      expect(await c.next((f) => f.type === 'reply', 45_000)).toMatchObject({ reply: 'echo: are you back?' });
      c.close();
      mark('replied');
      console.log(`kafka outage (${client}): ${marks.join(', ')}`);
    }, 150_000);
  });

  describe('broker SIGKILL and restart under traffic', () => {
    it('loses and doubles nothing, answers every prompt within 10 s, and serves again soon after the broker is back', async () => {
      const { clients, conversations } = await openConversations(`ws://127.0.0.1:${port}/ws`, CONVERSATIONS, seed, (f) => f.type === 'reply', 30_000);
      const { outcomes, stop } = promptsUntilStopped(clients, conversations, seed);
      const ready = () => fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status, () => 0);
      await new Promise((r) => setTimeout(r, 1_500));
      const killedWall = new Date().toISOString();
      await kafka.kill();
      const killedAt = performance.now();
      let sawUnready = false;
      for (const end = Date.now() + 8_000; Date.now() < end && !sawUnready; await new Promise((r) => setTimeout(r, 200))) sawUnready = (await ready()) === 503;
      await new Promise((r) => setTimeout(r, Math.max(0, 3_000 - (performance.now() - killedAt))));
      await kafka.start();
      const backAt = performance.now();
      const backWall = new Date().toISOString();
      // Served again: every conversation has had a prompt sent after the broker answered, answered.
      const servedAgain = () => outcomes.every((os) => os.some((o) => o.kind === 'reply' && o.sentAt >= backAt));
      for (const end = Date.now() + 30_000; Date.now() < end && !servedAgain(); ) await new Promise((r) => setTimeout(r, 20));
      const servedMs = Math.max(...outcomes.map((os) => Math.min(...os.filter((o) => o.kind === 'reply' && o.sentAt >= backAt).map((o) => o.at)))) - backAt;
      await new Promise((r) => setTimeout(r, 2_000));
      await stop();
      const all = outcomes.flat();
      // What the node said from the kill until it served again (the first lines of each kind).
      const said = gemello.output().split('\n').filter((l) => l >= killedWall && /warn|error|assigned|partition \d+:/.test(l));
      const seen = new Map<string, number>();
      console.log(`broker killed at ${killedWall}, answering again at ${backWall}\n${said.filter((l) => { const k = l.slice(25, 90).replace(/\d+/g, '#'); seen.set(k, (seen.get(k) ?? 0) + 1); return seen.get(k)! <= 3; }).slice(0, 80).join('\n')}`);
      console.log(`broker fault (${client}): ${all.length} prompts: ${all.filter((o) => o.kind === 'reply').length} replies, ${all.filter((o) => o.kind === 'unavailable').length} unavailable, ${all.filter((o) => o.kind === 'silence').length} silent; /ready 503 during the outage: ${sawUnready}; every conversation served again ${servedMs.toFixed(0)} ms after the broker answered (outage ${((backAt - killedAt) / 1000).toFixed(1)} s)`);

      expect(all.filter((o) => o.kind === 'silence' || o.kind === 'other')).toEqual([]);
      expect(sawUnready).toBe(true);
      expect(servedAgain()).toBe(true);
      expect(await ready()).toBe(200);

      const log = kafkaLog({ brokers: [kafka.broker], partitions: PARTITIONS, namespace }, client);
      try {
        // No gap, nothing doubled; each prompt in the log answered once; each reply a client saw in the log at its seq.
        await expectRepliesInLog(log, conversations, outcomes, (events) => {
          const prompts = events.filter((e) => e.type === 'PromptReceived').map((e) => e.seq);
          const answered = events.filter((e) => e.type === 'ReplyGenerated' || e.type === 'ReplyFailed').map((e) => (e.data as { promptSeq: number }).promptSeq);
          expect(answered.sort((a, b) => a - b)).toEqual(prompts);
        });
      } finally {
        await log.close();
      }
      for (const c of clients) c.close();
    }, 180_000);
  });
});
