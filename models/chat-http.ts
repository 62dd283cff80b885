import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { createSseReader } from './sse.ts';

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

/** Kept-alive connections: as many idle ones as streams in flight, so none is closed and opened again under load. */
const AGENT = { keepAlive: true, maxFreeSockets: 1024 };

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
  const agent = secure ? new HttpsAgent(AGENT) : new HttpAgent(AGENT);
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
    /**
     * A streamed completion (`stream: true` is added): `onChunk` is called with each chunk as it
     * arrives; resolves at the end of the stream, early (with what came) when the signal is aborted.
     */
    async stream(body: object, signal: AbortSignal | undefined, onChunk: (chunk: ChatChunk) => void): Promise<void> {
      const res = await post({ ...body, stream: true }, signal);
      await new Promise<void>((resolve, reject) => {
        let done = false;
        let settled = false;
        /** Ends the read: null at the end of the stream; a transport failure is wrapped unless `asIs`. */
        const finish = (err: unknown, asIs = false) => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener('abort', onAbort);
          if (err === null || signal?.aborted) return resolve();
          if (!res.complete) res.destroy();
          reject(asIs ? err : new APIConnectionError({ cause: err as Error }));
        };
        const onAbort = () => {
          res.destroy();
          finish(null);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        const sse = createSseReader((data) => {
          if (done) return;
          if (data === '[DONE]') {
            done = true;
            return;
          }
          const chunk = JSON.parse(data) as ChatChunk & { error?: object };
          if (chunk.error) throw APIError.generate(undefined, chunk, undefined, undefined);
          onChunk(chunk);
        });
        res.setEncoding('utf8');
        // Read to the end even after [DONE]: the socket then goes back to the agent for the next request.
        res.on('data', (piece: string) => {
          if (done || settled) return;
          try {
            sse.push(piece);
          } catch (err) {
            // A chunk that is not JSON, an error event, or the caller's own failure.
            finish(err, true);
          }
        });
        res.on('end', () => finish(null));
        res.on('error', (err) => finish(err));
        res.on('close', () => finish(res.complete ? null : new Error('the stream was cut off before its end')));
      });
    },
  };
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
