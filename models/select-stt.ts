import type { SpeechToText } from '../actors/ports.ts';
import { OPENAI_DEFAULT_BASE_URL } from './openai-client.ts';
import { createOpenAITranscriber, DEFAULT_STT_MODEL } from './openai-transcribe.ts';
import { modelTransport, type Selected } from './select.ts';

type Env = Record<string, string | undefined>;

/** What a client is told when speech to text is off, and the start log says. */
export const STT_HOW_TO = 'speech to text is not configured: set OPENAI_API_KEY (with OPENAI_BASE_URL for a local OpenAI-compatible server) and, optionally, GEMELLO_STT_MODEL';

/**
 * Speech to text: OpenAI transcription (or OPENAI_BASE_URL's) when OPENAI_API_KEY is set,
 * with GEMELLO_STT_MODEL (default gpt-4o-mini-transcribe); null without a key or with GEMELLO_STT=off.
 */
export function selectSpeechToText(env: Env): Selected<SpeechToText> | null {
  const apiKey = env.OPENAI_API_KEY?.trim();
  if (!apiKey || env.GEMELLO_STT?.trim().toLowerCase() === 'off') return null;
  const baseURL = env.OPENAI_BASE_URL?.trim() || undefined;
  const model = env.GEMELLO_STT_MODEL?.trim() || DEFAULT_STT_MODEL;
  return {
    model: createOpenAITranscriber({
      apiKey,
      baseURL,
      model,
      language: env.GEMELLO_STT_LANGUAGE?.trim() || undefined,
      // An utterance waits for its transcript: fail sooner than a reply would.
      timeoutMs: env.GEMELLO_STT_TIMEOUT_MS ? Number(env.GEMELLO_STT_TIMEOUT_MS) : 15_000,
      maxRetries: env.GEMELLO_STT_RETRIES ? Number(env.GEMELLO_STT_RETRIES) : 1,
      transport: modelTransport(env),
    }),
    description: `OpenAI transcription (${model}) at ${baseURL ?? OPENAI_DEFAULT_BASE_URL}`,
  };
}
