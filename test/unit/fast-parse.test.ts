// The event schemas' compiled checks (events/fast-parse.ts) must give exactly what zod's
// safeParse gives: the same value (fields in the same order, unknown keys left out, defaults
// put in) for what they accept, and zod's own answer for the rest.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fastSafeParse, isCompiled } from '../../events/fast-parse.ts';
import { EVENT_TYPES, EventData, RawEnvelope } from '../../events/schemas.ts';
import type { EventType } from '../../events/schemas.ts';

const uuid = '6f1c7a1e-4a8b-4c59-9a55-1a2b3c4d5e6f';

/** Valid data of every type, in more than one shape where a type has optional or defaulted fields. */
const VALID: Record<EventType, Array<Record<string, unknown>>> = {
  ConversationStarted: [
    { twinId: 't', twinName: 'Twin', userId: null, metadata: { channel: 'web', n: 1, nested: { a: [1] } } },
    { twinId: 't', twinName: 'Twin', userId: 'u' },
    { twinName: 'Twin', userId: 'u', twinId: 't', metadata: { 2: 'b', 1: 'a', z: 0 } },
  ],
  PromptReceived: [{ text: 'hi', requestId: null }, { text: '', requestId: 'r', read: 'model', source: 'voice' }],
  SpeechReceived: [{ audioId: 'a', format: 'wav', durationSec: 1.5, text: 'x' }, { audioId: 'a', format: 'wav', durationSec: 0, text: 'x', kept: true }],
  SpeechFailed: [{ audioId: 'a', format: 'wav', durationSec: 2, code: 'c', reason: 'r', requestId: null }],
  DataConfirmed: [{ data: { name: 'Ada', budget: 10 }, requestId: null }, { data: {}, requestId: 'r', flow: { task: 't', node: 'n' } }],
  ReplyGenerated: [
    { promptSeq: 2, text: 'reply', model: 'm', tokens: { prompt: 1, completion: 0, total: 1 }, latencyMs: 412.5, audio: false },
    { promptSeq: 2, text: 'reply', model: 'm', tokens: { total: 1, prompt: 1, completion: 0 }, latencyMs: 0 },
  ],
  DataProposed: [{ replySeq: 3, data: { email: 'a@b.c' } }],
  ReplyFailed: [{ promptSeq: 1, reason: 'timeout', code: 'model_timeout', latencyMs: 30_000 }],
  ReplyStopped: [{ promptSeq: 1, text: 'par', heardChars: null }, { promptSeq: 1, text: 'partial', heardChars: 3, replySeq: 2 }],
  AudioReady: [{ replySeq: 2, audioId: 'a', format: 'mp3', durationSec: 3, bytes: 100, voice: 'v' }],
  AudioFailed: [{ replySeq: 2, reason: 'r' }],
  ConversationErased: [{ by: null, via: 'api', reason: null, prompts: 0, replies: 0, confirmedFields: 0 }, { by: 'op', via: 'retention', reason: 'old', prompts: 3, replies: 2, confirmedFields: 1 }],
  FlowStarted: [{ flowId: 'f', version: '1', definition: { tasks: [{ id: 'a' }] } }],
  TaskStarted: [{ task: 't', taskType: 'say' }, { task: 't', taskType: 'http', key: 'k' }, { task: 't', taskType: 'http', key: null }],
  MessageSaid: [{ task: 't', kind: 'ask', text: 'hello' }, { task: 't', kind: 'confirm', node: 'n.x', text: 'ok?', awaitUntil: '2026-01-01T00:00:00Z' }],
  ValueRead: [{ task: 't', node: 'n', value: { y: 1990 }, by: 'parser', promptSeq: 4 }, { task: 't', node: 'n', value: 'x', partial: true, by: 'model', promptSeq: 4 }],
  BackendCalled: [
    { task: 't', kind: 'http', backend: 'b', key: 'k', status: 'ok', httpStatus: 200, attempts: 1, latencyMs: 5, result: { a: 1 } },
    { task: 't', kind: 'sms', backend: 'b', key: 'k', status: 'error', httpStatus: null, attempts: 0, latencyMs: 5, result: null, error: 'no' },
  ],
  FlowTransferred: [{ task: 't', to: 'operator' }],
  FlowEnded: [{ task: null, reason: 'completed' }],
};

const envelopeOf = (type: EventType, data: unknown) => ({
  eventId: uuid,
  conversationId: 'c1',
  seq: 1,
  schemaVersion: 1,
  occurredAt: '2026-01-01T00:00:00.000Z',
  causationId: null,
  correlationId: 'req-1',
  traceparent: null,
  type,
  data,
});

/** Values a field may be given instead of its own, valid or not. */
const ODD: unknown[] = [undefined, null, '', 'x', uuid, uuid.toUpperCase(), `${uuid}0`, 0, -1, 1, 1.5, -0, 2 ** 53, NaN, Infinity, true, false, [], [1], {}, { a: 1 }, 'model', 'voice', 'api', 'ok', 'say', JSON.parse('{"__proto__": {"a": 1}, "b": 2}')];

