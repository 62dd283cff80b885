// The model reads a value only where the parsers find nothing: over a WebSocket, with a
// fake OpenAI-compatible model, a pattern node whose answer no parser reads is read by the
// model's structured proposal, and the log says who read it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConversation } from '../../cli/read-conversation.ts';
import { KAFKA_BROKERS } from '../support/env.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { flowDeployment } from '../support/flow-backends.ts';
import { kafkaLog } from '../support/kafka.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const definition = {
  id: 'onboarding', language: 'en', start: 'code',
  tasks: { code: { type: 'getData', ddt: 'ticket', next: 'bye' }, bye: { type: 'end', text: 'Ticket {{ticket.code}}, {{ticket.seats}} seats. Bye!' } },
  ddts: { ticket: { nodes: [
    { name: 'code', type: 'pattern', pattern: '^[A-Z]{2}-\\d{4}$', ask: 'Your ticket code?', noMatch: ['That is not a ticket code.'] },
    { name: 'seats', type: 'number', ask: 'How many seats?' },
  ] } },
};
let fake: FakeOpenAI;
let gemello: Gemello;
let port: number;
let namespace: string;

beforeAll(async () => {
  const { flowsDir, twinsFile } = flowDeployment(definition);
  ({ fake, gemello, port, namespace } = await startServeWithFakeModel('flm', { GEMELLO_FLOWS_DIR: flowsDir, GEMELLO_TWINS_FILE: twinsFile }));
}, 90_000);
afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

describe('a flow with a model connected', () => {
  it('asks the model only for what the parsers cannot read', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const next = () => client.next((f) => f.type === 'reply' || f.type === 'error', 20_000);
    client.send({ digitalTwinId: 'onboarding-it', prompt: 'hi' });
    const asked = await next();
    expect(asked.reply).toBe('Your ticket code?');
    const conversationId = asked.conversationId as string;
    const before = fake.requests.length;
    client.send({ digitalTwinId: 'onboarding-it', conversationId, prompt: 'it is code="AB-1234" I think' });
    expect((await next()).reply).toBe('How many seats?');
    expect(fake.requests.length).toBe(before + 1);
    client.send({ digitalTwinId: 'onboarding-it', conversationId, prompt: 'three' });
    expect((await next()).reply).toBe('Ticket AB-1234, 3 seats. Bye!');
    expect(fake.requests.length).toBe(before + 1); // "three" the number parser reads
    client.close();
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: 12, namespace });
    try {
      const reads = (await readConversation(log, conversationId)).filter((e) => e.type === 'ValueRead').map((e) => [(e.data as { node: string }).node, (e.data as { by: string }).by]);
      expect(reads).toEqual([['code', 'model'], ['seats', 'parser']]);
    } finally {
      await log.close();
    }
  });
});
