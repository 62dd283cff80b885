import { connect, isIP, type Socket } from 'node:net';
import { Readable } from 'node:stream';

/**
 * A small HTTP/1.1 client for plain-HTTP model servers (a local OpenAI-compatible server),
 * with keep-alive connections per origin: one write per request, and a response parser for
 * what such servers send (Content-Length, chunked, or until close; 1xx skipped). It does
 * what `node:http`'s ClientRequest/IncomingMessage do for the SDK at about a third of their
 * CPU (≈ 27 against ≈ 90 µs per request here). HTTPS stays on `node:https` (http-fetch.ts).
 */

/**
 * The response head, and its body: `whole` when it had all come by the time the head was
 * read (a small JSON answer, Content-Length framed, usually in the head's own packet: no
 * stream is made for it), else `body` as it arrives (ends when the response does).
 */
export type Http1Response = { status: number; statusText: string; rawHeaders: string[] } & ({ body: Readable; whole?: undefined } | { body?: undefined; whole: Buffer });

/** A connection idle longer than this is closed before the server closes it under a request. */
const IDLE_MS = 4_000;
const MAX_HEAD_BYTES = 64 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');

/** Thrown (as the cause of fetch's TypeError) when the server's bytes are not HTTP/1.1. */
export class HttpParseError extends Error {
  readonly code = 'HPE_INVALID';
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked'; state: 'size' | 'data' | 'data-crlf' | 'trailers'; left: number } | { kind: 'close' } | { kind: 'none' };

/** One in-flight exchange on a connection. */
type Exchange = {
  method: string;
  resolve: (r: Http1Response) => void;
  reject: (err: Error) => void;
  body: Readable | null;
  framing: Framing | null;
  keepAlive: boolean;
  idleMs: number;
  /** Its response was read to the end: the connection is another exchange's (or idle) from then on. */
  done?: boolean;
};

class Connection {
  readonly socket: Socket;
  readonly pool: Http1Pool;
  readonly origin: string;
  #pending: Buffer | null = null;
  #current: Exchange | null = null;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  #dead = false;

