// A client that stops reading cannot make the gateway queue output for it without bound:
// once its unread output passes the limit (1 MB), the gateway stops sending and closes the
// socket with 1008, while other sockets go on as before.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realEnv } from '../support/env.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const REPLY_BYTES = 600_000;
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
let model: ReturnType<typeof createServer>;
let gemello: Gemello;
let port: number;

/** A model that answers every prompt with a 600 KB reply (or a short one when asked "short"). */
async function startBigModel() {
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const request = JSON.parse(body) as { messages: { role: string; content: string }[]; stream?: boolean };
    const last = request.messages.filter((m) => m.role === 'user').at(-1)?.content ?? '';
    const content = last === 'short' ? 'a short answer' : `${last}: ${'x'.repeat(REPLY_BYTES)}`;
    if (request.stream) {
      // The actor host streams replies: the whole text in one server-sent event.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'big', choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: null }] })}\n\n`);
      res.end(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'big', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })}\n\ndata: [DONE]\n\n`);
      return;
    }
    const text = JSON.stringify({ id: 'c', object: 'chat.completion', created: 0, model: 'big', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

beforeAll(async () => {
  model = await startBigModel();
  port = await freePort();
  gemello = await startGemello(['serve'], {
    PORT: String(port),
    ...realEnv('bp').env,
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: `http://127.0.0.1:${(model.address() as AddressInfo).port}/v1`,
    GEMELLO_SPEECH: 'off',
  });
});

afterAll(async () => {
  await gemello?.kill();
  model?.closeAllConnections();
  await new Promise((r) => model?.close(r));
});

const metric = async (series: string) => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
};

describe('backpressure', () => {
  it('closes a socket that does not read (1008) once its unread output passes the limit; others are unaffected', async () => {
    const slow = await connect(`ws://127.0.0.1:${port}/ws`);
    const raw = (slow.ws as unknown as { _socket: Socket })._socket;
    raw.pause(); // the client reads nothing from here on, but still sends

    // Each prompt (a conversation of its own) comes back as a 600 KB reply: 20 of them are
    // 12 MB, more than the kernel's socket buffers and the gateway's 1 MB limit together.
    const N = 20;
    for (let i = 0; i < N; i++) slow.send({ ...seed, conversationId: `bp-${randomUUID()}`, prompt: `p${i}` });
    const t0 = Date.now();
    while ((await metric('gemello_ws_errors_total{code="slow_consumer"}')) < 1) {
      if (Date.now() - t0 > 40_000) throw new Error(`the gateway never gave up on the slow socket:\n${gemello.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const gaveUpMs = Date.now() - t0;

    // Another client is served as usual meanwhile.
    const other = await connect(`ws://127.0.0.1:${port}/ws`);
    other.send({ ...seed, prompt: 'short' });
    const served = await other.next((f) => f.type === 'reply', 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- gemello output ---\n${gemello.output().slice(-4000)}`);
    });
    expect(served).toMatchObject({ reply: 'a short answer' });
    other.close();

    // The slow client reads again: it finds what was queued before the limit, then the close.
    raw.resume();
    for (const end = Date.now() + 20_000; !slow.closed() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    expect(slow.closed()).toMatchObject({ code: 1008, reason: expect.stringContaining('slow consumer') });
    const replies = slow.frames.filter((f) => f.type === 'reply').length;
    expect(replies).toBeGreaterThan(0);
    expect(replies).toBeLessThan(N);
    expect(gemello.child.exitCode).toBeNull();
    console.log(`backpressure: closed after ${gaveUpMs} ms, with ${replies} of ${N} replies queued before the limit`);
  }, 90_000);
});
