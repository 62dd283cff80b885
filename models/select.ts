import type { ReplyModel, SpeechModel } from '../actors/ports.ts';
import { createEspeakSpeechModel, espeakAvailable } from './espeak-speech.ts';
import { createOfflineReplyModel } from './offline-reply.ts';
import { OPENAI_DEFAULT_BASE_URL } from './openai-client.ts';
import { createOpenAIReplyModel } from './openai-reply.ts';
import { createOpenAISpeechModel } from './openai-speech.ts';
import type { ModelSettings } from './settings.ts';
import { createUnavailableSpeechModel } from './unavailable-speech.ts';

/** A chosen backend and the line `main` logs about it at start. */
export type Selected<M> = { model: M; description: string };

/** Where the model calls go, as the start log and doctor say it. */
export const modelEndpoint = (s: ModelSettings): string => s.baseURL ?? OPENAI_DEFAULT_BASE_URL;

/** The reply backend: OpenAI (or OPENAI_BASE_URL) when OPENAI_API_KEY is set, else offline. */
export function selectReplyModel(s: ModelSettings, warn?: (message: string) => void): Selected<ReplyModel> {
  if (!s.apiKey) {
    return { model: createOfflineReplyModel({ wordDelayMs: s.reply.offlineWordMs }), description: 'offline (replies say so; set OPENAI_API_KEY for a real model)' };
  }
  return {
    model: createOpenAIReplyModel({
      apiKey: s.apiKey,
      baseURL: s.baseURL ?? undefined,
      timeoutMs: s.reply.timeoutMs,
      maxRetries: s.reply.maxRetries,
      transport: s.transport,
      warn,
    }),
    description: `OpenAI chat completions at ${modelEndpoint(s)}`,
  };
}

/** Which speech backend the settings give (see selectSpeechModel); `none`: every call fails with a reason. */
export function speechChoice(s: ModelSettings): 'off' | 'openai' | 'espeak' | 'none' {
  if (s.speech === 'off') return 'off';
  if (s.apiKey && s.speech !== 'espeak') return 'openai';
  return espeakAvailable('espeak-ng', s.path) ? 'espeak' : 'none';
}

/**
 * The speech backend: OpenAI with OPENAI_API_KEY, else espeak-ng when it is on PATH,
 * else one that fails every call with a reason; null when GEMELLO_SPEECH=off.
 * GEMELLO_SPEECH=espeak: espeak-ng even with a key (a real model, local speech).
 */
export function selectSpeechModel(s: ModelSettings): Selected<SpeechModel> | null {
  switch (speechChoice(s)) {
    case 'off':
      return null;
    case 'openai':
      return {
        model: createOpenAISpeechModel({ apiKey: s.apiKey!, baseURL: s.baseURL ?? undefined, transport: s.transport }),
        description: `OpenAI speech (gpt-4o-mini-tts, mp3) at ${modelEndpoint(s)}`,
      };
    case 'espeak':
      return { model: createEspeakSpeechModel(), description: 'espeak-ng (local, WAV)' };
    case 'none':
      return { model: createUnavailableSpeechModel(), description: 'none (AudioFailed: set OPENAI_API_KEY or install espeak-ng)' };
  }
}
