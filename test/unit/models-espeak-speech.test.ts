import { describe, expect, it } from 'vitest';
import { EffectError } from '../../actors/ports.ts';
import { createEspeakSpeechModel, espeakAvailable } from '../../models/espeak-speech.ts';
import { espeakVoice } from '../../models/espeak-voices.ts';
import { parseWav } from '../../models/wav.ts';

const installed = espeakAvailable('espeak-ng', process.env.PATH ?? '');

describe('espeak-ng voices', () => {
  it('maps OpenAI voice ids to espeak voices and keeps espeak ids', () => {
    expect(espeakVoice('alloy')).toBe('en-us');
    expect(espeakVoice('onyx')).toBe('en-us+m7');
    expect(espeakVoice('Nova')).toBe('en-us+f3');
    expect(espeakVoice('de')).toBe('de');
    expect(espeakVoice('en-gb+f3')).toBe('en-gb+f3');
    expect(espeakVoice('voice_1234; rm -rf /')).toBe('en-us');
  });

  it('finds binaries on PATH only', () => {
    expect(espeakAvailable('no-such-binary-gemello', process.env.PATH ?? '')).toBe(false);
    expect(espeakAvailable('sh', '')).toBe(false);
    expect(espeakAvailable('sh', '/bin')).toBe(true);
  });

  it('fails with speech_failed and a hint when the binary is missing', async () => {
    const model = createEspeakSpeechModel({ binary: 'no-such-binary-gemello' });
    const err = await model.synthesize({ text: 'hello', voice: 'alloy' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EffectError);
    expect((err as EffectError).code).toBe('speech_failed');
    expect((err as EffectError).retryable).toBe(false);
    expect((err as EffectError).message).toContain('apt-get install espeak-ng');
  });
});

describe.skipIf(!installed)('espeak-ng speech (espeak-ng installed)', () => {
  it('speaks a reply as WAV audio that lasts', async () => {
    const speech = await createEspeakSpeechModel().synthesize({ text: 'Price is what you pay. Value is what you get.', voice: 'onyx' });
    expect(speech.format).toBe('wav');
    expect(speech.contentType).toBe('audio/wav');
    expect(speech.durationSec).toBeGreaterThan(1);
    expect(speech.durationSec).toBeLessThan(10);
    expect(parseWav(speech.bytes).durationSec).toBe(speech.durationSec);
  });

  it('reads text that looks like options as text', async () => {
    const speech = await createEspeakSpeechModel().synthesize({ text: '--version -w /tmp/x.wav', voice: 'alloy' });
    expect(speech.durationSec).toBeGreaterThan(0.5);
  });

  it('bounds how much text it speaks', async () => {
    const long = 'Rule number one: never lose money. '.repeat(100);
    const short = await createEspeakSpeechModel({ maxChars: 40 }).synthesize({ text: long, voice: 'alloy' });
    expect(short.durationSec).toBeLessThan(6);
  });

  it('reports an unknown espeak voice as speech_failed with espeak-ng’s reason', async () => {
    const err = await createEspeakSpeechModel().synthesize({ text: 'hi', voice: 'zz' }).catch((e: unknown) => e);
    expect((err as EffectError).code).toBe('speech_failed');
    expect((err as EffectError).message).toMatch(/zz/);
  });
});