  constructor(socket: Socket, pool: Http1Pool, origin: string) {
    this.socket = socket;
    this.pool = pool;
    this.origin = origin;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('other side closed')));
  }

  get dead(): boolean {
    return this.#dead;
  }

  start(ex: Exchange, request: Buffer): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    this.#current = ex;
    this.socket.ref();
    this.socket.write(request);
  }

  /** Drops the connection (an aborted request: its response is never read). */
  destroy(): void {
    this.#dead = true;
    this.socket.destroy();
  }

  #fail(err: Error): void {
    this.#dead = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.pool.forget(this);
    const ex = this.#current;
    this.#current = null;
    if (!ex) return;
    if (ex.body) {
      // A body that ends with the connection has ended, else it was cut short.
      if (ex.framing?.kind === 'close') ex.body.push(null);
      else ex.body.destroy(err);
    } else ex.reject(err);
  }

  #onEnd(): void {
    const ex = this.#current;
    if (ex?.body && ex.framing?.kind === 'close') {
      this.#current = null;
      ex.body.push(null);
    }
    this.socket.end();
  }

  #onData(chunk: Buffer): void {
    let buf = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = null;
    try {
      while (buf.length > 0) {
        const ex = this.#current;
        if (!ex) throw new HttpParseError('bytes from the server with no request in flight');
        if (!ex.framing) {
          const end = buf.indexOf(CRLF2);
          if (end < 0) {
            if (buf.length > MAX_HEAD_BYTES) throw new HttpParseError('response head too large');
            this.#pending = buf;
            return;
          }
          const head = buf.subarray(0, end).toString('latin1');
          buf = buf.subarray(end + 4);
          buf = this.#head(ex, head, buf);
          continue;
        }
        buf = this.#bodyBytes(ex, ex.framing, buf);
      }
    } catch (err) {
      this.socket.destroy();
      this.#fail(err as Error);
    }
  }

  /** Reads a head; `rest` is what came after it, returned less the body when that is all there. */
  #head(ex: Exchange, head: string, rest: Buffer): Buffer {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (!m) throw new HttpParseError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(m[2]);
    if (status >= 100 && status < 200) return rest; // 100 Continue and friends: the real head follows
    const rawHeaders: string[] = [];
    let length: number | null = null;
    let chunked = false;
    let connection = '';
    let keepAliveHint = '';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpParseError(`bad header line: ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      rawHeaders.push(name, value);
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        const n = Number(value);
        if (!/^\d+$/.test(value) || (length !== null && length !== n)) throw new HttpParseError(`bad content-length ${JSON.stringify(value)}`);
        length = n;
      } else if (lower === 'transfer-encoding') chunked = /(^|,)\s*chunked\s*$/i.test(value);
      else if (lower === 'connection') connection = value.toLowerCase();
      else if (lower === 'keep-alive') keepAliveHint = value;
    }
    ex.keepAlive = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const hint = /timeout=(\d+)/i.exec(keepAliveHint);
    ex.idleMs = hint ? Math.min(IDLE_MS, Math.max(0, Number(hint[1]) * 1000 - 1000)) : IDLE_MS;
    if (ex.method === 'HEAD' || status === 204 || status === 304) ex.framing = { kind: 'none' };
    else if (chunked) ex.framing = { kind: 'chunked', state: 'size', left: 0 };
    else if (length !== null) ex.framing = { kind: 'length', left: length };
    else {
      ex.framing = { kind: 'close' };
      ex.keepAlive = false;
    }
    const statusText = m[3] ?? '';
    const f = ex.framing;
    if (f.kind === 'none' || (f.kind === 'length' && rest.length >= f.left)) {
      // The whole body is here: handed over as one buffer (a copy: the socket's buffer may be a slab shared with the next read).
      const left = f.kind === 'length' ? f.left : 0;
      const whole = Buffer.from(rest.subarray(0, left));
      this.#complete(ex);
      ex.resolve({ status, statusText, rawHeaders, whole });
      return rest.subarray(left);
    }
    const socket = this.socket;
    ex.body = new Readable({ read: () => socket.resume() });
    // The body may fail before its reader listens (a bad chunk in the head's packet): not a crash.
    ex.body.on('error', () => {});
    ex.resolve({ status, statusText, rawHeaders, body: ex.body });
    return rest;
  }

  /** Takes what `buf` holds of the body; returns what is left after it (the next response's, which is an error). */
  #bodyBytes(ex: Exchange, f: Framing, buf: Buffer): Buffer {
    if (f.kind === 'close') {
      this.#push(ex, buf);
      return buf.subarray(buf.length);
    }
    if (f.kind === 'length') {
      const take = Math.min(f.left, buf.length);
      if (take > 0) this.#push(ex, buf.subarray(0, take));
      f.left -= take;
      if (f.left === 0) this.#complete(ex);
      return buf.subarray(take);
    }
    if (f.kind === 'none') throw new HttpParseError('bytes after a response without a body');
    // chunked
    while (buf.length > 0) {
      if (f.state === 'size' || f.state === 'trailers') {
        const nl = buf.indexOf('\r\n');
        if (nl < 0) {
          if (buf.length > MAX_HEAD_BYTES) throw new HttpParseError('chunk line too long');
          this.#pending = buf;
          return buf.subarray(buf.length);
        }
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 2);
        if (f.state === 'trailers') {
          if (line === '') {
            this.#complete(ex);
            return buf;
          }
          continue;
        }
        const size = line.split(';')[0]!.trim();
        if (!/^[0-9a-fA-F]+$/.test(size)) throw new HttpParseError(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
        f.left = parseInt(size, 16);
        f.state = f.left === 0 ? 'trailers' : 'data';
      } else if (f.state === 'data') {
        const take = Math.min(f.left, buf.length);
        this.#push(ex, buf.subarray(0, take));
        f.left -= take;
        buf = buf.subarray(take);
        if (f.left === 0) f.state = 'data-crlf';
      } else {
        if (buf.length < 2) {
          this.#pending = buf;
          return buf.subarray(buf.length);
        }
        if (buf[0] !== 13 || buf[1] !== 10) throw new HttpParseError('chunk not followed by CRLF');
        buf = buf.subarray(2);
        f.state = 'size';
      }
    }
    return buf;
  }

  #push(ex: Exchange, bytes: Buffer): void {
    // A copy: the socket's buffer may be a slab shared with the next read.
    if (!ex.body!.push(Buffer.from(bytes))) this.socket.pause();
  }

  #complete(ex: Exchange): void {
    ex.done = true;
    this.#current = null;
    ex.body?.push(null);
    if (!ex.keepAlive || this.#dead) {
      this.destroy();
      this.pool.forget(this);
      return;
    }
    this.socket.resume();
    this.socket.unref();
    this.#idleTimer = setTimeout(() => this.destroy(), ex.idleMs);
    this.#idleTimer.unref();
    this.pool.release(this);
  }
}

/** Keep-alive connections by origin (host:port), as many as requests in flight at once. */
export class Http1Pool {
  #idle = new Map<string, Connection[]>();

  release(c: Connection): void {
    if (c.dead) return;
    let list = this.#idle.get(c.origin);
    if (!list) this.#idle.set(c.origin, (list = []));
    list.push(c);
  }

  forget(c: Connection): void {
    const list = this.#idle.get(c.origin);
    const i = list ? list.indexOf(c) : -1;
    if (i >= 0) list!.splice(i, 1);
  }

  /**
   * Sends one request; `response` resolves at the response head, or rejects with
   * TypeError('fetch failed', { cause }) when the connection fails before it. `headers` are
   * already valid (from a `Headers`); `host` and `content-length` are set here. `cancel`
   * drops the connection while the response is still being read (its body ends with an
   * error); after its end it does nothing.
   */
  request(url: URL, method: string, headers: Array<[string, string]>, body: string | null): { response: Promise<Http1Response>; cancel: () => void } {
    const origin = url.host;
    let conn: Connection | undefined;
    const idle = this.#idle.get(origin);
    while (idle?.length && !conn) {
      const c = idle.pop()!;
      if (!c.dead) conn = c;
    }
    const port = Number(url.port) || 80;
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    conn ??= new Connection(connect({ host: hostname, port, family: isIP(hostname) || undefined }), this, origin);
    let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: keep-alive\r\n`;
    for (const [name, value] of headers) if (name !== 'host' && name !== 'connection' && name !== 'content-length') head += `${name}: ${value}\r\n`;
    const bodyBytes = body === null ? 0 : Buffer.byteLength(body);
    if (body !== null || method === 'POST' || method === 'PUT' || method === 'PATCH') head += `content-length: ${bodyBytes}\r\n`;
    head += '\r\n';
    // Head and body encoded straight into one buffer (outside the JS heap), not joined into a
    // string first: the socket would flatten that string, a copy of the whole body on the
    // young generation for every model call.
    const headBytes = Buffer.byteLength(head);
    const request = Buffer.allocUnsafe(headBytes + bodyBytes);
    request.write(head, 0, headBytes);
    if (body !== null) request.write(body, headBytes, bodyBytes);
    const c = conn;
    let ex!: Exchange;
    const response = new Promise<Http1Response>((resolve, reject) => {
      ex = { method, resolve, reject: (err) => reject(new TypeError('fetch failed', { cause: err })), body: null, framing: null, keepAlive: false, idleMs: IDLE_MS };
      c.start(ex, request);
    });
    // Once its response was read to the end, the connection may be idle in the pool or carry
    // another request (a whole body comes with its head, before the caller reads it): a late
    // cancel (an abort after that) must not drop it.
    return { response, cancel: () => void (ex.done || c.destroy()) };
  }
}