/** Each input's mutations: every field dropped, every field set to each odd value, an unknown field added. */
function* mutations(input: Record<string, unknown>): Generator<unknown> {
  yield input;
  yield { ...input, extra: 1 };
  yield { __proto__: null, ...input };
  for (const key of Object.keys(input)) {
    const { [key]: _, ...rest } = input;
    yield rest;
    for (const v of ODD) yield { ...input, [key]: v };
    const inner = input[key];
    if (inner && typeof inner === 'object' && !Array.isArray(inner)) for (const m of mutations(inner as Record<string, unknown>)) yield { ...input, [key]: m };
  }
  for (const v of [null, [], 'x', 1, Object.create(null), { constructor: {} }, { constructor: 1 }]) yield v;
}

/** Object keys in order and each object's prototype, all the way down: zod's output has its schema's order, which toStrictEqual does not compare. */
const order = (v: unknown): unknown => (v && typeof v === 'object' && !Array.isArray(v) ? [Object.getPrototypeOf(v), Object.entries(v).map(([k, x]) => [k, order(x)])] : v);

function same(schema: z.ZodType, input: unknown): void {
  const want = schema.safeParse(input);
  const got = fastSafeParse(schema)(input);
  expect(got.success).toBe(want.success);
  if (want.success && got.success) {
    expect(got.data).toStrictEqual(want.data);
    expect(order(got.data)).toStrictEqual(order(want.data));
  } else expect(got.error?.issues).toStrictEqual(want.error?.issues);
}

describe('the event schemas, compiled', () => {
  it('compiles the envelope and every type\'s data schema (none is left to zod alone)', () => {
    expect(isCompiled(RawEnvelope)).toBe(true);
    for (const type of EVENT_TYPES) expect(isCompiled(EventData[type]), type).toBe(true);
  });

  it('gives zod\'s result for every valid data, and for each of its mutations, valid or not', () => {
    let inputs = 0;
    for (const type of EVENT_TYPES) {
      for (const valid of VALID[type]) {
        expect(EventData[type].safeParse(valid).success, `${type} sample`).toBe(true);
        for (const m of mutations(valid)) {
          same(EventData[type], m);
          inputs++;
        }
      }
    }
    expect(inputs).toBeGreaterThan(3000);
  });

  it('gives zod\'s result for envelopes, valid or not', () => {
    for (const type of EVENT_TYPES) for (const m of mutations(envelopeOf(type, VALID[type][0]))) same(RawEnvelope, m);
    same(RawEnvelope, { ...envelopeOf('PromptReceived', {}), type: 'NoSuchType' });
  });

  it('takes the compiled path for valid input: zod is not called', () => {
    const schema = EventData.ReplyGenerated;
    const parse = fastSafeParse(schema);
    const zod = schema.safeParse.bind(schema);
    let calls = 0;
    schema.safeParse = ((input: unknown) => {
      calls++;
      return zod(input);
    }) as typeof schema.safeParse;
    try {
      expect(parse(VALID.ReplyGenerated[0]).success).toBe(true);
      expect(calls).toBe(0);
      expect(parse({ ...VALID.ReplyGenerated[0], promptSeq: 0 }).success).toBe(false);
      expect(calls).toBe(1);
    } finally {
      schema.safeParse = zod;
    }
  });

  it('leaves to zod a schema with what it does not compile (a refinement, a transform, a union, a schema that is itself a check, a length zod counts in code points)', () => {
    for (const schema of [
      z.object({ a: z.string().refine((s) => s !== 'b') }), z.object({ a: z.string().transform((s) => s.length) }), z.union([z.string(), z.number()]), z.string().email(),
      z.object({ a: z.uuid() }), z.object({ a: z.int() }), z.object({ a: z.int32() }), z.object({ a: z.email() }), z.object({ a: z.iso.datetime() }), z.object({ a: z.string().min(2) }),
    ]) {
      expect(isCompiled(schema)).toBe(false);
      for (const v of ['b', 'c', { a: 'b' }, { a: 'c' }, 1, 'a@b.co', { a: 'not-a-uuid' }, { a: uuid }, { a: 1.5 }, { a: 2 ** 40 }, { a: 'nope' }, { a: 'a@b.co' }, { a: '😀' }, { a: '2026-12-02T16:00:00Z' }]) same(schema, v);
    }
  });

  it('gives a fresh default each time, as zod does', () => {
    const parse = fastSafeParse(EventData.ConversationStarted);
    const a = parse(VALID.ConversationStarted[1]);
    const b = parse(VALID.ConversationStarted[1]);
    expect(a.success && b.success && a.data.metadata !== b.data.metadata).toBe(true);
  });
});
