import type { ReplyModel, SpeechModel } from '../actors/ports.ts';
import { createEspeakSpeechModel, espeakAvailable } from './espeak-speech.ts';
import { createOfflineReplyModel } from './offline-reply.ts';
import { OPENAI_DEFAULT_BASE_URL, type ModelTransport } from './openai-client.ts';
import { createOpenAIReplyModel } from './openai-reply.ts';
import { createOpenAISpeechModel } from './openai-speech.ts';
import { createUnavailableSpeechModel } from './unavailable-speech.ts';

type Env = Record<string, string | undefined>;

/** A chosen backend and the line `main` logs about it at start. */
export type Selected<M> = { model: M; description: string };

/**
 * How the SDK's requests travel: through the runtime's own fetch when the environment asks it
 * for a proxy, which gemello's leaner transport does not honour: on Node NODE_USE_ENV_PROXY
 * (or --use-env-proxy in NODE_OPTIONS) makes Node's fetch read HTTP(S)_PROXY; Deno's fetch
 * always does, so on Deno an HTTP_PROXY keeps it (its HTTPS goes through Deno's fetch anyway).
 * Else the default (`node-http`). GEMELLO_MODEL_TRANSPORT=fetch asks for the runtime's fetch outright.
 */
export function modelTransport(env: Env): ModelTransport | undefined {
  // GEMELLO_MODEL_TRANSPORT=fetch: the runtime's fetch for every model call, whatever else is set.
  const asked = env.GEMELLO_MODEL_TRANSPORT?.trim().toLowerCase();
  if (asked === 'fetch') return 'fetch';
  if (asked && asked !== 'gemello') {
    throw Object.assign(new Error(`GEMELLO_MODEL_TRANSPORT is "${env.GEMELLO_MODEL_TRANSPORT}": it takes gemello (the default: keep-alive connections of gemello's own) or fetch (the runtime's fetch)`), { code: 'bad_config' });
  }
  const proxied = 'Deno' in globalThis
    ? Boolean(env.HTTP_PROXY?.trim() || env.http_proxy?.trim() || env.ALL_PROXY?.trim() || env.all_proxy?.trim())
    : /^(1|true)$/i.test(env.NODE_USE_ENV_PROXY?.trim() ?? '') || /--use-env-proxy\b/.test(env.NODE_OPTIONS ?? '');
  return proxied ? 'fetch' : undefined;
}

/** The reply backend: OpenAI (or OPENAI_BASE_URL) when OPENAI_API_KEY is set, else offline. */
export function selectReplyModel(env: Env, warn?: (message: string) => void): Selected<ReplyModel> {
  const apiKey = env.OPENAI_API_KEY?.trim();
  if (!apiKey) {
    // GEMELLO_OFFLINE_WORD_MS: the pause between streamed words (default 30 ms, so the chat page shows streaming; tests set 0).
    const wordDelayMs = env.GEMELLO_OFFLINE_WORD_MS ? Number(env.GEMELLO_OFFLINE_WORD_MS) : 30;
    return { model: createOfflineReplyModel({ wordDelayMs }), description: 'offline (replies say so; set OPENAI_API_KEY for a real model)' };
  }
  const baseURL = env.OPENAI_BASE_URL?.trim() || undefined;
  return {
    model: createOpenAIReplyModel({
      apiKey,
      baseURL,
      timeoutMs: env.GEMELLO_MODEL_TIMEOUT_MS ? Number(env.GEMELLO_MODEL_TIMEOUT_MS) : undefined,
      maxRetries: env.GEMELLO_MODEL_RETRIES ? Number(env.GEMELLO_MODEL_RETRIES) : undefined,
      transport: modelTransport(env),
      warn,
    }),
    description: `OpenAI chat completions at ${baseURL ?? OPENAI_DEFAULT_BASE_URL}`,
  };
}

/**
 * The speech backend: OpenAI with OPENAI_API_KEY, else espeak-ng when it is on PATH,
 * else one that fails every call with a reason; null when GEMELLO_SPEECH=off.
 * GEMELLO_SPEECH=espeak: espeak-ng even with a key (a real model, local speech).
 */
export function selectSpeechModel(env: Env): Selected<SpeechModel> | null {
  const choice = env.GEMELLO_SPEECH?.trim().toLowerCase();
  if (choice === 'off') return null;
  const apiKey = choice === 'espeak' ? undefined : env.OPENAI_API_KEY?.trim();
  if (apiKey) {
    const baseURL = env.OPENAI_BASE_URL?.trim() || undefined;
    return {
      model: createOpenAISpeechModel({ apiKey, baseURL, transport: modelTransport(env) }),
      description: `OpenAI speech (gpt-4o-mini-tts, mp3) at ${baseURL ?? OPENAI_DEFAULT_BASE_URL}`,
    };
  }
  if (espeakAvailable('espeak-ng', env.PATH ?? '')) {
    return { model: createEspeakSpeechModel(), description: 'espeak-ng (local, WAV)' };
  }
  return { model: createUnavailableSpeechModel(), description: 'none (AudioFailed: set OPENAI_API_KEY or install espeak-ng)' };
}
