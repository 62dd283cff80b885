import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Http1Pool, type Http1Response } from './http1.ts';
import { Readable, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/**
 * A `fetch` for the `openai` SDK on Node, made on keep-alive connections (plain HTTP with
 * http1.ts, HTTPS with `node:https` and an agent): the
 * SDK's own code runs as it does with the global fetch (request building, retries, timeouts,
 * abort signals, SSE parsing, error mapping), but each call skips undici's fetch machinery
 * (its Request/Response objects and a web stream per body), which cost most of the SDK's
 * ≈ 450 µs of CPU per non-streamed call here.
 *
 * It answers the way the global fetch does where the SDK looks: it resolves at the response
 * headers with `status`, `ok`, `headers` (a real `Headers`), `text()`, `json()`,
 * `arrayBuffer()`, and `body` (a web ReadableStream, made only when asked: the SSE path);
 * aborting the signal destroys the request and rejects (or errors the body) with the signal's
 * reason; a failed connection rejects with `TypeError('fetch failed', { cause })` as undici
 * does. Anything else goes to the global fetch unchanged: a body that is not a string
 * (multipart uploads, streams), a redirect (asked again there, which follows it), and HTTPS
 * with `https: 'fetch'` (Deno, whose own fetch does TLS cheaper than its node:https).
 */
export function createHttpFetch(options: { https?: 'node' | 'fetch' } = {}): typeof fetch {
  const httpsOver = options.https ?? 'node';
  // Idle sockets are all kept (Node's agent keeps 256 by default and closes the rest, so 500
  // conversations at once kept connecting anew); the server's keep-alive timeout closes them.
  const agent = new HttpsAgent({ keepAlive: true, maxFreeSockets: Infinity });
  const plain = new Http1Pool();
  const lean = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = init?.body;
    if ((body != null && typeof body !== 'string') || typeof input === 'object' && !(input instanceof URL)) return fetch(input, init);
    const url = typeof input === 'string' ? new URL(input) : input;
    const secure = url.protocol === 'https:';
    if ((secure && httpsOver === 'fetch') || (!secure && url.protocol !== 'http:')) return fetch(input, init);
    const signal = init?.signal ?? null;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const headers: Array<[string, string]> = [];
    const given = init?.headers;
    (given instanceof Headers ? given : new Headers(given)).forEach((value, name) => headers.push([name, value]));
    const method = init?.method ?? 'GET';
    const exchange = secure ? overHttps(agent, url, method, headers, body ?? null) : plain.request(url, method, headers, body ?? null);
    return new Promise<Response>((resolve, reject) => {
      let response: LeanResponse | null = null;
      const onAbort = () => {
        const reason = abortReason(signal!);
        exchange.cancel();
        if (response) response.fail(reason);
        else reject(reason);
      };
      const done = () => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });
      exchange.response.then((head) => {
        if (signal?.aborted) return;
        const location = head.status >= 300 && head.status < 400 && head.status !== 304 && head.rawHeaders.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'location');
        if (location) {
          // Rare on an API: asked again through the global fetch, which follows it.
          done();
          head.body?.resume();
          resolve(fetch(input, init));
          return;
        }
        response = new LeanResponse(head, url.href, done, exchange.cancel);
        resolve(response as unknown as Response);
      }, (err: unknown) => {
        done();
        if (!signal?.aborted) reject(err);
      });
    });
  };
  return lean as typeof fetch;
}

