import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EffectError, type ReplyRequest, type Twin, type TwinField } from '../../actors/ports.ts';
import { readProposals } from '../../models/proposals.ts';
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
    // Aborted once the request has reached the server (a fixed 50 ms could come before it on a loaded machine).
    void (async () => {
      for (let i = 0; i < 500 && fake.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      controller.abort();
    })();
    const err = await failure(model.reply(request({ signal: controller.signal })));
    expect(err.code).toBe('model_aborted');
    expect(fake.requests).toHaveLength(1);
  });
});

describe('OpenAI reply model with structured output (a twin that collects fields)', () => {
  const collector: Twin = {
    ...buffett,
    fields: [
      { name: 'name', type: 'string', description: "the user's name" },
      { name: 'email', type: 'email' },
      { name: 'horizonYears', type: 'number' },
    ],
  };
  const said = (content: string): ReplyRequest => request({ twin: collector, history: [{ seq: 2, role: 'user', content }] });
  afterEach(() => fake.setStructuredOutput(true));

  it('asks for {reply, proposed} by JSON schema and returns the reply text and the values the user stated', async () => {
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    const reply = await model.reply(said('I am name="Ann Lee", horizonYears=20'));

    const format = fake.requests[0]!.response_format as { type: string; json_schema: { strict: boolean; schema: { properties: { proposed: { required: string[]; properties: Record<string, { type: string[] }> } } } } };
    expect(format.type).toBe('json_schema');
    expect(format.json_schema.strict).toBe(true);
    expect(format.json_schema.schema.properties.proposed.required).toEqual(['name', 'email', 'horizonYears']);
    expect(format.json_schema.schema.properties.proposed.properties.horizonYears!.type).toEqual(['number', 'null']);
    expect(reply.text).toBe('echo: I am name="Ann Lee", horizonYears=20');
    expect(reply.proposed).toEqual({ name: 'Ann Lee', horizonYears: 20 });
  });

  it('drops a proposed value that does not fit its field', async () => {
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    const reply = await model.reply(said('email=not-an-address name=Ann'));
    expect(reply.proposed).toEqual({ name: 'Ann' });
  });

  it('proposes nothing when the user stated nothing', async () => {
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    const reply = await model.reply(said('hello'));
    expect(reply.text).toBe('echo: hello');
    expect(reply.proposed).toBeUndefined();
  });

  it('asks a twin without fields in plain text', async () => {
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    await model.reply(request());
    expect(fake.requests[0]!.response_format).toBeUndefined();
  });

  it('falls back to plain text when the model refuses the schema (HTTP 400), and does not ask for it again', async () => {
    fake.setStructuredOutput(false);
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
    const first = await model.reply(said('name=Ann'));
    const second = await model.reply(said('name=Bob'));

    expect(first.text).toBe('echo: name=Ann');
    expect(first.proposed).toBeUndefined();
    expect(second.text).toBe('echo: name=Bob');
    expect(fake.requests.map((r) => r.response_format !== undefined)).toEqual([true, false, false]);
  });

  it('goes plain for that request only when the server refuses the schema itself, and says so', async () => {
    fake.setStructuredOutput('bad-schema');
    const warnings: string[] = [];
    const model = createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url, warn: (m) => warnings.push(m) });
    expect((await model.reply(said('name=Ann'))).text).toBe('echo: name=Ann');
    fake.setStructuredOutput(true);
    expect((await model.reply(said('name=Bob'))).proposed).toEqual({ name: 'Bob' });
    expect(fake.requests.map((r) => r.response_format !== undefined)).toEqual([true, false, true]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Invalid schema.*plain text for twin buffett/);
  });
});

