import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EffectError } from '../../actors/ports.ts';
import { createOpenAISpeechModel } from '../../models/openai-speech.ts';
import { parseWav } from '../../models/wav.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.ts';

let fake: FakeOpenAI;
beforeAll(async () => { fake = await startFakeOpenAI(); });
afterAll(() => fake.close());
afterEach(() => {
  fake.speechRequests.length = 0;
  fake.setMode('ok');
});

describe('OpenAI speech model over HTTP', () => {
  it('asks for the twin voice and returns mp3 with a duration estimated from its bitrate', async () => {
    const model = createOpenAISpeechModel({ apiKey: 'test', baseURL: fake.url });
    const speech = await model.synthesize({ text: 'Be fearful when others are greedy.', voice: 'onyx' });

    expect(fake.speechRequests).toEqual([
      expect.objectContaining({ model: 'gpt-4o-mini-tts', voice: 'onyx', input: 'Be fearful when others are greedy.', response_format: 'mp3' }),
    ]);
    expect(speech.format).toBe('mp3');
    expect(speech.contentType).toBe('audio/mpeg');
    expect(speech.bytes.byteLength).toBe(5_004);
    expect(speech.durationSec).toBeCloseTo((5_004 * 8) / 128_000, 3);
  });

  it('returns WAV when asked, timed by its header', async () => {
    const model = createOpenAISpeechModel({ apiKey: 'test', baseURL: fake.url, format: 'wav', model: 'tts-1' });
    const speech = await model.synthesize({ text: 'hi', voice: 'alloy' });
    expect(fake.speechRequests[0]).toMatchObject({ model: 'tts-1', response_format: 'wav' });
    expect(speech.contentType).toBe('audio/wav');
    expect(speech.durationSec).toBe(0.25);
    expect(parseWav(speech.bytes).sampleRate).toBe(24_000);
  });

  it('cuts input to the 4096 characters the endpoint accepts', async () => {
    const model = createOpenAISpeechModel({ apiKey: 'test', baseURL: fake.url });
    await model.synthesize({ text: 'x'.repeat(10_000), voice: 'alloy' });
    expect(fake.speechRequests[0]!.input.length).toBe(4096);
  });

  it('fails with speech_http_500 after retrying', async () => {
    fake.setMode('error500');
    const model = createOpenAISpeechModel({ apiKey: 'test', baseURL: fake.url, maxRetries: 1 });
    const err = await model.synthesize({ text: 'hi', voice: 'alloy' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EffectError);
    expect((err as EffectError).code).toBe('speech_http_500');
    expect((err as EffectError).retryable).toBe(true);
    expect(fake.speechRequests).toHaveLength(2);
  });
});
