import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

/** Options for createChatHttp. */
export type ChatHttpOptions = {
  apiKey: string;
  /** Base URL including /v1, e.g. https://api.openai.com/v1. */
  baseURL: string;
  /** Per attempt, until the response's headers arrive. */
  timeoutMs: number;
  /** Retries after the first attempt. */
  maxRetries: number;
};

/** One chunk of a streamed completion, the parts gemello reads. */
export type ChatChunk = {
  model?: string;
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  choices?: Array<{ delta?: { content?: string | null; refusal?: string | null } }>;
};

/** A whole completion, the parts gemello reads. */
export type ChatCompletion = {
  model: string;
  usage?: ChatChunk['usage'];
  choices?: Array<{ message?: { content?: string | null; refusal?: string | null } }>;
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

/**
 * POST /chat/completions over node:http(s) with one keep-alive agent: the OpenAI SDK's
 * request path (fetch, web streams, its SSE decoder, headers rebuilt per call) cost more
 * CPU than the rest of the actor host per prompt. Same behaviour where gemello relies on
 * it, and the SDK's own error classes, so failures map to the same EffectErrors:
 * - retries connection errors, timeouts, 408, 409, 429 and 5xx (`x-should-retry` obeyed)
 *   with 0.5 s, 1 s, 2 s … capped at 8 s less up to 25 % jitter, or `retry-after(-ms)` up
 *   to 60 s; a stream is not retried once its body began;
 * - the timeout runs per attempt until the response's headers arrive;
 * - aborting the signal closes the request (APIUserAbortError before the answer began; a
 *   stream being read just ends).
 */
export function createChatHttp(options: ChatHttpOptions) {
  const url = new URL(`${options.baseURL.replace(/\/+$/, '')}/chat/completions`);
  const secure = url.protocol === 'https:';
  const send = secure ? httpsRequest : httpRequest;
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const headers = { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${options.apiKey}` };

  /** One attempt: resolves with a 2xx response, rejects with the SDK's error for anything else. */
  function attempt(body: string, signal: AbortSignal | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new APIUserAbortError());
      const req = send(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } });
      let settled = false;
      const finish = (err: Error | null, res?: IncomingMessage) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(res!);
      };
      const onAbort = () => finish(new APIUserAbortError());
      const timer = setTimeout(() => finish(new APIConnectionTimeoutError()), options.timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => finish(new APIConnectionError({ cause: err })));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return finish(null, res);
        readText(res).then((text) => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
          finish(APIError.generate(status, json as object | undefined, json ? undefined : text, h));
        }, (err: Error) => finish(new APIConnectionError({ cause: err })));
      });
      req.end(body);
    });
  }

  function retryable(err: unknown): boolean {
    if (err instanceof APIUserAbortError) return false;
    if (err instanceof APIConnectionError) return true;
    if (!(err instanceof APIError) || typeof err.status !== 'number') return false;
    const told = err.headers?.get('x-should-retry');
    if (told === 'true') return true;
    if (told === 'false') return false;
    return err.status === 408 || err.status === 409 || err.status === 429 || err.status >= 500;
  }

  function retryDelay(err: unknown, retry: number): number {
    const h = err instanceof APIError ? err.headers : undefined;
    let ms = Number.parseFloat(h?.get('retry-after-ms') ?? '');
    if (Number.isNaN(ms)) {
      const after = h?.get('retry-after');
      if (after) ms = Number.isNaN(Number.parseFloat(after)) ? Date.parse(after) - Date.now() : Number.parseFloat(after) * 1000;
    }
    if (!Number.isFinite(ms) || ms < 0 || ms > 60_000) ms = Math.min(0.5 * 2 ** retry, 8) * (1 - Math.random() * 0.25) * 1000;
    return ms;
  }

  async function post(body: unknown, signal: AbortSignal | undefined): Promise<IncomingMessage> {
    const text = JSON.stringify(body);
    for (let retry = 0; ; retry++) {
      try {
        return await attempt(text, signal);
      } catch (err) {
        if (retry >= options.maxRetries || !retryable(err)) throw err;
        await sleep(retryDelay(err, retry), signal);
        if (signal?.aborted) throw new APIUserAbortError();
      }
    }
  }

  return {
    baseURL: options.baseURL,
    /** A whole completion. */
    async create(body: object, signal?: AbortSignal): Promise<ChatCompletion> {
      const res = await post(body, signal);
      return JSON.parse(await readText(res, signal)) as ChatCompletion;
    },
    /** A streamed completion (`stream: true` is added), chunk by chunk; ends early when the signal is aborted. */
    async *stream(body: object, signal?: AbortSignal): AsyncGenerator<ChatChunk> {
      const res = await post({ ...body, stream: true }, signal);
      const onAbort = () => res.destroy();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        res.setEncoding('utf8');
        let buffered = '';
        let done = false;
        try {
          // Read to the end even after [DONE]: leaving the loop early would destroy the
          // socket, and the next request would open a new connection.
          for await (const piece of res as AsyncIterable<string>) {
            if (done) continue;
            buffered += piece;
            let end: number;
            while ((end = eventEnd(buffered)) >= 0) {
              const event = buffered.slice(0, end);
              buffered = buffered.slice(end).replace(/^(\r?\n)+/, '');
              const data = eventData(event);
              if (data === null) continue;
              if (data === '[DONE]') {
                done = true;
                break;
              }
              const chunk = JSON.parse(data) as ChatChunk & { error?: object };
              if (chunk.error) throw APIError.generate(undefined, chunk, undefined, undefined);
              yield chunk;
            }
          }
        } catch (err) {
          if (signal?.aborted) return;
          if (err instanceof APIError || err instanceof SyntaxError) throw err;
          throw new APIConnectionError({ cause: err as Error });
        }
      } finally {
        signal?.removeEventListener('abort', onAbort);
        if (!res.complete) res.destroy();
      }
    },
  };
}

/** Where the first complete server-sent event ends (before its blank line), or -1. */
function eventEnd(s: string): number {
  const lf = s.indexOf('\n\n');
  const crlf = s.indexOf('\r\n\r\n');
  if (lf < 0) return crlf;
  return crlf < 0 ? lf : Math.min(lf, crlf);
}

/** The `data:` lines of one event joined, or null when it has none (a comment, a keep-alive). */
function eventData(event: string): string | null {
  let data: string | null = null;
  for (const line of event.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.slice(line[5] === ' ' ? 6 : 5);
    data = data === null ? value : `${data}\n${value}`;
  }
  return data;
}

function readText(res: IncomingMessage, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onAbort = () => {
      res.destroy();
      reject(new APIUserAbortError());
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.on('end', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(text);
    });
    res.on('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new APIConnectionError({ cause: err }));
    });
  });
}
