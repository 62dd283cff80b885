import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EffectError, type ReplyRequest, type Twin } from '../../actors/ports.ts';
import { createOpenAIReplyModel } from '../../models/openai-reply.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.ts';

const buffett: Twin = {
  id: 'buffett',
  name: 'Warren Buffett',
  systemPrompt: 'You are Warren Buffett. Answer plainly.',
  model: 'gpt-4o-mini',
  voiceId: 'onyx',
};

const request = (overrides: Partial<ReplyRequest> = {}): ReplyRequest => ({
  twin: buffett,
  history: [
    { seq: 2, role: 'user', content: 'What is a moat?' },
    { seq: 3, role: 'assistant', content: 'A durable advantage.' },
    { seq: 4, role: 'user', content: 'Name one.' },
  ],
  confirmedData: {},
  ...overrides,
});

async function failure(promise: Promise<unknown>): Promise<EffectError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(EffectError);
  return err as EffectError;
}

let fake: FakeOpenAI;
beforeAll(async () => { fake = await startFakeOpenAI(); });
afterAll(() => fake.close());
afterEach(() => {
  fake.requests.length = 0;
  fake.setMode('ok');
  fake.setLatency(0);
});

describe('OpenAI reply model over HTTP', () => {
  it('sends the twin model, its system prompt and the history in order, and returns the reply', async () => {
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    const reply = await model.reply(request());

    expect(fake.requests).toHaveLength(1);
    const sent = fake.requests[0]!;
    expect(sent.model).toBe('gpt-4o-mini');
    expect(sent.messages).toEqual([
      { role: 'system', content: 'You are Warren Buffett. Answer plainly.' },
      { role: 'user', content: 'What is a moat?' },
      { role: 'assistant', content: 'A durable advantage.' },
      { role: 'user', content: 'Name one.' },
    ]);
    expect(reply.text).toBe('echo: Name one.');
    expect(reply.model).toBe('gpt-4o-mini-fake'); // what the server reports, not what was asked
    expect(reply.tokens.completion).toBe(3);
    expect(reply.tokens.total).toBe(reply.tokens.prompt + reply.tokens.completion);
    expect(reply.tokens.prompt).toBeGreaterThan(0);
  });

  it('shows the model the confirmed data in the system prompt', async () => {
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    await model.reply(request({ confirmedData: { budget: 25_000, city: 'Omaha' } }));

    const system = fake.requests[0]!.messages[0]!;
    expect(system.role).toBe('system');
    expect(system.content).toContain('You are Warren Buffett.');
    expect(system.content).toContain('{"budget":25000,"city":"Omaha"}');
  });

  it('retries a 500 with backoff, then fails with model_http_500 (retryable)', async () => {
    fake.setMode('error500');
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url, maxRetries: 2 });
    const started = performance.now();
    const err = await failure(model.reply(request()));
    const elapsed = performance.now() - started;

    expect(err.code).toBe('model_http_500');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('500');
    expect(fake.requests).toHaveLength(3); // the first attempt and two retries
    // SDK backoff: ~0.5 s then ~1 s, each shortened by up to 25 % jitter.
    expect(elapsed).toBeGreaterThanOrEqual(1000);
  });

  it('gives up on a server that never answers with model_timeout after each attempt times out', async () => {
    fake.setMode('hang');
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url, timeoutMs: 150, maxRetries: 1 });
    const err = await failure(model.reply(request()));

    expect(err.code).toBe('model_timeout');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('150 ms');
    expect(fake.requests).toHaveLength(2); // a timed-out attempt is retried too
  });

  it('answers a slow server within the timeout', async () => {
    fake.setMode('slow');
    fake.setLatency(100);
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url, timeoutMs: 5_000, maxRetries: 0 });
    expect((await model.reply(request())).text).toBe('echo: Name one.');
  });

  it('reports an empty completion as model_empty', async () => {
    fake.setMode('empty');
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    const err = await failure(model.reply(request()));
    expect(err.code).toBe('model_empty');
    expect(err.retryable).toBe(false);
  });

  it('reports a server nobody listens on as model_unreachable', async () => {
    const closed = await startFakeOpenAI();
    const url = closed.url;
    await closed.close();
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: url, maxRetries: 0 });
    const err = await failure(model.reply(request()));
    expect(err.code).toBe('model_unreachable');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(url);
  });

  it('stops when the caller aborts, without waiting for the timeout', async () => {
    fake.setMode('hang');
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url, timeoutMs: 30_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const err = await failure(model.reply(request({ signal: controller.signal })));
    expect(err.code).toBe('model_aborted');
    expect(fake.requests).toHaveLength(1);
  });
});
