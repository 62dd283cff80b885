// Live replies through `gemello serve` on real Kafka, PostgreSQL and Redis, against a fake
// OpenAI server that streams server-sent events over real HTTP with a pause per token (so
// the SDK's real streaming path runs): deltas before the reply that add up to it, a second
// socket that resumes mid-stream, a stop that cancels the model's request and trims the
// history, and seed clients that only ever see `reply` and `error` frames.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';
import type { Frame } from '../support/ws-client.ts';

const twin = { type: 'prompt', digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const LONG = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen';
let fake: FakeOpenAI;
let gemello: Gemello;
let url = '';
let http = '';

beforeAll(async () => {
  // Speech on (the fake speaks too): audio frames exist, so a seed client could be sent them.
  const s = await startServeWithFakeModel('st', { GEMELLO_SPEECH: 'on', GEMELLO_MODEL_RETRIES: '0' });
  ({ fake, gemello } = s);
  url = `ws://127.0.0.1:${s.port}/ws`;
  http = `http://127.0.0.1:${s.port}`;
}, 120_000);
afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

/** The text the reply.delta frames build, checking that each starts where the text so far ends. */
function rebuilt(frames: Frame[], promptSeq?: number): string {
  let text = '';
  for (const f of frames) {
    if (f.type !== 'reply.delta' || (promptSeq !== undefined && f.promptSeq !== promptSeq)) continue;
    expect(f.offset).toBe(text.length); // no hole, no repeat
    text += f.text as string;
  }
  return text;
}

describe('live replies', () => {
  it('streams a reply as the model writes it, and a second socket that resumes mid-stream rebuilds all of it', async () => {
    fake.setTokenDelay(25);
    const a = await connect(url);
    a.send({ ...twin, prompt: LONG, stream: true, requestId: 'long' });
    const first = await a.next((f) => f.type === 'reply.delta');
    // The model was still writing when the client had its first words.
    expect(fake.streaming).toBeGreaterThan(0);
    const b = await connect(url);
    b.send({ type: 'resume', conversationId: first.conversationId, afterSeq: 0 });
    const reply = await a.next((f) => f.type === 'reply', 20_000);
    const again = await b.next((f) => f.type === 'reply', 20_000);
    expect(reply).toMatchObject({ reply: `echo: ${LONG}`, requestId: 'long' });
    expect(again.reply).toBe(reply.reply);
    const deltas = a.frames.filter((f) => f.type === 'reply.delta');
    expect(deltas.length).toBeGreaterThan(5);
    expect(a.frames.indexOf(deltas.at(-1)!)).toBeLessThan(a.frames.indexOf(reply));
    expect(rebuilt(a.frames)).toBe(reply.reply);
    // The resuming socket: the text so far in one delta from offset 0, then the rest live.
    expect(b.frames.find((f) => f.type === 'reply.delta')).toMatchObject({ offset: 0 });
    expect(rebuilt(b.frames)).toBe(reply.reply);
    a.close();
    b.close();
    fake.setTokenDelay(0);
  });

  it('stops a reply mid-stream: the model request is aborted, ReplyStopped is recorded, no reply follows, and the history keeps what was heard', async () => {
    fake.setTokenDelay(40);
    fake.setReplyText('Price is what you pay, value is what you get, and the two are rarely the same thing at all.');
    const c = await connect(url);
    const aborted = fake.aborted;
    c.send({ ...twin, prompt: 'tell me', stream: true });
    const first = await c.next((f) => f.type === 'reply.delta');
    const conversationId = first.conversationId as string;
    await c.next((f) => f.type === 'reply.delta');
    c.send({ type: 'stop', conversationId, heardChars: 8, requestId: 'halt' });
    const stopped = await c.next((f) => f.type === 'reply.stopped');
    expect(stopped).toMatchObject({ conversationId, promptSeq: first.promptSeq, heardChars: 8, requestId: 'halt' });
    expect(String(stopped.text)).toBe(rebuilt(c.frames)); // what streamed is what was recorded
    await expect.poll(() => fake.aborted, { timeout: 5_000 }).toBe(aborted + 1);

    // The next prompt's request shows the model only what was heard of the stopped reply.
    fake.setTokenDelay(0);
    fake.setReplyText(null);
    const asked = fake.requests.length;
    c.send({ ...twin, conversationId, prompt: 'go on' });
    const next = await c.next((f) => f.type === 'reply');
    expect(next.reply).toBe('echo: go on');
    const history = fake.requests[asked]!.messages.slice(1).map((m) => m.content);
    expect(history).toEqual(['tell me', String(stopped.text).slice(0, 8), 'go on']);
    // No reply frame ever came for the stopped prompt.
    expect(c.frames.filter((f) => f.type === 'reply')).toEqual([next]);

    // Barge-in after the reply was generated: heardChars still trims what the model sees.
    c.send({ type: 'stop', conversationId, heardChars: 4 });
    expect(await c.next((f) => f.type === 'reply.stopped')).toMatchObject({ replySeq: next.seq, heardChars: 4 });
    c.send({ ...twin, conversationId, prompt: 'and?' });
    await c.next((f) => f.type === 'reply');
    expect(fake.requests.at(-1)!.messages.slice(-2).map((m) => m.content)).toEqual(['echo', 'and?']);

    // In the log and in the read model (once the projection has caught up).
    const eventsNow = async () => (await (await fetch(`${http}/api/conversations/${conversationId}/events`)).json()) as Array<{ type: string; data: { text: string } }>;
    await expect.poll(async () => (await eventsNow()).filter((e) => e.type === 'ReplyGenerated').length, { timeout: 10_000 }).toBe(2);
    const events = await eventsNow();
    expect(events.filter((e) => e.type === 'ReplyStopped')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'ReplyGenerated')).toHaveLength(2);
    const view = (await (await fetch(`${http}/api/conversations/${conversationId}`)).json()) as { messages: Array<{ role: string; content: string }> };
    expect(view.messages.map((m) => m.content)).toContain(String(stopped.text).slice(0, 8));
    c.close();
  });

  it('answers a seed client (untyped frames) only with frames that carry reply or error', async () => {
    const seedClient = await connect(url);
    seedClient.send({ digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett', prompt: 'What is a moat?' });
    const typed = await connect(url);
    typed.send({ ...twin, prompt: 'What is a moat?', stream: true });
    const reply = await seedClient.next((f) => f.type === 'reply');
    // By the time the typed client has its audio, the seed client would have had its own.
    await typed.next((f) => f.type === 'audio' || f.type === 'audio.failed', 30_000);
    seedClient.send({ digitalTwinId: 'warren-buffett-001', conversationId: reply.conversationId, prompt: 'And a second one?' });
    await seedClient.next((f) => f.type === 'reply');
    await new Promise((r) => setTimeout(r, 300));
    expect(seedClient.frames.length).toBe(2);
    expect(seedClient.frames.every((f) => typeof f.reply === 'string' || typeof f.error === 'string')).toBe(true);
    expect(typed.frames.some((f) => f.type === 'reply.delta')).toBe(true);
    seedClient.close();
    typed.close();
  });
});
