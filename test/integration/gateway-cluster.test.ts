// Two gateways on one log: a client that drops off one and comes back on the other with
// `resume` gets exactly what it missed, in order and once, and then the live frames.
// Gateway 1 is `gemello serve` (gateway, actors, projections); gateway 2 is `gemello gateway`.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realEnv } from '../support/env.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { conversationOnKafka } from '../support/log.ts';
import { fakeModelEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';
import type { Frame } from '../support/ws-client.ts';

const { namespace, env: realServices } = realEnv('gc');
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
let fake: FakeOpenAI;
let one: Gemello;
let two: Gemello;
let url1: string;
let url2: string;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const [p1, p2] = [await freePort(), await freePort()];
  url1 = `ws://127.0.0.1:${p1}/ws`;
  url2 = `ws://127.0.0.1:${p2}/ws`;
  const env = { ...realServices, ...fakeModelEnv(fake) };
  one = await startGemello(['serve'], { ...env, PORT: String(p1) });
  // Gateway 2 also closes sockets that send nothing for 4 s.
  two = await startGemello(['gateway'], { ...env, PORT: String(p2), GEMELLO_WS_IDLE_SECONDS: '4' });
});

afterAll(async () => {
  await Promise.all([one?.kill(), two?.kill()]);
  await fake?.close();
});

const logOf = (conversationId: string) => conversationOnKafka(namespace, conversationId);

const seqs = (frames: Frame[], type: string) => frames.filter((f) => f.type === type).map((f) => f.seq as number);

