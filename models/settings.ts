import { z } from 'zod';
import type { ModelTransport } from './openai-client.ts';
import { DEFAULT_STT_MODEL } from './openai-transcribe.ts';
import { onOff, oneOf, optionalInt } from '../runtime/env-values.ts';

type Env = Record<string, string | undefined>;

/**
 * The model, speech and speech-to-text settings, each read and checked here once: the start
 * (runtime/config.ts) refuses a bad value with the other settings' problems, and the backends
 * are chosen from what this gives (models/select.ts, select-stt.ts), never from the raw
 * environment again.
 */
export type ModelSettings = {
  /** OPENAI_API_KEY: a real model (and OpenAI speech and transcription) with it, offline without. */
  apiKey: string | null;
  /** OPENAI_BASE_URL: any OpenAI-compatible server; null: api.openai.com. */
  baseURL: string | null;
  /** How the SDK's requests travel (see modelTransport); undefined: gemello's own. */
  transport: ModelTransport | undefined;
  reply: { timeoutMs: number | undefined; maxRetries: number | undefined; offlineWordMs: number };
  /** GEMELLO_SPEECH: `on` (OpenAI with a key, else espeak-ng), `espeak` (espeak-ng even with a key) or `off`. */
  speech: 'on' | 'off' | 'espeak';
  /** GEMELLO_SPEECH_SENTENCES: a reply is spoken sentence by sentence as it streams (off: whole, after it). */
  speakSentences: boolean;
  stt: { on: boolean; model: string; language: string | undefined; timeoutMs: number; maxRetries: number };
  /** Where espeak-ng is looked for. */
  path: string;
};


/** The variables ModelSettings reads that take only some values, as the start checks them. */
export const MODEL_ENV = {
  GEMELLO_MODEL_TIMEOUT_MS: optionalInt(1),
  GEMELLO_MODEL_RETRIES: optionalInt(0),
  GEMELLO_STT_TIMEOUT_MS: optionalInt(1),
  GEMELLO_STT_RETRIES: optionalInt(0),
  GEMELLO_OFFLINE_WORD_MS: optionalInt(0),
  GEMELLO_MODEL_TRANSPORT: oneOf(['gemello', 'fetch']).optional(),
  GEMELLO_SPEECH: oneOf(['on', 'off', 'espeak']).optional(),
  GEMELLO_STT: onOff.optional(),
  GEMELLO_SPEECH_SENTENCES: onOff.optional(),
  // The hint the transcription API takes: a two-letter ISO-639-1 code.
  GEMELLO_STT_LANGUAGE: z.string().trim().toLowerCase().regex(/^[a-z]{2}$/, 'a two-letter ISO-639-1 language code, such as it or en').optional(),
};
const ModelEnv = z.object(MODEL_ENV);

/**
 * How the SDK's requests travel: through the runtime's own fetch when the environment asks it
 * for a proxy, which gemello's leaner transport does not honour: on Node NODE_USE_ENV_PROXY
 * (or --use-env-proxy in NODE_OPTIONS) makes Node's fetch read HTTP(S)_PROXY; Deno's fetch
 * always does, so on Deno an HTTP_PROXY keeps it (its HTTPS goes through Deno's fetch anyway).
 * GEMELLO_MODEL_TRANSPORT=fetch asks for the runtime's fetch outright.
 */
function modelTransport(asked: 'gemello' | 'fetch' | undefined, env: Env): ModelTransport | undefined {
  if (asked === 'fetch') return 'fetch';
  const proxied = 'Deno' in globalThis
    ? Boolean(env.HTTP_PROXY?.trim() || env.http_proxy?.trim() || env.ALL_PROXY?.trim() || env.all_proxy?.trim())
    : /^(1|true)$/i.test(env.NODE_USE_ENV_PROXY?.trim() ?? '') || /--use-env-proxy\b/.test(env.NODE_OPTIONS ?? '');
  return proxied ? 'fetch' : undefined;
}

/** The settings from values checked by MODEL_ENV (`checked`) and the free-text variables of the environment. */
export function modelSettingsFrom(checked: z.infer<typeof ModelEnv>, env: Env): ModelSettings {
  const text = (value: string | undefined) => value?.trim() || null;
  return {
    apiKey: text(env.OPENAI_API_KEY),
    baseURL: text(env.OPENAI_BASE_URL),
    transport: modelTransport(checked.GEMELLO_MODEL_TRANSPORT, env),
    // GEMELLO_OFFLINE_WORD_MS: the pause between streamed words (default 30 ms, so the chat page shows streaming; tests set 0).
    reply: { timeoutMs: checked.GEMELLO_MODEL_TIMEOUT_MS, maxRetries: checked.GEMELLO_MODEL_RETRIES, offlineWordMs: checked.GEMELLO_OFFLINE_WORD_MS ?? 30 },
    speech: checked.GEMELLO_SPEECH ?? 'on',
    speakSentences: checked.GEMELLO_SPEECH_SENTENCES !== 'off',
    stt: {
      on: checked.GEMELLO_STT !== 'off',
      model: text(env.GEMELLO_STT_MODEL) ?? DEFAULT_STT_MODEL,
      language: checked.GEMELLO_STT_LANGUAGE,
      // An utterance waits for its transcript: fail sooner than a reply would.
      timeoutMs: checked.GEMELLO_STT_TIMEOUT_MS ?? 15_000,
      maxRetries: checked.GEMELLO_STT_RETRIES ?? 1,
    },
    path: env.PATH ?? '',
  };
}

/** The settings of an environment on their own (tests, tools); a bad value throws, naming each variable. */
export function modelSettings(env: Env): ModelSettings {
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = ModelEnv.safeParse(clean);
  if (!parsed.success) {
    throw Object.assign(new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')), { code: 'bad_config' });
  }
  return modelSettingsFrom(parsed.data, env);
}
