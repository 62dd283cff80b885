// The Node gateway upgrades WebSockets itself (runtime/node.ts, `ws`) and leaves HTTP to
// Hono: which paths upgrade, how a token is read from the upgrade request (API key or JWT,
// header or query), the frame limits, and the sockets-open gauge, which counts a socket
// that has sent nothing yet. Embedded (no backends), with auth on.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from 'hono/jwt';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES } from '../../gateway/protocol.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const SECRET = 'upgrade-test-secret';
const dir = mkdtempSync(join(tmpdir(), 'gemello-upgrade-'));
let gemello: Gemello;
let port: number;

beforeAll(async () => {
  port = await freePort();
  gemello = await startGemello(['serve'], {
    PORT: String(port),
    GEMELLO_DATA_DIR: dir,
    KAFKA_BROKERS: '',
    DATABASE_URL: '',
    REDIS_URL: '',
    OPENAI_API_KEY: '',
    GEMELLO_SPEECH: 'off',
    GEMELLO_API_KEYS: 'k1:alice',
    GEMELLO_JWT_SECRET: SECRET,
  });
});

afterAll(async () => {
  await gemello?.kill();
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

const gauge = async () => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('gemello_ws_sockets_open '));
  return line === undefined ? 0 : Number(line.slice('gemello_ws_sockets_open '.length));
};
const until = async (what: string, ok: () => Promise<boolean> | boolean) => {
  for (const end = Date.now() + 5_000; !(await ok()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
};

describe('the Node WebSocket upgrade', () => {
  it('upgrades at / and /ws only; Hono answers them as HTTP', async () => {
    const ws = await fetch(`http://127.0.0.1:${port}/ws`);
    expect(ws.status).toBe(426);
    const page = await fetch(`http://127.0.0.1:${port}/`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const refused = await new Promise<number>((resolve, reject) => {
      const c = new WebSocket(`ws://127.0.0.1:${port}/elsewhere?token=k1`);
      c.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      c.once('open', () => reject(new Error('upgraded at /elsewhere')));
      c.once('error', () => {});
    });
    expect(refused).toBe(404);
  });

  it('answers an upgrade to something other than WebSocket (h2c) as plain HTTP', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/health', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAA' } }, (r) => {
        let body = '';
        r.on('data', (d) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('upgrade', () => reject(new Error('the server switched protocols')));
      req.on('error', reject);
      req.end();
    });
    expect(res.status).toBe(200);
  });

  it('takes an API key or a JWT, from the Authorization header or ?token=', async () => {
    const jwt = await sign({ sub: 'bob', exp: Math.floor(Date.now() / 1000) + 600 }, SECRET, 'HS256');
    const forged = await sign({ sub: 'bob' }, 'another-secret', 'HS256');
    for (const [path, headers] of [['/ws?token=k1', {}], ['/', { authorization: `Bearer ${jwt}` }], [`/ws?a=1&token=${encodeURIComponent(jwt)}`, {}]] as const) {
      const c = await connect(`ws://127.0.0.1:${port}${path}`, headers);
      c.send({ ...seed, prompt: 'hello', requestId: 'r1' });
      expect(await c.next((f) => f.requestId === 'r1')).toMatchObject({ type: 'reply', ...seed });
      c.close();
    }
    for (const [path, headers] of [[`/ws?token=${forged}`, {}], ['/ws?token=k1', { authorization: 'Bearer nope' }]] as const) {
      const c = await connect(`ws://127.0.0.1:${port}${path}`, headers);
      expect(await c.next()).toMatchObject({ type: 'error', code: 'unauthorized' });
      await until('the 1008 close', () => c.closed() !== null);
      expect(c.closed()).toMatchObject({ code: 1008 });
    }
  });

  it('lives through a refused socket that sends a frame past the limit before it is closed', async () => {
    const c = new WebSocket(`ws://127.0.0.1:${port}/ws?token=nope`);
    c.on('error', () => {});
    await new Promise((r) => c.once('open', r));
    c.send('x'.repeat(16 * MAX_FRAME_BYTES + 1));
    await new Promise((r) => c.once('close', r));
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it('refuses binary and too-large frames with an error frame and keeps the socket; past 1 MB it closes with 1009', async () => {
    const c = await connect(`ws://127.0.0.1:${port}/ws?token=k1`);
    c.ws.send(Buffer.from('{"prompt":"x"}'), { binary: true });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'binary_frame' });
    c.send(JSON.stringify({ ...seed, prompt: 'x'.repeat(MAX_FRAME_BYTES) }));
    expect(await c.next()).toMatchObject({ type: 'error', code: 'frame_too_large' });
    c.send({ ...seed, prompt: 'still here', requestId: 'r2' });
    expect(await c.next((f) => f.requestId === 'r2')).toMatchObject({ type: 'reply' });
    c.send('x'.repeat(16 * MAX_FRAME_BYTES + 1));
    await until('the 1009 close', () => c.closed() !== null);
    expect(c.closed()).toMatchObject({ code: 1009 });
  });

  it('counts open sockets in gemello_ws_sockets_open, those that have sent nothing too', async () => {
    await until('the earlier sockets to be gone', async () => (await gauge()) === 0);
    const idle = await Promise.all([connect(`ws://127.0.0.1:${port}/ws?token=k1`), connect(`ws://127.0.0.1:${port}/?token=k1`)]);
    expect(await gauge()).toBe(2);
    for (const c of idle) c.close();
    await until('the gauge to drop', async () => (await gauge()) === 0);
  });
});