describe('reading a structured answer', () => {
  const fields: TwinField[] = [{ name: 'name', type: 'string' }, { name: 'age', type: 'number' }];

  it('reads the reply and the values that fit their fields', () => {
    expect(readProposals('{"reply":"Hello Ann","proposed":{"name":"Ann","age":"forty"}}', fields)).toEqual({ text: 'Hello Ann', proposed: { name: 'Ann' } });
  });

  it('reads JSON wrapped in a code fence', () => {
    expect(readProposals('```json\n{"reply":"Hi","proposed":{"name":null,"age":40}}\n```', fields)).toEqual({ text: 'Hi', proposed: { age: 40 } });
  });

  it('shows the part of a reply that was cut off, never the JSON around it', () => {
    expect(readProposals('{"reply":"Well, the thing about moats is \\"wide', fields)).toEqual({ text: 'Well, the thing about moats is "wide', proposed: {} });
    expect(readProposals('{"reply":"caf\\u00', fields)).toEqual({ text: 'caf', proposed: {} });
  });

  it('takes an answer without JSON as plain text', () => {
    expect(readProposals('Plain words.', fields)).toEqual({ text: 'Plain words.', proposed: {} });
  });

  it('fails with model_bad_output on JSON that holds no reply', () => {
    expect(() => readProposals('{"answer":"x"}', fields)).toThrow(expect.objectContaining({ code: 'model_bad_output' }));
    expect(() => readProposals('{"proposed":{"na', fields)).toThrow(expect.objectContaining({ code: 'model_bad_output' }));
  });
});

describe('OpenAI reply model, streaming (server-sent events over real HTTP)', () => {
  const collector = () => {
    const pieces: Array<{ text: string; at: number }> = [];
    return { pieces, onText: (text: string) => void pieces.push({ text, at: performance.now() }) };
  };
  afterEach(() => {
    fake.setTokenDelay(0);
    fake.setReplyText(null);
  });

  it('hands over the text as it comes: the pieces add up to the reply, and the first comes long before it', async () => {
    fake.setTokenDelay(15);
    const model = createOpenAIReplyModel({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 });
    const { pieces, onText } = collector();
    const t0 = performance.now();
    const reply = await model.reply(request({ history: [{ seq: 2, role: 'user', content: 'one two three four five six seven eight' }], onText }));
    const done = performance.now();
    expect(fake.requests[0]!.stream).toBe(true);
    expect(reply.text).toBe('echo: one two three four five six seven eight');
    expect(pieces.map((p) => p.text).join('')).toBe(reply.text);
    expect(pieces.length).toBeGreaterThan(5);
    // Nine pieces 15 ms apart: the first is out before half of the reply was written.
    expect(pieces[0]!.at - t0).toBeLessThan((done - t0) / 2);
    expect(reply.tokens.total).toBeGreaterThan(0);
  });

  it('streams only the reply string of a structured answer, read as the JSON comes in', async () => {
    fake.setTokenDelay(1);
    const model = createOpenAIReplyModel({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 });
    const { pieces, onText } = collector();
    const twin = { ...buffett, fields: [{ name: 'email', type: 'email' as const }] };
    const reply = await model.reply(request({ twin, history: [{ seq: 2, role: 'user', content: 'write to email=ann@example.com "quoted" \\ done' }], onText }));
    expect(reply.proposed).toEqual({ email: 'ann@example.com' });
    expect(pieces.map((p) => p.text).join('')).toBe(reply.text);
    expect(pieces.map((p) => p.text).join('')).not.toMatch(/proposed|\{/);
  });

  it('aborts the HTTP request when the caller stops it mid-stream', async () => {
    fake.setTokenDelay(50);
    fake.setReplyText('a long answer that takes a while to write out word by word');
    const model = createOpenAIReplyModel({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 });
    const abort = new AbortController();
    const before = fake.aborted;
    const { pieces, onText } = collector();
    const replied = model.reply(request({ signal: abort.signal, onText: (t) => (onText(t), pieces.length === 2 && abort.abort()) }));
    await expect(replied).rejects.toThrow();
    await expect.poll(() => fake.aborted).toBe(before + 1);
    expect(pieces.map((p) => p.text).join('')).toBe('a long');
  });
});
