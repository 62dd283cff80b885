import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EffectError, type ReplyRequest } from '../../actors/ports.ts';
import { espeakAvailable } from '../../models/espeak-speech.ts';
import { selectReplyModel, selectSpeechModel } from '../../models/select.ts';
import { selectSpeechToText } from '../../models/select-stt.ts';
import { modelSettings } from '../../models/settings.ts';
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
    const { model, description } = selectReplyModel(modelSettings({ OPENAI_BASE_URL: fake.url }));
    expect(model.name).toBe('offline');
    expect(description).toContain('OPENAI_API_KEY');
    expect((await model.reply(request)).text).toMatch(/^\[offline\]/);
  });

  it('talks to OPENAI_BASE_URL with OPENAI_API_KEY', async () => {
    const { model, description } = selectReplyModel(modelSettings({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url }));
    expect(description).toContain(fake.url);
    expect((await model.reply(request)).text).toBe('echo: hello');
    expect(fake.requests).toHaveLength(1);
  });

  it('goes through the runtime\'s fetch with GEMELLO_MODEL_TRANSPORT=fetch, and through gemello\'s own connections by default', async () => {
    const real = globalThis.fetch;
    let calls = 0;
    globalThis.fetch = ((...args: Parameters<typeof fetch>) => (calls++, real(...args))) as typeof fetch;
    try {
      const viaFetch = selectReplyModel(modelSettings({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_TRANSPORT: 'fetch' })).model;
      expect((await viaFetch.reply(request)).text).toBe('echo: hello');
      expect(calls).toBe(1);
      const own = selectReplyModel(modelSettings({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url })).model;
      expect((await own.reply(request)).text).toBe('echo: hello');
      expect(calls).toBe(1);
    } finally {
      globalThis.fetch = real;
    }
  });

  it('refuses a GEMELLO_MODEL_TRANSPORT it does not know, naming the ones it takes', () => {
    expect(() => modelSettings({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_TRANSPORT: 'curl' })).toThrow(/^GEMELLO_MODEL_TRANSPORT: .*"gemello"\|"fetch"/);
  });

  it('defaults to api.openai.com', () => {
    expect(selectReplyModel(modelSettings({ OPENAI_API_KEY: 'sk-x' })).description).toContain('https://api.openai.com/v1');
  });
});

describe('selecting the speech model', () => {
  it('is off with GEMELLO_SPEECH=off, whatever else is set', () => {
    expect(selectSpeechModel(modelSettings({ GEMELLO_SPEECH: 'off', OPENAI_API_KEY: 'sk-x' }))).toBeNull();
  });

  it('uses OpenAI speech with OPENAI_API_KEY', async () => {
    const selected = selectSpeechModel(modelSettings({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, PATH: '' }));
    expect(selected?.model.name).toBe('openai');
    const speech = await selected!.model.synthesize({ text: 'hi', voice: 'onyx' });
    expect(speech.contentType).toBe('audio/mpeg');
  });

  it.skipIf(!espeakAvailable('espeak-ng', process.env.PATH ?? ''))('uses espeak-ng when it is on PATH', () => {
    expect(selectSpeechModel(modelSettings({ PATH: process.env.PATH }))?.model.name).toBe('espeak-ng');
  });

  it('without a key or espeak-ng, fails every call with a reason that says what to do', async () => {
    const selected = selectSpeechModel(modelSettings({ PATH: '/nonexistent' }));
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

describe('selecting speech to text', () => {
  it('transcribes through OPENAI_BASE_URL with a key, in the language asked, and is off without a key or with GEMELLO_STT=off', () => {
    const on = selectSpeechToText(modelSettings({ OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url, GEMELLO_STT_LANGUAGE: 'IT' }));
    expect(on?.description).toBe(`OpenAI transcription (gpt-4o-mini-transcribe) at ${fake.url}`);
    expect(modelSettings({ GEMELLO_STT_LANGUAGE: ' It ' }).stt.language).toBe('it');
    expect(selectSpeechToText(modelSettings({ OPENAI_BASE_URL: fake.url }))).toBeNull();
    expect(selectSpeechToText(modelSettings({ OPENAI_API_KEY: 'test', GEMELLO_STT: 'off' }))).toBeNull();
  });

  it('refuses a language that is not a two-letter code, which the transcription API would refuse at every utterance', () => {
    expect(() => modelSettings({ GEMELLO_STT_LANGUAGE: 'italian' })).toThrow(/^GEMELLO_STT_LANGUAGE: a two-letter ISO-639-1 language code/);
  });
});
