// The Kafka broker is SIGKILLed under traffic and started again (a private broker of this
// test, never the shared one): nothing is lost or doubled, every prompt gets a reply or a
// clear `unavailable` within 10 s, /ready says 503 while the broker is away, and the
// conversations are served again soon after it answers.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConversation } from '../../cli/read-conversation.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, REDIS_URL } from '../support/env.ts';
import { kafkaLog } from '../support/kafka.ts';
import { fakeModelEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const KAFKA_SH = fileURLToPath(new URL('../../infra/kafka.sh', import.meta.url));
const home = mkdtempSync(join(tmpdir(), 'gemello-kafka-fault-'));
const PARTITIONS = 4;
const CONVERSATIONS = 8;
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
let kafkaEnv: Record<string, string>;
let fake: FakeOpenAI;
let gemello: Gemello;
let port = 0;
const namespace = `bf${randomUUID().slice(0, 8)}.`;

/** infra/kafka.sh on the private broker only: its own home dir and ports, always. */
async function privateKafka(command: 'start' | 'stop') {
  if (!kafkaEnv.KAFKA_HOME_DIR?.startsWith(tmpdir()) || kafkaEnv.KAFKA_PORT === '9092') throw new Error('refusing to touch the shared broker');
  return promisify(execFile)('bash', [KAFKA_SH, command], { env: { ...process.env, ...kafkaEnv }, timeout: 120_000 });
}

/** SIGKILLs the private broker (its pid file is in this test's own home dir). */
async function killBroker() {
  const pid = Number(readFileSync(join(home, 'kafka.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
}

beforeAll(async () => {
  const [kp, controller] = [await freePort(), await freePort()];
  kafkaEnv = { KAFKA_HOME_DIR: home, KAFKA_PORT: String(kp), KAFKA_CONTROLLER_PORT: String(controller), KAFKA_WAIT_SECONDS: '60' };
  fake = await startFakeOpenAI();
  await privateKafka('start');
  port = await freePort();
  gemello = await startGemello(['serve'], {
    PORT: String(port),
    KAFKA_BROKERS: `127.0.0.1:${kp}`,
    DATABASE_URL,
    DATABASE_SCHEMA: `bf_${randomUUID().slice(0, 8)}`,
    REDIS_URL,
    GEMELLO_NAMESPACE: namespace,
    GEMELLO_PARTITIONS: String(PARTITIONS),
    GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000',
    GEMELLO_RATE_PER_SEC: '1000',
    GEMELLO_RATE_BURST: '1000',
    ...fakeModelEnv(fake),
  });
}, 150_000);

afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
  if (kafkaEnv) await privateKafka('stop').catch(() => {});
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe('broker SIGKILL and restart under traffic', () => {
  it('loses and doubles nothing, answers every prompt within 10 s, and serves again soon after the broker is back', async () => {
    const clients = await Promise.all(Array.from({ length: CONVERSATIONS }, () => connect(`ws://127.0.0.1:${port}/ws`)));
    const conversations: string[] = [];
    for (const c of clients) {
      c.send({ ...seed, prompt: 'hello', requestId: 'r0' });
      conversations.push((await c.next((f) => f.type === 'reply', 30_000)).conversationId as string);
    }
    type Outcome = { n: number; sentAt: number; at: number; kind: 'reply' | 'unavailable' | 'other' | 'silence'; frame?: Record<string, unknown> };
    const outcomes: Outcome[][] = clients.map(() => []);
    let traffic = true;
    const loops = clients.map(async (c, i) => {
      for (let n = 1; traffic; n++) {
        const sentAt = performance.now();
        c.send({ ...seed, conversationId: conversations[i], prompt: `p${n}`, requestId: `r${n}` });
        try {
          const f = await c.next((x) => (x.type === 'reply' || x.type === 'error') && x.requestId === `r${n}`, 10_000);
          const kind = f.type === 'reply' ? 'reply' : f.code === 'unavailable' ? 'unavailable' : 'other';
          outcomes[i]!.push({ n, sentAt, at: performance.now(), kind, frame: f });
          if (kind !== 'reply') await new Promise((r) => setTimeout(r, 200)); // a client backs off a little
        } catch {
          outcomes[i]!.push({ n, sentAt, at: performance.now(), kind: 'silence' });
        }
      }
    });
    const ready = () => fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status, () => 0);
    await new Promise((r) => setTimeout(r, 1_500));
    await killBroker();
    const killedAt = performance.now();
    let sawUnready = false;
    for (const end = Date.now() + 8_000; Date.now() < end && !sawUnready; await new Promise((r) => setTimeout(r, 200))) sawUnready = (await ready()) === 503;
    await new Promise((r) => setTimeout(r, Math.max(0, 3_000 - (performance.now() - killedAt))));
    await privateKafka('start');
    const backAt = performance.now();
    // Served again: every conversation has had a prompt sent after the broker answered, answered.
    const servedAgain = () => outcomes.every((os) => os.some((o) => o.kind === 'reply' && o.sentAt >= backAt));
    for (const end = Date.now() + 30_000; Date.now() < end && !servedAgain(); ) await new Promise((r) => setTimeout(r, 20));
    const servedMs = Math.max(...outcomes.map((os) => Math.min(...os.filter((o) => o.kind === 'reply' && o.sentAt >= backAt).map((o) => o.at)))) - backAt;
    await new Promise((r) => setTimeout(r, 2_000));
    traffic = false;
    await Promise.all(loops);
    const all = outcomes.flat();
    console.log(`broker fault: ${all.length} prompts: ${all.filter((o) => o.kind === 'reply').length} replies, ${all.filter((o) => o.kind === 'unavailable').length} unavailable, ${all.filter((o) => o.kind === 'silence').length} silent; /ready 503 during the outage: ${sawUnready}; every conversation served again ${servedMs.toFixed(0)} ms after the broker answered (outage ${((backAt - killedAt) / 1000).toFixed(1)} s)`);

    expect(all.filter((o) => o.kind === 'silence' || o.kind === 'other')).toEqual([]);
    expect(sawUnready).toBe(true);
    expect(servedAgain()).toBe(true);
    expect(await ready()).toBe(200);

    const log = kafkaLog({ brokers: [`127.0.0.1:${kafkaEnv.KAFKA_PORT}`], partitions: PARTITIONS, namespace });
    try {
      for (const [i, id] of conversations.entries()) {
        const events = await readConversation(log, id);
        expect(events.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1)); // no gap, nothing doubled
        const prompts = events.filter((e) => e.type === 'PromptReceived').map((e) => e.seq);
        const answered = events.filter((e) => e.type === 'ReplyGenerated' || e.type === 'ReplyFailed').map((e) => (e.data as { promptSeq: number }).promptSeq);
        expect(answered.sort((a, b) => a - b)).toEqual(prompts); // each prompt in the log answered once
        // Each reply a client saw is in the log at its seq.
        for (const o of outcomes[i]!.filter((x) => x.kind === 'reply')) expect(events.find((e) => e.seq === o.frame!.seq)?.type).toBe('ReplyGenerated');
      }
    } finally {
      await log.close();
    }
    for (const c of clients) c.close();
  }, 180_000);
});
