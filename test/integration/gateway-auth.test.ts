// A gateway with API keys: who may connect, whose conversation is whose, how fast a
// socket may send, and what /metrics says about all of it afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { conversationOnKafka } from '../support/log.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const ALICE = { authorization: 'Bearer k1' };
const BOB = { authorization: 'Bearer k2' };
let namespace: string;
let fake: FakeOpenAI;
let gemello: Gemello;
let http: string;
let ws: string;

beforeAll(async () => {
  let port: number;
  ({ namespace, fake, gemello, port } = await startServeWithFakeModel('ga', {
    GEMELLO_API_KEYS: 'k1:alice,k2:bob',
    GEMELLO_RATE_PER_SEC: '5',
    GEMELLO_RATE_BURST: '10',
  }));
  http = `http://127.0.0.1:${port}`;
  ws = `ws://127.0.0.1:${port}`;
});

afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${http}${path}`, { headers });
const waitClosed = async (c: Awaited<ReturnType<typeof connect>>) => {
  for (const end = Date.now() + 5_000; !c.closed() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
  return c.closed();
};

describe('auth', () => {
  it('refuses a socket or an API call without a valid token', async () => {
    for (const [url, headers] of [[`${ws}/ws`, {}], [`${ws}/`, {}], [`${ws}/ws?token=nope`, {}], [`${ws}/ws`, { authorization: 'Bearer nope' }]] as const) {
      const c = await connect(url, headers);
      expect(await c.next()).toMatchObject({ type: 'error', code: 'unauthorized' });
      expect(await waitClosed(c)).toMatchObject({ code: 1008 });
    }
    expect((await get('/api/twins')).status).toBe(401);
    expect(await (await get('/api/twins', { authorization: 'Bearer nope' })).json()).toMatchObject({ code: 'unauthorized' });
    expect((await get('/api/twins', ALICE)).status).toBe(200);
    expect((await get('/api/twins?token=k2')).status).toBe(200);
    expect((await get('/health')).status).toBe(200);
    // The chat page's browser asks for an icon: no 404 in its console.
    expect((await get('/favicon.ico')).status).toBe(204);
  });

  it('a conversation is its starter\'s: another principal gets `forbidden` and sees none of it', async () => {
    const alice = await connect(`${ws}/ws`, ALICE);
    alice.send({ ...seed, prompt: 'my secret plan', requestId: 'a1' });
    const mine = await alice.next((f) => f.type === 'reply');
    const id = mine.conversationId as string;

    // Bob, by query parameter, knows the id: his prompt and his resume are refused.
    const bob = await connect(`${ws}/ws?token=k2`);
    bob.send({ ...seed, conversationId: id, prompt: 'let me in', requestId: 'b1' });
    expect(await bob.next()).toMatchObject({ type: 'error', code: 'forbidden', conversationId: id, requestId: 'b1' });
    bob.send({ type: 'resume', conversationId: id, afterSeq: 0, requestId: 'b2' });
    expect(await bob.next()).toMatchObject({ type: 'error', code: 'forbidden', conversationId: id, requestId: 'b2' });

    // Several at once, without waiting: each is refused, none left unanswered.
    bob.send({ type: 'stop', conversationId: id, requestId: 'b4' });
    bob.send({ ...seed, conversationId: id, prompt: 'again', requestId: 'b5' });
    bob.send({ type: 'confirm', conversationId: id, data: { name: 'Bob' }, requestId: 'b6' });
    for (const requestId of ['b4', 'b5', 'b6']) expect(await bob.next((f) => f.requestId === requestId, 5_000)).toMatchObject({ type: 'error', code: 'forbidden', conversationId: id });

    // Alice goes on; bob hears nothing of it, and alice nothing of bob's attempts.
    alice.send({ ...seed, prompt: 'part two', requestId: 'a2' });
    expect(await alice.next((f) => f.type === 'reply')).toMatchObject({ reply: 'echo: part two', requestId: 'a2', conversationId: id });
    // Bob's own conversation is his.
    bob.send({ ...seed, prompt: 'my own', requestId: 'b3' });
    const his = await bob.next((f) => f.type === 'reply');
    expect(his.conversationId).not.toBe(id);
    await new Promise((r) => setTimeout(r, 300));
    expect(bob.frames.filter((f) => f.conversationId === id).map((f) => f.code)).toEqual(['forbidden', 'forbidden', 'forbidden', 'forbidden', 'forbidden']);
    expect(alice.frames.filter((f) => f.type === 'error')).toEqual([]);

    // Alice resumes her own from another socket (token as query parameter).
    const again = await connect(`${ws}/?token=k1`);
    again.send({ type: 'resume', conversationId: id, afterSeq: 0 });
    expect(await again.next((f) => f.type === 'resumed')).toMatchObject({ lastSeq: 5, ...seed });
    expect(again.frames.filter((f) => f.type === 'event').map((f) => f.seq)).toEqual([1, 2, 3, 4, 5]);
    again.close();

    // The same over HTTP.
    let res = await get(`/api/conversations/${id}`, ALICE);
    for (const end = Date.now() + 5_000; res.status === 404 && Date.now() < end; res = await get(`/api/conversations/${id}`, ALICE)) await new Promise((r) => setTimeout(r, 50));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id, userId: 'alice' });
    expect((await get(`/api/conversations/${id}?token=k1`)).status).toBe(200);
    const forbidden = await get(`/api/conversations/${id}`, BOB);
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: 'forbidden' });
    expect((await get(`/api/conversations/${id}/events?token=k2`)).status).toBe(403);
    expect((await get(`/api/conversations/${id}`)).status).toBe(401);

    // The log holds alice's conversation only: bob's refused prompt is not in it.
    const events = await conversationOnKafka(namespace, id);
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated', 'PromptReceived', 'ReplyGenerated']);
    expect(events[0]!.data).toMatchObject({ userId: 'alice' });
    alice.close();
    bob.close();
  });
});

describe('rate limit', () => {
  it('answers a burst past GEMELLO_RATE_BURST with rate_limited, and the socket works again after a pause', async () => {
    const c = await connect(`${ws}/ws`, ALICE);
    const N = 30;
    for (let i = 0; i < N; i++) c.send({ type: 'resume', conversationId: 'c', afterSeq: -1, requestId: `r${i}` });
    for (const end = Date.now() + 5_000; c.frames.length < N && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
    expect(c.frames).toHaveLength(N);
    const codes = c.frames.map((f) => f.code);
    // The first 10 (the burst) are handled, the rest refused; the bucket refills at 5/s.
    expect(codes.slice(0, 10)).toEqual(new Array(10).fill('invalid_frame'));
    expect(codes.filter((x) => x === 'rate_limited').length).toBeGreaterThanOrEqual(N - 10 - 2);
    for (const f of c.frames) expect(f).toMatchObject({ type: 'error', code: expect.stringMatching(/^(invalid_frame|rate_limited)$/) });
    expect(c.closed()).toBeNull();

    await new Promise((r) => setTimeout(r, 1_000));
    c.send({ ...seed, prompt: 'calm now', requestId: 'calm' });
    expect(await c.next((f) => f.requestId === 'calm')).toMatchObject({ type: 'reply', reply: 'echo: calm now' });
    c.close();
  });
});

describe('/metrics', () => {
  it('counts sockets open, frames in and out, commands, and errors by code', async () => {
    const open = await connect(`${ws}/ws`, BOB);
    const text = await (await get('/metrics')).text();
    open.close();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('gemello_ws_sockets_open')).toBeGreaterThanOrEqual(1);
    expect(value('gemello_ws_frames_in_total')).toBe(40); // 9 in the auth test, 31 in the rate limit test
    expect(value('gemello_ws_frames_out_total')).toBeGreaterThanOrEqual(40);
    expect(value('gemello_gateway_commands_total{type="SubmitPrompt"}')).toBeGreaterThanOrEqual(4);
    expect(value('gemello_ws_errors_total{code="rate_limited"}')).toBeGreaterThanOrEqual(18);
    expect(value('gemello_ws_errors_total{code="invalid_frame"}')).toBeGreaterThanOrEqual(10);
    expect(value('gemello_ws_errors_total{code="forbidden"}')).toBe(5);
    expect(value('gemello_ws_errors_total{code="unauthorized"}')).toBe(4);
    expect(text).toMatch(/^# TYPE gemello_ws_sockets_open gauge$/m);
  });
});