describe('two gateways', () => {
  it('a client that moves from gateway 1 to gateway 2 gets what it missed, once and in order, then live frames', async () => {
    // Alice talks on gateway 1, then drops off having seen up to seq 5.
    const alice = await connect(url1);
    alice.send({ ...seed, prompt: 'one', requestId: 'a1' });
    const r1 = await alice.next((f) => f.type === 'reply');
    alice.send({ ...seed, prompt: 'two', requestId: 'a2' });
    const r2 = await alice.next((f) => f.type === 'reply');
    const id = r1.conversationId as string;
    expect([r1.seq, r2.seq]).toEqual([3, 5]);
    alice.close();

    // Meanwhile, on gateway 2, the conversation goes on.
    const bob = await connect(url2);
    for (const prompt of ['three', 'four']) {
      bob.send({ ...seed, conversationId: id, prompt });
      await bob.next((f) => f.type === 'reply');
    }

    // Alice comes back, on gateway 2.
    const back = await connect(url2);
    back.send({ type: 'resume', conversationId: id, afterSeq: 5, requestId: 'again' });
    const resumed = await back.next((f) => f.type === 'resumed');
    expect(resumed).toMatchObject({ conversationId: id, lastSeq: 9, requestId: 'again', ...seed });
    const missed = back.frames.filter((f) => f.type === 'event');
    expect(missed.map((f) => [f.seq, f.event])).toEqual([[6, 'PromptReceived'], [7, 'ReplyGenerated'], [8, 'PromptReceived'], [9, 'ReplyGenerated']]);
    expect(missed.map((f) => (f.data as { text: string }).text)).toEqual(['three', 'echo: three', 'four', 'echo: four']);
    for (const f of missed) expect(f).toMatchObject({ conversationId: id, occurredAt: expect.any(String) });

    // Live frames continue: bob's next prompt, then her own; each reply reaches both, once.
    bob.send({ ...seed, conversationId: id, prompt: 'five', requestId: 'b5' });
    expect(await back.next((f) => f.type === 'reply')).toMatchObject({ seq: 11, reply: 'echo: five', conversationId: id, ...seed });
    back.send({ ...seed, conversationId: id, prompt: 'six', requestId: 'a6' });
    expect(await back.next((f) => f.type === 'reply')).toMatchObject({ seq: 13, reply: 'echo: six', requestId: 'a6' });
    expect(await bob.next((f) => f.seq === 13)).toMatchObject({ type: 'reply', reply: 'echo: six' });
    await new Promise((r) => setTimeout(r, 200));
    expect(seqs(back.frames, 'reply')).toEqual([11, 13]);
    expect(back.frames.find((f) => f.seq === 11)).not.toHaveProperty('requestId'); // bob's, not hers
    back.close();
    bob.close();

    const log = await logOf(id);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
  });

  it('a resume that races a busy conversation loses nothing and repeats nothing', async () => {
    const alice = await connect(url1);
    alice.send({ ...seed, prompt: 'start', requestId: 'start' });
    const first = await alice.next((f) => f.type === 'reply');
    const id = first.conversationId as string;
    const seen = first.seq as number;
    alice.close();

    // Bob fires prompts at gateway 2; alice resumes on gateway 1 while they are answered.
    const bob = await connect(url2);
    const N = 12;
    for (let i = 0; i < N; i++) bob.send({ ...seed, conversationId: id, prompt: `burst ${i}`, requestId: `b${i}` });
    const bobReplies = () => bob.frames.filter((f) => f.type === 'reply').length;
    const until = async (ok: () => boolean, what: string) => {
      for (const end = Date.now() + 20_000; !ok(); await new Promise((r) => setTimeout(r, 5))) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    };
    await until(() => bobReplies() >= 2, 'bob\'s first replies');
    const back = await connect(url1);
    back.send({ type: 'resume', conversationId: id, afterSeq: seen });
    await until(() => bobReplies() === N, 'all of bob\'s replies');
    const resumed = await back.next((f) => f.type === 'resumed');
    const lastSeq = resumed.lastSeq as number;
    const all = 1 + 2 * (N + 1); // ConversationStarted, then a prompt and its reply each
    const end = Date.now() + 10_000;
    while (!back.frames.some((f) => f.seq === all) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));

    // What came by resume is every event from seen+1 to lastSeq; what came live is every reply after it.
    const events = seqs(back.frames, 'event');
    expect(events).toEqual(Array.from({ length: lastSeq - seen }, (_, i) => seen + 1 + i));
    const log = await logOf(id);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: all }, (_, i) => i + 1));
    const repliesAfter = log.filter((e) => e.type === 'ReplyGenerated' && e.seq > lastSeq).map((e) => e.seq);
    expect(seqs(back.frames, 'reply')).toEqual(repliesAfter);
    // And the frames arrived in seq order.
    const order = back.frames.filter((f) => typeof f.seq === 'number').map((f) => f.seq as number);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    back.close();
    bob.close();
  });

  it('resuming a conversation nobody started answers at once, empty', async () => {
    const c = await connect(url2);
    c.send({ type: 'resume', conversationId: `never-${randomUUID()}`, afterSeq: 0, requestId: 'x' });
    // No auth: an unknown conversation resumes empty, and is then followed live.
    expect(await c.next((f) => f.requestId === 'x')).toMatchObject({ type: 'resumed', lastSeq: 0 });
    c.close();
  });

  it('closes a socket that has sent nothing for GEMELLO_WS_IDLE_SECONDS', async () => {
    const idle = await connect(url2);
    const busy = await connect(url2);
    const t0 = Date.now();
    while (!idle.closed() && Date.now() - t0 < 12_000) {
      busy.send({ type: 'resume', conversationId: 'keep-alive', afterSeq: -1 }); // an error, but activity
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(idle.closed()).toEqual({ code: 1000, reason: 'idle timeout' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3_900);
    expect(busy.closed()).toBeNull();
    busy.close();
  });

  it('a gateway told to stop still puts on the log the prompts that came in before its sockets closed, and another gateway shows them answered', async () => {
    const port = await freePort();
    const three = await startGemello(['gateway'], { ...realServices, ...fakeModelEnv(fake), PORT: String(port) });
    const c = await connect(`ws://127.0.0.1:${port}/ws`);
    // New conversations: each prompt waits for its conversation's data key before its append.
    const ids = Array.from({ length: 8 }, () => randomUUID());
    ids.forEach((conversationId, i) => c.send({ ...seed, conversationId, prompt: `last words ${i}`, requestId: `lw${i}` }));
    await new Promise((r) => setTimeout(r, 5));
    await three.kill('SIGTERM');
    expect(c.closed()?.code).toBe(1001);
    for (const [i, conversationId] of ids.entries()) {
      const events = await logOf(conversationId);
      expect(events.find((e) => e.type === 'PromptReceived')?.data, conversationId).toMatchObject({ requestId: `lw${i}` }); // its text is sealed
    }
    // The client, back on another gateway, finds each one answered.
    const other = await connect(url1);
    for (const conversationId of ids) {
      other.send({ type: 'resume', conversationId, afterSeq: 0 });
      await other.next((f) => f.type === 'resumed' && f.conversationId === conversationId);
      const said = other.frames.filter((f) => f.conversationId === conversationId && f.type === 'event').map((f) => f.event);
      if (!said.includes('ReplyGenerated')) await other.next((f) => f.type === 'reply' && f.conversationId === conversationId);
    }
    other.close();
  });
});
