import type { SpeechToText } from '../actors/ports.ts';
import { createOpenAITranscriber } from './openai-transcribe.ts';
import { modelEndpoint, type Selected } from './select.ts';
import type { ModelSettings } from './settings.ts';

/** What a client is told when speech to text is off, and the start log says. */
export const STT_HOW_TO = 'speech to text is not configured: set OPENAI_API_KEY (with OPENAI_BASE_URL for a local OpenAI-compatible server) and, optionally, GEMELLO_STT_MODEL';

/**
 * Speech to text: OpenAI transcription (or OPENAI_BASE_URL's) when OPENAI_API_KEY is set,
 * with GEMELLO_STT_MODEL (default gpt-4o-mini-transcribe); null without a key or with GEMELLO_STT=off.
 */
export function selectSpeechToText(s: ModelSettings): Selected<SpeechToText> | null {
  if (!s.apiKey || !s.stt.on) return null;
  return {
    model: createOpenAITranscriber({
      apiKey: s.apiKey,
      baseURL: s.baseURL ?? undefined,
      model: s.stt.model,
      language: s.stt.language,
      timeoutMs: s.stt.timeoutMs,
      maxRetries: s.stt.maxRetries,
      transport: s.transport,
    }),
    description: `OpenAI transcription (${s.stt.model}) at ${modelEndpoint(s)}`,
  };
}
