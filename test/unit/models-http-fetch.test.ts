import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpFetch } from '../../models/http-fetch.ts';

// The node:http transport answers where the SDK looks as Node's own fetch does: the same
// server, asked through both, must give the same status, headers, body and errors.
type Route = (req: IncomingMessage, body: string, res: ServerResponse) => void;
const routes: Record<string, Route> = {
  '/json': (req, body, res) => {
    res.writeHead(201, 'Made', { 'content-type': 'application/json', 'x-request-id': 'req_1', 'set-cookie': ['a=1', 'b=2'] });
    res.end(JSON.stringify({ method: req.method, body, auth: req.headers.authorization, ua: req.headers['user-agent'] }));
  },
  '/gzip': (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
    res.end(gzipSync('zipped ✓'));
  },
  '/redirect': (_req, _body, res) => {
    res.writeHead(307, { location: '/json' });
    res.end();
  },
  '/trickle': (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\n');
    setTimeout(() => res.write('data: two\n\n'), 20);
    // then nothing until the client goes away
  },
  '/hang': () => {},
  '/cut': (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
    res.write('only part');
    setTimeout(() => res.socket?.destroy(), 20);
  },
};

let base: string;
/** A port nothing listens on (fetch refuses some low ones outright, as "bad port"). */
let closedPort: number;
const sockets = new Set<Socket>();
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => routes[req.url ?? '']?.(req, Buffer.concat(chunks).toString(), res));
});
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

const lean = createHttpFetch();
const both = { lean, global: globalThis.fetch } as const;
const errorOf = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as Error & { cause?: { code?: string } });

describe('the node:http fetch for the SDK', () => {
  for (const [name, f] of Object.entries(both)) {
    it(`${name}: a POST's status, headers and JSON body`, async () => {
      const res = await f(`${base}/json`, { method: 'POST', headers: new Headers({ authorization: 'Bearer k', 'user-agent': 'OpenAI/JS' }), body: 'héllo' });
      expect([res.status, res.statusText, res.ok]).toEqual([201, 'Made', true]);
      expect(res.headers.get('x-request-id')).toBe('req_1');
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
      expect(await res.json()).toEqual({ method: 'POST', body: 'héllo', auth: 'Bearer k', ua: 'OpenAI/JS' });
      await expect(res.text()).rejects.toThrow(TypeError);
    });

    it(`${name}: a gzipped body is decoded, a redirect followed`, async () => {
      expect(await (await f(`${base}/gzip`)).text()).toBe('zipped ✓');
      const moved = await f(`${base}/redirect`, { method: 'POST', body: 'x' });
      expect(moved.status).toBe(201);
      expect(((await moved.json()) as { body: string }).body).toBe('x');
    });

    it(`${name}: a streamed body arrives piece by piece, and aborting errors it with the signal's reason`, async () => {
      const ac = new AbortController();
      const res = await f(`${base}/trickle`, { signal: ac.signal });
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toBe('data: one\n\n');
      const second = await reader.read();
      expect(new TextDecoder().decode(second.value)).toBe('data: two\n\n');
      const reason = new DOMException('stopped', 'AbortError');
      ac.abort(reason);
      expect(await errorOf(reader.read())).toBe(reason);
    });

    it(`${name}: a whole body not read yet when the signal aborts fails with the signal's reason; read as a stream it is all there`, async () => {
      const ac = new AbortController();
      const res = await f(`${base}/json`, { method: 'POST', body: 'x', signal: ac.signal });
      await new Promise((r) => setTimeout(r, 20)); // the body has all come
      const reason = new Error('stopped');
      ac.abort(reason);
      expect(await errorOf(res.text())).toBe(reason);
      const streamed = await f(`${base}/json`, { method: 'POST', body: 'y' });
      expect(JSON.parse(await new Response(streamed.body).text())).toMatchObject({ method: 'POST', body: 'y' });
    });

    it(`${name}: aborting before the headers rejects with the signal's reason; an aborted signal never sends`, async () => {
      const ac = new AbortController();
      const pending = errorOf(f(`${base}/hang`, { method: 'POST', body: '{}', signal: ac.signal }));
      setTimeout(() => ac.abort(), 20);
      const err = await pending;
      expect(err?.name).toBe('AbortError');
      expect(err).toBe(ac.signal.reason);
      expect((await errorOf(f(`${base}/json`, { signal: AbortSignal.abort() })))?.name).toBe('AbortError');
    });

    it(`${name}: a refused connection is TypeError('fetch failed') with the cause; a cut body fails as TypeError`, async () => {
      const err = await errorOf(f(`http://127.0.0.1:${closedPort}/v1/chat/completions`, { method: 'POST', body: '{}' }));
      expect(err).toBeInstanceOf(TypeError);
      expect(err?.message).toBe('fetch failed');
      expect(err?.cause?.code).toBe('ECONNREFUSED');
      const cut = await f(`${base}/cut`);
      expect(await errorOf(cut.text())).toBeInstanceOf(TypeError);
    });
  }

  it('hands a body that is not a string (a multipart upload) to the global fetch', async () => {
    const form = new FormData();
    form.set('file', new Blob(['abc']), 'a.wav');
    const res = await lean(`${base}/json`, { method: 'POST', body: form });
    expect(res).toBeInstanceOf(Response);
    expect(((await res.json()) as { body: string }).body).toContain('filename="a.wav"');
  });
});

