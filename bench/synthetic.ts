// The synthetic conversations of the data-path benchmarks (recovery, replay, projector,
// append): started, data confirmed, then prompt/reply pairs of ~100 characters, each
// event in an envelope with a trace and, for a client's command, a causation id.
import { randomBytes, randomUUID } from 'node:crypto';
import { envelope } from '../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../events/schemas.ts';

const LOREM =
  'Price is what you pay, value is what you get. Our favourite holding period is forever. Risk comes from not knowing what you are doing. ' +
  'Someone is sitting in the shade today because someone planted a tree a long time ago. It takes twenty years to build a reputation. ';
const text = (n: number, prefix: string) => {
  const at = (n * 37) % (LOREM.length - 100);
  return `${prefix} ${LOREM.slice(at, at + 100 - prefix.length - 1)}`;
};
const traceparent = () => `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;

/** A synthetic conversation: its id, its index (which picks its texts) and, for a flow conversation, its events. */
export type SyntheticConversation = { id: string; index: number; flow?: DomainEvent[] | null };

/** The domain event at `seq` of a synthetic conversation: started, data confirmed, then prompt/reply pairs of ~100 characters. */
export function eventAt(c: SyntheticConversation, seq: number): DomainEvent {
  if (c.flow) return c.flow[seq - 1]!;
  if (seq === 1) return { type: 'ConversationStarted', data: { twinId: 'warren-buffett-001', twinName: 'Warren Buffett', userId: `user-${c.index % 997}`, metadata: { channel: 'bench', locale: 'en-GB' } } };
  if (seq === 2) return { type: 'DataConfirmed', data: { data: { name: `Investor ${c.index}`, email: `investor${c.index}@example.com`, budget: 10_000 + c.index }, requestId: `req-${c.index}-2` } };
  if (seq % 2 === 1) return { type: 'PromptReceived', data: { text: text(c.index + seq, `Q${seq}:`), requestId: `req-${c.index}-${seq}` } };
  return {
    type: 'ReplyGenerated',
    data: { promptSeq: seq - 1, text: text(c.index * 3 + seq, `A${seq}:`), model: 'ft:gpt-4.1-nano-2025-04-14:ai4smartcity:warren-buffett:CXmgEp7Z', tokens: { prompt: 412 + seq, completion: 28, total: 440 + seq }, latencyMs: 412.5, audio: false },
  };
}

/** The event at `seq` in its envelope, as the actor host writes it. */
export function envelopeAt(c: SyntheticConversation, seq: number): EventEnvelope {
  const e = eventAt(c, seq);
  // Prompts and the start come from a client command; replies (and a flow's effect outcomes) from the actor's own effect.
  const fromClient = e.type !== 'ReplyGenerated' && e.type !== 'BackendCalled';
  return envelope(c.id, seq - 1, [e], {
    causationId: fromClient ? randomUUID() : null,
    correlationId: fromClient ? `req-${c.index}-${seq}` : null,
    traceparent: traceparent(),
    now: new Date(),
    newId: randomUUID,
  })[0]!;
}
