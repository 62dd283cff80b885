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
const redis = new Redis(REDIS_URL);
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

beforeAll(async () => {
  let port: number;
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

  it('checks confirmed data against the twin\'s fields and refuses what does not fit', async () => {
    const client = await connect(url);
    client.send({ ...seed, prompt: 'hi' });
    const { conversationId } = await client.next((f) => f.type === 'reply');
    client.send({ type: 'confirm', conversationId, data: { email: 'not an email' }, requestId: 'bad' });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_data', requestId: 'bad' });
    client.send({ type: 'confirm', conversationId, data: { favouriteColour: 'red' } });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_data' });
    client.send({ type: 'confirm', conversationId: randomUUID(), data: { name: 'Nobody' } });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'conversation_not_found' });
    client.close();
  });
});
