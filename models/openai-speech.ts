import type { Speech, SpeechModel } from '../actors/ports.ts';
import { contentTypeOf, estimateDurationSec } from './audio-format.ts';
import { createOpenAIModelClient, type ModelTransport } from './openai-client.ts';
import { toEffectError } from './openai-errors.ts';
import { clip } from './text.ts';

/** Audio formats OpenAI's speech endpoint can return. */
export type SpeechFormat = 'mp3' | 'opus' | 'aac' | 'flac' | 'wav' | 'pcm';

/** Options for createOpenAISpeechModel. */
export type OpenAISpeechOptions = {
  apiKey: string;
  baseURL?: string | undefined;
  /** Default gpt-4o-mini-tts. */
  model?: string | undefined;
  /** Default mp3. */
  format?: SpeechFormat | undefined;
  /** Per attempt; default 30 s. */
  timeoutMs?: number | undefined;
  /** Default 2. */
  maxRetries?: number | undefined;
  /** How requests travel (default `node-http` on Node); see ModelTransport. */
  transport?: ModelTransport | undefined;
};

/** The speech endpoint rejects input longer than this. */
export const OPENAI_SPEECH_MAX_CHARS = 4096;

/** A SpeechModel backed by OpenAI's /audio/speech (or a compatible server). */
export function createOpenAISpeechModel(options: OpenAISpeechOptions): SpeechModel {
  const model = options.model ?? 'gpt-4o-mini-tts';
  const format = options.format ?? 'mp3';
  const { client, failure } = createOpenAIModelClient('speech', options);

  return {
    name: 'openai',
    async synthesize({ text, voice, signal }): Promise<Speech> {
      let bytes: Uint8Array;
      try {
        const response = await client.audio.speech.create(
          { model, voice, input: clip(text, OPENAI_SPEECH_MAX_CHARS), response_format: format },
          { signal },
        );
        bytes = new Uint8Array(await response.arrayBuffer());
      } catch (err) {
        throw toEffectError(err, failure);
      }
      // The server does not say how long the audio is; estimate it from the bytes.
      return { bytes, format, contentType: contentTypeOf(format), durationSec: estimateDurationSec(bytes, format) };
    },
  };
}