/** One request on node:https, as Http1Pool.request gives it. */
function overHttps(agent: HttpsAgent, url: URL, method: string, headers: Array<[string, string]>, body: string | null): { response: Promise<Http1Response>; cancel: () => void } {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) out[name] = value;
  if (body !== null) out['content-length'] = String(Buffer.byteLength(body));
  const req = httpsRequest(url, { method, headers: out, agent });
  const response = new Promise<Http1Response>((resolve, reject) => {
    req.on('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
    req.once('response', (res: IncomingMessage) => {
      res.on('error', () => {}); // read where the body is; never a crash before its reader listens
      resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', rawHeaders: res.rawHeaders, body: res });
    });
  });
  req.end(body ?? undefined);
  return { response, cancel: () => req.destroy() };
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/**
 * The part of a fetch Response the SDK and its callers use, over one IncomingMessage, or over
 * the whole body when it came with the head (no stream then, unless `body` is asked for).
 */
class LeanResponse {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly url: string;
  readonly redirected = false;
  readonly type = 'basic';
  readonly headers: Headers;
  bodyUsed = false;
  /** The whole body, uncompressed, when it came with the head (then there is no #source). */
  #whole: Buffer | null = null;
  #source: Readable | null = null;
  #res: Readable | null = null;
  #cancel: () => void;
  #stream: ReadableStream<Uint8Array> | null = null;
  #failure: unknown = null;
  #done: () => void;

  constructor(head: Http1Response, url: string, done: () => void, cancel: () => void) {
    this.#done = done;
    this.#cancel = cancel;
    this.status = head.status;
    this.statusText = head.statusText;
    this.ok = this.status >= 200 && this.status < 300;
    this.url = url;
    const headers = new Headers();
    const raw = head.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
    this.headers = headers;
    const encoding = headers.get('content-encoding');
    if (head.whole && !inflaterFor(encoding)) {
      this.#whole = head.whole;
      return;
    }
    const res = head.body ?? ended(head.whole!);
    this.#res = res;
    this.#source = decoded(res, encoding);
    // Errors are read where the body is; these keep one nobody reads from throwing.
    res.on('error', () => {});
    if (this.#source !== res) this.#source.on('error', () => {});
    res.once('end', done);
    res.once('close', done);
  }

  /** Ends the body with this error (the request was aborted, or the connection lost). */
  fail(reason: unknown): void {
    this.#failure ??= reason;
    this.#done();
    this.#cancel();
    if (!this.#res || !this.#source) return; // a whole body not read yet reads as this failure
    this.#res.destroy();
    if (this.#source !== this.#res) this.#source.destroy(reason instanceof Error ? reason : undefined);
  }

  /** Why a body destroyed before it was read failed: the abort's reason, or the connection's loss. */
  #lost(): unknown {
    return this.#failure ?? new TypeError('terminated', { cause: this.#source?.errored ?? new Error('other side closed') });
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream) return this.#stream;
    if (this.bodyUsed) return null;
    this.bodyUsed = true;
    const whole = this.#whole;
    if (whole) {
      this.#whole = null;
      const failure = this.#failure;
      this.#stream = new ReadableStream<Uint8Array>({
        start: (c) => {
          if (failure !== null) return c.error(failure);
          c.enqueue(new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength));
          c.close();
          this.#done();
        },
        cancel: () => this.#done(),
      });
      return this.#stream;
    }
    const source = this.#source!;
    if (source.destroyed) {
      // Failed before anyone read it: a body that errors at once.
      const failure = this.#lost();
      this.#stream = new ReadableStream<Uint8Array>({ start: (c) => c.error(failure) });
      return this.#stream;
    }
    let open = true;
    const finish = (end: (controller: ReadableStreamDefaultController<Uint8Array>) => void) => {
      if (!open) return;
      open = false;
      end(controller);
    };
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    this.#stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        source.on('data', (chunk: Buffer) => {
          if (!open) return;
          c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((c.desiredSize ?? 1) <= 0) source.pause();
        });
        source.once('end', () => finish((c) => c.close()));
        source.once('error', (err) => finish((c) => c.error(this.#failure ?? new TypeError('terminated', { cause: err }))));
        // Destroyed before its end: aborted (the signal's reason), or the connection lost.
        source.once('close', () => finish((c) => c.error(this.#failure ?? new TypeError('terminated', { cause: new Error('other side closed') }))));
      },
      pull() {
        source.resume();
      },
      cancel: () => {
        open = false;
        this.#done();
        this.#cancel();
        this.#res!.destroy();
      },
    });
    return this.#stream;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async bytes(): Promise<Uint8Array> {
    if (this.bodyUsed) throw new TypeError('Body is unusable: Body has already been read');
    this.bodyUsed = true;
    const whole = this.#whole;
    if (whole) {
      this.#whole = null;
      this.#done();
      if (this.#failure !== null) throw this.#failure;
      return whole;
    }
    const source = this.#source!;
    const chunks: Buffer[] = [];
    if (source.destroyed) throw this.#lost();
    await new Promise<void>((resolve, reject) => {
      let ended = false;
      source.on('data', (chunk: Buffer) => chunks.push(chunk));
      source.once('end', () => {
        ended = true;
        resolve();
      });
      source.once('error', (err) => reject(this.#failure ?? new TypeError('terminated', { cause: err })));
      // Destroyed before its end: aborted (the signal's reason), or the connection lost.
      source.once('close', () => ended || reject(this.#failure ?? new TypeError('terminated', { cause: new Error('other side closed') })));
    });
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  async text(): Promise<string> {
    const bytes = await this.bytes();
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async blob(): Promise<Blob> {
    return new Blob([await this.bytes() as Uint8Array<ArrayBuffer>], { type: this.headers.get('content-type') ?? '' });
  }

  clone(): never {
    throw new TypeError('this response cannot be cloned');
  }
}


/** A stream of one buffer that has all come. */
function ended(whole: Buffer): Readable {
  const r = new Readable({ read() {} });
  r.push(whole);
  r.push(null);
  return r;
}

const INFLATERS: Record<string, () => Transform> = { gzip: createGunzip, 'x-gzip': createGunzip, deflate: createInflate, br: createBrotliDecompress };

/** How a body the server compressed unasked is decompressed (undefined: it was not). */
const inflaterFor = (encoding: string | null) => (encoding ? INFLATERS[encoding.trim().toLowerCase()] : undefined);

/** The body as sent, or decompressed when the server compressed it unasked. */
function decoded(res: Readable, encoding: string | null): Readable {
  const inflate = inflaterFor(encoding);
  return inflate ? res.pipe(inflate()) : res;
}
