// Confirming collected data over a WebSocket, on real Kafka and Redis: DataConfirmed is
// critical, so its snapshot is written before the client hears `data.confirmed`, and the
// model sees the data from then on.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { REDIS_URL } from '../support/env.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

let namespace: string;
let fake: FakeOpenAI;
let gemello: Gemello;
let url: string;
let port: number;
const redis = new Redis(REDIS_URL);
// Typed prompts: audio and proposals go only to clients that speak the typed protocol (seed clients get reply and error frames).
const seed = { type: 'prompt', digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

beforeAll(async () => {
  ({ namespace, fake, gemello, port } = await startServeWithFakeModel('cf'));
  url = `ws://127.0.0.1:${port}/ws`;
});

afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
  redis.disconnect();
});

describe('confirming data', () => {
  it('writes the snapshot before telling the client, and the model sees the data afterwards', async () => {
    const client = await connect(url);
    client.send({ ...seed, prompt: 'Hello, I would like your annual letter.' });
    const reply = await client.next((f) => f.type === 'reply');
    const conversationId = reply.conversationId as string;

    const data = { name: 'Ann Example', email: 'ann@example.com' };
    client.send({ type: 'confirm', conversationId, data, requestId: 'c1' });
    const confirmed = await client.next((f) => f.type === 'data.confirmed' || f.type === 'error');
    // Read the snapshot the moment the client hears about it.
    const raw = await redis.get(`${namespace}gemello:snapshot:${conversationId}`);
    expect(confirmed).toMatchObject({ type: 'data.confirmed', conversationId, data, requestId: 'c1', seq: 4 });
    expect(raw).not.toBeNull();
    const snap = JSON.parse(raw!);
    expect(snap.seq).toBeGreaterThanOrEqual(4);
    expect(snap.state.confirmedData).toEqual(data);

    client.send({ ...seed, conversationId, prompt: 'Where will you send it?' });
    await client.next((f) => f.type === 'reply');
    const system = fake.requests[fake.requests.length - 1]!.messages[0]!.content;
    expect(system).toContain('ann@example.com');
    client.close();
  });

  it('shows the values the model proposed, and a confirm without data confirms them', async () => {
    const client = await connect(url);
    client.send({ ...seed, prompt: 'Send it to email=ann@example.com please, I am name="Ann Lee"', requestId: 'p1' });
    const reply = await client.next((f) => f.type === 'reply');
    const conversationId = reply.conversationId as string;
    // The user reads the reply as text, not the JSON the model answered with.
    expect(reply.reply).toBe('echo: Send it to email=ann@example.com please, I am name="Ann Lee"');
    const asked = fake.requests[fake.requests.length - 1]!;
    expect((asked.response_format as { type: string }).type).toBe('json_schema');
    const proposed = await client.next((f) => f.type === 'data.proposed');
    expect(proposed).toMatchObject({ conversationId, replySeq: reply.seq, seq: (reply.seq as number) + 1, data: { name: 'Ann Lee', email: 'ann@example.com' } });

    client.send({ type: 'confirm', conversationId, requestId: 'yes' });
    const confirmed = await client.next((f) => f.type === 'data.confirmed' || f.type === 'error');
    const raw = await redis.get(`${namespace}gemello:snapshot:${conversationId}`);
    expect(confirmed).toMatchObject({ type: 'data.confirmed', requestId: 'yes', data: { name: 'Ann Lee', email: 'ann@example.com' } });
    expect(JSON.parse(raw!).state.confirmedData).toEqual({ name: 'Ann Lee', email: 'ann@example.com' });

    // Nothing is proposed any more, so a second confirm without data has nothing to confirm.
    client.send({ type: 'confirm', conversationId, requestId: 'again' });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_data', requestId: 'again' });
    // The model sees the confirmed values, and what it proposes again is not proposed twice.
    client.send({ ...seed, conversationId, prompt: 'Again: name="Ann Lee" investmentHorizonYears=30', requestId: 'p2' });
    await client.next((f) => f.type === 'reply' && f.requestId === 'p2');
    expect(fake.requests[fake.requests.length - 1]!.messages[0]!.content).toContain('"name":"Ann Lee"');
    const second = await client.next((f) => f.type === 'data.proposed');
    expect(second.data).toEqual({ investmentHorizonYears: 30 });
    // A confirm names the proposal the user saw: the first one is no longer open.
    client.send({ type: 'confirm', conversationId, proposalSeq: proposed.seq, requestId: 'old' });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'stale_proposal', requestId: 'old' });
    client.send({ type: 'confirm', conversationId, proposalSeq: second.seq, requestId: 'new' });
    expect(await client.next((f) => f.type === 'data.confirmed' || f.type === 'error')).toMatchObject({ type: 'data.confirmed', requestId: 'new', data: { name: 'Ann Lee', email: 'ann@example.com', investmentHorizonYears: 30 } });
    // The read model has it once the projection caught up.
    const confirmedInReadModel = async () => (await (await fetch(`http://127.0.0.1:${port}/api/conversations/${conversationId}`)).json()).confirmedData;
    await expect.poll(confirmedInReadModel, { timeout: 10_000 }).toEqual({ name: 'Ann Lee', email: 'ann@example.com', investmentHorizonYears: 30 });
    client.close();
  });

  it('checks confirmed data against the twin\'s fields and refuses what does not fit', async () => {
    // The fields are what /api/twins says the twin collects.
    const twins = (await (await fetch(`http://127.0.0.1:${port}/api/twins`)).json()) as { id: string; fields: { name: string; type: string }[] }[];
    expect(twins.find((t) => t.id === seed.digitalTwinId)?.fields.map((f) => `${f.name}:${f.type}`)).toEqual(['name:string', 'email:email', 'investmentHorizonYears:number']);
    const client = await connect(url);
    client.send({ ...seed, prompt: 'hi' });
    const { conversationId } = await client.next((f) => f.type === 'reply');
    client.send({ type: 'confirm', conversationId, data: { email: 'not an email' }, requestId: 'bad' });
    // The field that does not fit is named (a confirm may carry some of the fields: name is not asked for).
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_data', requestId: 'bad', error: expect.stringMatching(/^email: /) });
    client.send({ type: 'confirm', conversationId, data: { favouriteColour: 'red' } });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_data', error: expect.stringMatching(/favouriteColour/) });
    client.send({ type: 'confirm', conversationId: randomUUID(), data: { name: 'Nobody' } });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'conversation_not_found' });

    // A socket that never talked in the conversation does not know its twin: the actor host checks it.
    const other = await connect(url);
    other.send({ type: 'confirm', conversationId, data: { name: 'Ann', email: 'nope' }, requestId: 'elsewhere' });
    expect(await other.next((f) => f.type === 'error' || f.type === 'data.confirmed')).toMatchObject({ type: 'error', code: 'invalid_data', requestId: 'elsewhere', error: expect.stringMatching(/^email: /) });
    other.send({ type: 'confirm', conversationId, data: { investmentHorizonYears: 'long' }, requestId: 'elsewhere-2' });
    expect(await other.next((f) => f.requestId === 'elsewhere-2')).toMatchObject({ type: 'error', code: 'invalid_data', error: expect.stringMatching(/^investmentHorizonYears: /) });
    // One field at a time fits.
    other.send({ type: 'confirm', conversationId, data: { email: 'ann@example.com' }, requestId: 'good' });
    expect(await other.next((f) => f.requestId === 'good')).toMatchObject({ type: 'data.confirmed', data: { email: 'ann@example.com' } });
    other.close();
    // Nothing that did not fit was confirmed.
    const confirmedInReadModel = async () => (await (await fetch(`http://127.0.0.1:${port}/api/conversations/${conversationId}`)).json()).confirmedData;
    await expect.poll(confirmedInReadModel, { timeout: 10_000 }).toEqual({ email: 'ann@example.com' });
    client.close();
  });
});
