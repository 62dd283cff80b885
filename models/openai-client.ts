import OpenAI from 'openai';
import { createHttpFetch } from './http-fetch.ts';
import type { FailureContext } from './openai-errors.ts';

/** Options for createOpenAIClient. */
export type OpenAIClientOptions = {
  apiKey: string;
  /** Any OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1; default api.openai.com. */
  baseURL?: string | undefined;
  /** Per attempt, in ms. */
  timeoutMs: number;
  maxRetries: number;
  /** How requests travel; see ModelTransport. */
  transport?: ModelTransport | undefined;
};

/**
 * `node-http` (the default): the SDK's requests go through createHttpFetch, on keep-alive
 * connections (plain HTTP on http1.ts; HTTPS on `node:https` on Node, Deno's own fetch on
 * Deno), the SDK's code unchanged: a non-streamed call to a local server costs ≈ 210–270 µs
 * of CPU here against ≈ 440–500 through Node's fetch (on Deno ≈ 170–210 against ≈ 250–270).
 * `fetch`: the runtime's own fetch for everything, which `main` picks on Node when the
 * environment asks Node's fetch for a proxy (NODE_USE_ENV_PROXY).
 */
export type ModelTransport = 'node-http' | 'fetch';

const onDeno = 'Deno' in globalThis;

/** The public OpenAI endpoint, used when no base URL is given. */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/**
 * Builds an SDK client from explicit options only. The SDK falls back to process.env
 * (OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID, OPENAI_LOG) for any option left
 * undefined, so every one of them is passed explicitly: configuration comes from `main`.
 * (OPENAI_CUSTOM_HEADERS is still read by the SDK; it cannot be turned off.)
 */
export function createOpenAIClient(options: OpenAIClientOptions): OpenAI {
  return new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL || OPENAI_DEFAULT_BASE_URL,
    organization: null,
    project: null,
    webhookSecret: null,
    logLevel: 'warn',
    // The SDK retries timeouts, connection errors, 408, 409, 429 and 5xx with
    // exponential backoff (0.5 s, 1 s, 2 s … capped at 8 s, minus up to 25 % jitter),
    // and honours Retry-After up to 60 s. The timeout applies to each attempt.
    timeout: options.timeoutMs,
    maxRetries: options.maxRetries,
    ...((options.transport ?? 'node-http') === 'node-http' ? { fetch: createHttpFetch({ https: onDeno ? 'fetch' : 'node' }) } : {}),
  });
}

/** What the reply and speech models take to reach OpenAI; timeoutMs and maxRetries have defaults. */
export type OpenAIModelOptions = {
  apiKey: string;
  baseURL?: string | undefined;
  /** Per attempt; default 30 s. */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt; default 2. */
  maxRetries?: number | undefined;
  transport?: ModelTransport | undefined;
};

/**
 * A client for one of the models (30 s per attempt and 2 retries unless told otherwise), and
 * the context toEffectError reports its failures with, their codes prefixed with `prefix`.
 */
export function createOpenAIModelClient(prefix: FailureContext['prefix'], options: OpenAIModelOptions): { client: OpenAI; failure: FailureContext } {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxRetries = options.maxRetries ?? 2;
  const client = createOpenAIClient({ apiKey: options.apiKey, baseURL: options.baseURL, timeoutMs, maxRetries, transport: options.transport });
  return { client, failure: { prefix, baseURL: client.baseURL, timeoutMs, attempts: maxRetries + 1 } };
}
