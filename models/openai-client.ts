import OpenAI from 'openai';

/** Options for createOpenAIClient. */
export type OpenAIClientOptions = {
  apiKey: string;
  /** Any OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1; default api.openai.com. */
  baseURL?: string | undefined;
  /** Per attempt, in ms. */
  timeoutMs: number;
  maxRetries: number;
};

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
  });
}
