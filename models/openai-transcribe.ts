import { toFile } from 'openai';
import type { SpeechToText } from '../actors/ports.ts';
import { createOpenAIModelClient } from './openai-client.ts';
import type { OpenAIModelOptions } from './openai-client.ts';
import { toEffectError } from './openai-errors.ts';

/** The transcription model used when GEMELLO_STT_MODEL is unset. */
export const DEFAULT_STT_MODEL = 'gpt-4o-mini-transcribe';

export type OpenAITranscribeOptions = OpenAIModelOptions & {
  /** GEMELLO_STT_MODEL; default gpt-4o-mini-transcribe (whisper-1 and local servers' names work too). */
  model?: string | undefined;
  /** GEMELLO_STT_LANGUAGE: an ISO-639-1 hint (e.g. `it`); absent, the model detects it. */
  language?: string | undefined;
};

/**
 * Speech to text through the SDK's `audio.transcriptions.create` (multipart upload to
 * `<baseURL>/audio/transcriptions`), so any OpenAI-compatible server works through
 * OPENAI_BASE_URL. Nothing of the audio is kept here: it is uploaded and dropped.
 */
export function createOpenAITranscriber(options: OpenAITranscribeOptions): SpeechToText {
  const model = options.model || DEFAULT_STT_MODEL;
  const { client, failure } = createOpenAIModelClient('stt', options);
  return {
    name: model,
    async transcribe({ bytes, format, contentType, language, signal }) {
      try {
        const file = await toFile(bytes, `utterance.${format}`, { type: contentType });
        const lang = language ?? options.language;
        const result = await client.audio.transcriptions.create({ file, model, response_format: 'json', ...(lang ? { language: lang } : {}) }, { signal });
        const usage = result.usage;
        return { text: (result.text ?? '').trim(), durationSec: usage && usage.type === 'duration' ? usage.seconds : null };
      } catch (err) {
        throw toEffectError(err, failure);
      }
    },
  };
}