// What plain-HTTP servers may send, scripted byte for byte (http1.ts parses it itself).
describe('the plain-HTTP client under the fetch', () => {
  let raw: string;
  const served: Socket[] = [];
  const scripts: Record<string, (s: Socket) => void> = {
    // 100 Continue first, then a head split over several writes, then a chunked body with an extension and a trailer
    '/split': (s) => {
      const parts = ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Enc', 'oding: chunked\r\n\r\n5;ext=1\r\nhel', 'lo\r\n6\r\n wor', 'ld\r\n0\r\nX-Trailer: t\r\n\r\n'];
      parts.forEach((p, i) => setTimeout(() => s.write(p), i * 5));
    },
    // HTTP/1.0 without a length: the body ends with the connection
    '/close': (s) => s.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end'),
    '/garbage': (s) => s.end('SPDY/9 nonsense\r\n\r\n'),
    '/empty': (s) => s.write('HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n'),
    // a bad chunk in the same packet as the head: the body fails, the process does not
    '/badchunk': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
    '/twice': (s) => {
      served.push(s);
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    },
  };
  const rawServer = createNetServer((s) => {
    sockets.add(s);
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.slice(end + 4 + length);
        scripts[head.split(' ')[1]!]?.(s);
      }
    });
  });
  beforeAll(async () => {
    await new Promise<void>((r) => rawServer.listen(0, '127.0.0.1', r));
    raw = `http://127.0.0.1:${(rawServer.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((r) => rawServer.close(r)));

  it('skips a 1xx, reads a head split across packets and a chunked body with extensions and trailers', async () => {
    const res = await lean(`${raw}/split`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(200);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    expect(await res.text()).toBe('hello world');
  });

  it('reads a body that ends with the connection, and answers 204 without one', async () => {
    expect(await (await lean(`${raw}/close`)).text()).toBe('until the end');
    const empty = await lean(`${raw}/empty`);
    expect([empty.status, empty.headers.get('x-a'), await empty.text()]).toEqual([204, '1', '']);
  });

  it('sends the next request on the same connection once a response is read', async () => {
    for (let i = 0; i < 3; i++) expect(await (await lean(`${raw}/twice`, { method: 'POST', body: 'x' })).text()).toBe('ok');
    expect(served).toHaveLength(3);
    expect(new Set(served).size).toBe(1);
  });

  it('fails a body the server garbles as TypeError, even when it fails before anyone reads it', async () => {
    const res = await lean(`${raw}/badchunk`);
    await new Promise((r) => setTimeout(r, 20));
    expect(await errorOf(res.text())).toBeInstanceOf(TypeError);
  });

  it('fails what is not HTTP as fetch does: TypeError("fetch failed") with the cause', async () => {
    const err = await errorOf(lean(`${raw}/garbage`));
    expect(err).toBeInstanceOf(TypeError);
    expect(err?.message).toBe('fetch failed');
    expect(err?.cause).toBeInstanceOf(Error);
  });
});
