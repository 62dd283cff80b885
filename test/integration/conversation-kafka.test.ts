// The seed protocol end to end on real Kafka, Postgres and Redis: a client talks to a twin
// over a WebSocket, the actor host answers through the log, and the log is the truth.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { conversationOnKafka } from '../support/log.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

let namespace: string;
let fake: FakeOpenAI;
let gemello: Gemello;
let url: string;

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

beforeAll(async () => {
  let port: number;
  ({ namespace, fake, gemello, port } = await startServeWithFakeModel('it', { GEMELLO_MODEL_TIMEOUT_MS: '1500', GEMELLO_MODEL_RETRIES: '1' }));
  url = `ws://127.0.0.1:${port}`;
});

afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

const logOf = (conversationId: string) => conversationOnKafka(namespace, conversationId);

describe('a conversation over a WebSocket, on Kafka', () => {
  it('answers three prompts in order, and the log holds seq 1..N with no gap and the full envelope', async () => {
    const client = await connect(`${url}/`);
    const replies = [];
    for (const [i, prompt] of ['What is a moat?', 'Why Coca-Cola?', 'And Apple?'].entries()) {
      client.send({ ...seed, prompt, requestId: `r${i}` });
      replies.push(await client.next((f) => f.type === 'reply'));
    }
    client.close();

    const conversationId = replies[0]!.conversationId as string;
    expect(replies.map((r) => r.reply)).toEqual(['echo: What is a moat?', 'echo: Why Coca-Cola?', 'echo: And Apple?']);
    expect(replies.map((r) => r.seq)).toEqual([3, 5, 7]);
    expect(replies.map((r) => r.requestId)).toEqual(['r0', 'r1', 'r2']);
    for (const r of replies) expect(r).toMatchObject({ type: 'reply', ...seed, conversationId });

    const events = await logOf(conversationId);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated', 'PromptReceived', 'ReplyGenerated', 'PromptReceived', 'ReplyGenerated']);
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(['causationId', 'conversationId', 'correlationId', 'data', 'eventId', 'occurredAt', 'position', 'schemaVersion', 'seq', 'traceparent', 'type']);
      expect(e.conversationId).toBe(conversationId);
    }
    expect(events[1]!.correlationId).toBe('r0');
  });

  it('sends the model the twin\'s model id, system prompt and the history', async () => {
    fake.requests.length = 0;
    const client = await connect(`${url}/ws`);
    client.send({ ...seed, prompt: 'first question' });
    await client.next((f) => f.type === 'reply');
    client.send({ ...seed, prompt: 'second question' });
    await client.next((f) => f.type === 'reply');
    client.close();
    const last = fake.requests[fake.requests.length - 1]!;
    expect(last.model).toBe('ft:gpt-4.1-nano-2025-04-14:ai4smartcity:warren-buffett:CXmgEp7Z');
    expect(last.messages[0]).toMatchObject({ role: 'system' });
    expect(last.messages[0]!.content).toContain('Warren Buffett');
    expect(last.messages.slice(1)).toEqual([
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'echo: first question' },
      { role: 'user', content: 'second question' },
    ]);
  });

  it('turns a model error or timeout into ReplyFailed and an error frame, and the next prompt works', async () => {
    const client = await connect(url);
    try {
      fake.setMode('error500');
      client.send({ ...seed, prompt: 'will fail', requestId: 'bad' });
      const err = await client.next((f) => f.type === 'error');
      expect(err).toMatchObject({ code: 'model_failed', requestId: 'bad', ...seed });
      expect(String(err.error)).toMatch(/500/);

      fake.setMode('hang');
      client.send({ ...seed, prompt: 'will time out', requestId: 'slow' });
      const timeout = await client.next((f) => f.type === 'error', 20_000);
      expect(timeout).toMatchObject({ code: 'model_failed', requestId: 'slow', reason: 'model_timeout' });

      fake.setMode('ok');
      client.send({ ...seed, prompt: 'works again', requestId: 'good' });
      const ok = await client.next((f) => f.type === 'reply');
      expect(ok).toMatchObject({ reply: 'echo: works again', requestId: 'good' });

      const events = await logOf(ok.conversationId as string);
      const failed = events.filter((e) => e.type === 'ReplyFailed');
      expect(failed.map((e) => (e.data as { code: string }).code)).toEqual(['model_http_500', 'model_timeout']);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    } finally {
      fake.setMode('ok');
      client.close();
    }
  }, 40_000);

  it('answers an unknown twin with the seed\'s error frame and keeps the socket usable', async () => {
    const client = await connect(url);
    client.send({ digitalTwinId: 'nobody', digitalTwinName: 'Nobody', prompt: 'hi' });
    expect(await client.next()).toEqual({ type: 'error', digitalTwinId: 'nobody', digitalTwinName: 'Nobody', error: 'Digital twin not found', code: 'twin_not_found' });
    client.send({ digitalTwinName: 'Warren Buffett', prompt: 'found by name' });
    expect(await client.next((f) => f.type === 'reply')).toMatchObject({ reply: 'echo: found by name', digitalTwinId: 'warren-buffett-001' });
    client.close();
  });
});
