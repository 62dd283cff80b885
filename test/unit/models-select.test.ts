import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EffectError, type ReplyRequest } from '../../actors/ports.ts';
import { espeakAvailable } from '../../models/espeak-speech.ts';
import { selectReplyModel, selectSpeechModel } from '../../models/select.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.ts';

const request: ReplyRequest = {
  twin: { id: 'buffett', name: 'Warren Buffett', systemPrompt: 'You are Warren Buffett.', model: 'gpt-4o-mini', voiceId: 'onyx' },
  history: [{ seq: 2, role: 'user', content: 'hello' }],
  confirmedData: {},
};

let fake: FakeOpenAI;
beforeAll(async () => { fake = await startFakeOpenAI(); });
afterAll(() => fake.close());

describe('selecting the reply model', () => {
  it('is offline without OPENAI_API_KEY', async () => {
    const { model, description } = selectReplyModel({ OPENAI_BASE_URL: fake.url });
    expect(model.name).toBe('offline');
    expect(description).toContain('OPENAI_API_KEY');
    expect((await model.reply(request)).text).toMatch(/^\[offline\]/);
  });

  it('talks to OPENAI_BASE_URL with OPENAI_API_KEY', async () => {
    const { model, description } = selectReplyModel({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url });
    expect(description).toContain(fake.url);
    expect((await model.reply(request)).text).toBe('echo: hello');
    expect(fake.requests).toHaveLength(1);
  });

  it('goes through the runtime\'s fetch with GEMELLO_MODEL_TRANSPORT=fetch, and through gemello\'s own connections by default', async () => {
    const real = globalThis.fetch;
    let calls = 0;
    globalThis.fetch = ((...args: Parameters<typeof fetch>) => (calls++, real(...args))) as typeof fetch;
    try {
      const viaFetch = selectReplyModel({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_TRANSPORT: 'fetch' }).model;
      expect((await viaFetch.reply(request)).text).toBe('echo: hello');
      expect(calls).toBe(1);
      const own = selectReplyModel({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url }).model;
      expect((await own.reply(request)).text).toBe('echo: hello');
      expect(calls).toBe(1);
    } finally {
      globalThis.fetch = real;
    }
  });

  it('refuses a GEMELLO_MODEL_TRANSPORT it does not know, naming the ones it takes', () => {
    expect(() => selectReplyModel({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_TRANSPORT: 'curl' })).toThrow(/takes gemello .* or fetch/);
  });

  it('defaults to api.openai.com', () => {
    expect(selectReplyModel({ OPENAI_API_KEY: 'sk-x' }).description).toContain('https://api.openai.com/v1');
  });
});

describe('selecting the speech model', () => {
  it('is off with GEMELLO_SPEECH=off, whatever else is set', () => {
    expect(selectSpeechModel({ GEMELLO_SPEECH: 'off', OPENAI_API_KEY: 'sk-x' })).toBeNull();
  });

  it('uses OpenAI speech with OPENAI_API_KEY', async () => {
    const selected = selectSpeechModel({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, PATH: '' });
    expect(selected?.model.name).toBe('openai');
    const speech = await selected!.model.synthesize({ text: 'hi', voice: 'onyx' });
    expect(speech.contentType).toBe('audio/mpeg');
  });

  it.skipIf(!espeakAvailable('espeak-ng', process.env.PATH ?? ''))('uses espeak-ng when it is on PATH', () => {
    expect(selectSpeechModel({ PATH: process.env.PATH })?.model.name).toBe('espeak-ng');
  });

  it('without a key or espeak-ng, fails every call with a reason that says what to do', async () => {
    const selected = selectSpeechModel({ PATH: '/nonexistent' });
    expect(selected?.model.name).toBe('unavailable');
    const err = await selected!.model.synthesize({ text: 'hi', voice: 'onyx' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EffectError);
    expect(err).toMatchObject({
      code: 'speech_unavailable',
      retryable: false,
      message: 'no speech backend: set OPENAI_API_KEY or install espeak-ng (apt-get install espeak-ng)',
    });
  });
});
