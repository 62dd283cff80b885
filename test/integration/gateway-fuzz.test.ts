// Whatever a client sends, the gateway answers, stays up, keeps the socket usable, and
// puts nothing on the log that is not a valid command for a valid frame. A live gateway
// (the real CLI as a child process) on real Kafka, Postgres and Redis; fast-check makes
// the frames: arbitrary text and bytes, huge and deeply nested frames, wrong types for
// every field, prototype keys, unicode, lone surrogates.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCommand } from '../../sealing/commands.ts';
import { WireCommand } from '../../actors/commands.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { kafkaLog } from '../support/kafka.ts';
import type { LogRecord } from '../../log/port.ts';
import { createPostgresDb } from '../../stores/db-postgres.ts';
import { testKeyStore } from '../support/keys.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS } from '../support/env.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';
import type { Frame } from '../support/ws-client.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const RUNS = Number(process.env.FUZZ_RUNS ?? 280);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);

let namespace: string;
let schema: string;
let fake: FakeOpenAI;
let gemello: Gemello;
let port: number;

beforeAll(async () => {
  ({ namespace, schema, fake, gemello, port } = await startServeWithFakeModel('fz', {
    // The fuzzer sends as fast as the gateway answers; the rate limit has its own test.
    GEMELLO_RATE_PER_SEC: '100000',
    GEMELLO_RATE_BURST: '100000',
  }));
});

afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

// ---- an oracle for the protocol of DESIGN §4, written apart from gateway/protocol.ts ----

type Expect = 'error' | 'prompt' | 'confirm' | 'resume';
const catalog = createTwinCatalog();
const MAX_BYTES = 64 * 1024;
const isId = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= 200;
const cleanText = (s: string) => s.isWellFormed() && !s.includes('\u0000');
function tidy(v: unknown, depth = 1): boolean {
  if (typeof v === 'string') return cleanText(v);
  if (v === null || typeof v !== 'object') return true;
  if (depth > 16) return false;
  if (Array.isArray(v)) return v.every((x) => tidy(x, depth + 1));
  return Object.entries(v).every(([k, x]) => k !== '__proto__' && cleanText(k) && tidy(x, depth + 1));
}
function jsonValueOk(v: unknown): boolean {
  if (typeof v === 'string') return v.length <= 10_000;
  if (v === null || typeof v !== 'object') return true;
  if (Array.isArray(v)) return v.length <= 100 && v.every(jsonValueOk);
  return Object.entries(v).every(([k, x]) => k.length <= 100 && jsonValueOk(x));
}
const onlyKeys = (o: object, keys: string[]) => Object.keys(o).every((k) => keys.includes(k));

/** What the gateway must do with a frame: answer with an error at once, or take it. */
function expected(frame: string | Uint8Array): Expect {
  if (typeof frame !== 'string') return 'error';
  if (Buffer.byteLength(frame) > MAX_BYTES) return 'error';
  let f: unknown;
  try {
    f = JSON.parse(frame);
  } catch {
    return 'error';
  }
  if (typeof f !== 'object' || f === null || Array.isArray(f) || !tidy(f)) return 'error';
  const o = f as Record<string, unknown>;
  if (o.requestId !== undefined && !isId(o.requestId)) return 'error';
  if (o.type === undefined || o.type === 'prompt') {
    if (!onlyKeys(o, ['type', 'digitalTwinId', 'digitalTwinName', 'prompt', 'conversationId', 'requestId', 'userId'])) return 'error';
    for (const k of ['digitalTwinId', 'digitalTwinName', 'conversationId', 'userId']) if (o[k] !== undefined && !isId(o[k])) return 'error';
    if (typeof o.prompt !== 'string' || o.prompt.trim().length < 1 || o.prompt.trim().length > 8000) return 'error';
    if (o.digitalTwinId === undefined && o.digitalTwinName === undefined) return 'error';
    return catalog.find(o.digitalTwinId as string | undefined, o.digitalTwinName as string | undefined) ? 'prompt' : 'error';
  }
  if (o.type === 'confirm') {
    if (!onlyKeys(o, ['type', 'conversationId', 'data', 'requestId']) || !isId(o.conversationId)) return 'error';
    const d = o.data;
    if (typeof d !== 'object' || d === null || Array.isArray(d)) return 'error';
    const keys = Object.keys(d);
    if (keys.length < 1 || keys.length > 50 || keys.some((k) => k.length < 1 || k.length > 100) || !Object.values(d).every(jsonValueOk)) return 'error';
    return 'confirm';
  }
  if (o.type === 'resume') {
    if (!onlyKeys(o, ['type', 'conversationId', 'afterSeq', 'requestId']) || !isId(o.conversationId)) return 'error';
    if (o.afterSeq !== undefined && !(Number.isSafeInteger(o.afterSeq) && (o.afterSeq as number) >= 0)) return 'error';
    return 'resume';
  }
  return 'error';
}

// ---- the frames ----

const deep = (n: number, leaf = '1') => '{"a":'.repeat(n) + leaf + '}'.repeat(n);
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const big = (bytes: number) => JSON.stringify({ ...seed, prompt: 'x'.repeat(bytes) });
let unique = 0;

const FIXED: Array<string | Uint8Array> = [
  '', ' ', 'null', '[]', '{}', '"hi"', '42', 'true', '{"type":null}', '{"type":"PROMPT"}', '{"type":["prompt"]}',
  big(100_000), big(900_000), new Uint8Array(100_000), new Uint8Array(900_000).fill(0x7b),
  JSON.stringify({ ...seed, prompt: 'y'.repeat(MAX_BYTES - 80) }), // just under the limit: too long a prompt
  JSON.stringify({ ...seed, prompt: '€'.repeat(22_000) }), // 22k characters, 66 KB
  deep(10_000), deepArray(10_000), `{"type":"confirm","conversationId":"c","data":{"k":${deep(10_000)}}}`,
  `{"digitalTwinId":"${seed.digitalTwinId}","prompt":${deep(10_000, '"p"')}}`, `{"digitalTwinId":"${seed.digitalTwinId}","prompt":"hi","requestId":${deepArray(10_000)}}`,
  `{"digitalTwinId":"${seed.digitalTwinId}","prompt":"\\ud800 lone surrogate"}`, `{"digitalTwinId":"${seed.digitalTwinId}","prompt":"nul\\u0000"}`,
  `{"digitalTwinId":"${seed.digitalTwinId}","conversationId":"\\udfff","prompt":"hi"}`, `{"type":"confirm","conversationId":"c","data":{"\\ud83d":1}}`,
  `{"__proto__":{"type":"resume"},"digitalTwinId":"${seed.digitalTwinId}","prompt":"hi"}`, `{"type":"confirm","conversationId":"c","data":{"__proto__":{"isAdmin":true}}}`,
  `{"constructor":{"prototype":{"polluted":1}},"digitalTwinId":"${seed.digitalTwinId}","prompt":"hi"}`, `{"type":"confirm","conversationId":"c","data":{"constructor":{"prototype":{"x":1}}}}`,
  `{"type":"resume","conversationId":"c","afterSeq":1e400}`, `{"type":"resume","conversationId":"c","afterSeq":-0}`, '{"type":"resume","conversationId":"c","afterSeq":"1"}',
  JSON.stringify({ ...seed, prompt: '   \n\t ' }), JSON.stringify({ digitalTwinName: 'Warren Buffett', prompt: '👩‍👩‍👧 ﷽ 𝕏 \u202e' }),
];

const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.double(), fc.constantFrom(null, true, 0, -1, '', [], {}));
const field = <T,>(good: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 3, arbitrary: good }, { weight: 2, arbitrary: anyValue }), { nil: undefined });
const ids = fc.oneof(fc.constantFrom(seed.digitalTwinId, 'nobody', '', 'x'.repeat(201)), fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }));
const protoFrame = fc.record({
  type: field(fc.constantFrom('prompt', 'confirm', 'resume', 'audio', 'PROMPT')),
  digitalTwinId: field(ids),
  digitalTwinName: field(fc.constantFrom(seed.digitalTwinName, 'Nobody')),
  prompt: field(fc.string({ unit: 'binary', maxLength: 200 })),
  conversationId: field(ids),
  requestId: field(fc.string({ minLength: 1, maxLength: 20 })),
  afterSeq: field(fc.integer({ min: -3, max: 50 })),
  data: field(fc.dictionary(fc.string({ unit: 'binary', maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })),
  userId: field(ids),
}, { requiredKeys: [] }).map((f) => JSON.stringify(f));
const withKey = fc.tuple(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'), anyValue, protoFrame)
  .map(([k, v, rest]) => `{${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}${rest === '{}' ? '' : ','}${rest.slice(1)}`);
const validPrompt = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }).filter((s) => s.trim().length > 0)
  .map((prompt) => JSON.stringify({ ...seed, prompt, requestId: `valid-${++unique}` }));
const validConfirm = fc.record({ conversationId: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), data: fc.dictionary(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 5 }) })
  .map((f) => JSON.stringify({ type: 'confirm', ...f, requestId: `valid-${++unique}` }));
const validResume = fc.record({ conversationId: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), afterSeq: fc.nat() })
  .map((f) => JSON.stringify({ type: 'resume', ...f, requestId: `valid-${++unique}` }));
const frames: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 1, arbitrary: validConfirm },
  { weight: 1, arbitrary: validResume },
  { weight: 4, arbitrary: protoFrame },
  { weight: 2, arbitrary: withKey },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2_000 }) },
  { weight: 2, arbitrary: validPrompt },
);

type Sent = { i: number; frame: string | Uint8Array; expect: Expect; parsed: Record<string, unknown> | null; syncAnswers: Frame[] };
const show = (f: string | Uint8Array) => (typeof f === 'string' ? (f.length > 200 ? `${f.slice(0, 200)}… (${f.length} chars)` : f) : `<${f.byteLength} bytes>`);

describe(`the gateway under fuzzed frames (fast-check seed ${SEED}; FUZZ_SEED to replay)`, () => {
  it('answers every frame, keeps the socket and the process alive, and logs only valid commands', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const all = [...FIXED, ...fc.sample(frames, { numRuns: RUNS, seed: SEED })];
    const sent: Sent[] = [];
    const t0 = Date.now();
    for (const [i, frame] of all.entries()) {
      const expect_ = expected(frame);
      let parsed: Record<string, unknown> | null = null;
      if (expect_ !== 'error') parsed = JSON.parse(frame as string);
      const from = client.frames.length;
      if (typeof frame === 'string') client.ws.send(frame);
      else client.ws.send(frame, { binary: true });
      // The probe is a frame the gateway refuses at once; frames are handled in order, so an
      // answer given at once to the fuzzed frame comes before the probe's.
      const probe = `probe-${i}`;
      client.send({ type: 'resume', conversationId: 'probe', afterSeq: -1, requestId: probe });
      const end = Date.now() + 10_000;
      let at = -1;
      while ((at = client.frames.findIndex((f, j) => j >= from && f.requestId === probe)) < 0) {
        if (client.closed()) throw new Error(`socket closed ${JSON.stringify(client.closed())} after frame #${i}: ${show(frame)}`);
        if (gemello.child.exitCode !== null) throw new Error(`the gateway died after frame #${i}: ${show(frame)}\n${gemello.output().slice(-2000)}`);
        if (Date.now() > end) throw new Error(`no answer to the probe after frame #${i}: ${show(frame)}`);
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(client.frames[at]).toMatchObject({ type: 'error', code: 'invalid_frame' });
      const syncAnswers = client.frames.slice(from, at).filter((f) => f.type === 'error' && (f.conversationId === undefined || f.code === 'invalid_data'));
      sent.push({ i, frame, expect: expect_, parsed, syncAnswers });
      const why = `frame #${i}: ${show(frame)}; answers ${JSON.stringify(syncAnswers).slice(0, 500)}`;
      if (expect_ === 'error') {
        expect(syncAnswers, why).toHaveLength(1);
        expect(syncAnswers[0], why).toMatchObject({ type: 'error', code: expect.stringMatching(/^[a-z_]+$/), error: expect.any(String) });
      } else if (expect_ !== 'confirm') {
        // A twin's declared fields may refuse a confirm at once (invalid_data); nothing else.
        expect(syncAnswers, why).toHaveLength(0);
      }
    }
    const fuzzMs = Date.now() - t0;

    // Frames the gateway took are answered too, once the log has carried them through.
    const taken = sent.filter((s) => s.expect !== 'error' && !(s.expect === 'confirm' && s.syncAnswers.length));
    const answered = (s: Sent) => {
      const p = s.parsed!;
      if (typeof p.requestId === 'string') return client.frames.some((f) => f.requestId === p.requestId && !String(f.requestId).startsWith('probe-') && f !== s.syncAnswers[0]);
      if (s.expect === 'prompt') return true; // counted below
      return client.frames.some((f) => f.conversationId === p.conversationId && (f.type === 'resumed' || f.type === 'error' || f.type === 'data.confirmed'));
    };
    const deadline = Date.now() + 20_000;
    while (taken.some((s) => !answered(s)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(taken.filter((s) => !answered(s)).map((s) => show(s.frame))).toEqual([]);
    const anonymousPrompts = taken.filter((s) => s.expect === 'prompt' && typeof s.parsed!.requestId !== 'string').length;
    // A reply, or an error about its conversation: the model failed, or the conversation had too
    // many prompts waiting (busy: the fuzzer sends faster than a loaded machine answers).
    const anonymousReplies = () => client.frames.filter((f) => (f.type === 'reply' || f.code === 'model_failed' || f.code === 'busy') && f.requestId === undefined).length;
    for (const end = Date.now() + 20_000; anonymousReplies() < anonymousPrompts && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    // What the socket was told of its conversations, and what the gateway logged: a missing answer says where it stopped.
    const told = () => client.frames.filter((f) => !String(f.requestId ?? '').startsWith('probe-') && f.code !== 'invalid_frame' && !(f.type === 'error' && f.conversationId === undefined && f.code !== 'unavailable' && f.code !== 'internal'))
      .map((f) => `${f.type}${f.code ? `/${f.code}` : ''} ${String(f.conversationId ?? '-').slice(0, 12)} seq ${f.seq ?? '-'} rid ${f.requestId ?? '-'}${f.error ? `: ${String(f.error).slice(0, 120)}` : ''}`);
    expect(anonymousReplies(), `answers to prompts without a requestId (${anonymousPrompts} sent):\n${told().join('\n')}\n--- gateway:\n${gemello.output().slice(-4000)}`).toBeGreaterThanOrEqual(anonymousPrompts);

    // The socket is still usable, and so is a new one; the process lives.
    client.send({ ...seed, prompt: 'still there?', requestId: 'after-fuzz' });
    const last = await client.next((f) => f.requestId === 'after-fuzz' && f.type === 'reply');
    expect(last).toMatchObject({ reply: 'echo: still there?', ...seed });
    expect(client.closed()).toBeNull();
    client.close();
    const other = await connect(`ws://127.0.0.1:${port}/`);
    other.send({ ...seed, prompt: 'and a new socket' });
    expect(await other.next((f) => f.type === 'reply')).toMatchObject({ reply: 'echo: and a new socket' });
    other.close();
    expect(gemello.child.exitCode).toBeNull();
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);

    // The projections kept up: nothing the fuzzer sent wedged the read model.
    const conv = last.conversationId as string;
    let view: { messages?: { content: string }[] } = {};
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      const res = await fetch(`http://127.0.0.1:${port}/api/conversations/${encodeURIComponent(conv)}`);
      if (res.ok) view = (await res.json()) as typeof view;
      if (view.messages?.some((m) => m.content === 'echo: still there?')) break;
    }
    expect(view.messages?.map((m) => m.content)).toContain('echo: still there?');

    // Nothing unvalidated reached the log: every command parses, and each is one a valid frame asked for.
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: 12, namespace });
    const records: LogRecord[] = [];
    try {
      for (let p = 0; p < 12; p++) await log.read('gemello.commands', p, 0, (rs) => void records.push(...rs));
    } finally {
      await log.close();
    }
    // Prompts and confirmed data travel sealed with their conversation's key: opened with it, they must be what was asked.
    const db = createPostgresDb({ url: DATABASE_URL, schema });
    const keys = await testKeyStore(log, db).get(records.map((r) => r.key)).finally(() => db.close());
    const commands = records.map((r) => {
      const parsed = WireCommand.safeParse(JSON.parse(r.value));
      expect(parsed.success, `record ${r.partition}/${r.offset}: ${r.value.slice(0, 300)}`).toBe(true);
      expect(r.key).toBe(parsed.data!.conversationId);
      const opened = openCommand(parsed.data!, keys.get(r.key));
      expect(opened, `record ${r.partition}/${r.offset} does not open with its conversation's key`).not.toBeNull();
      return opened!;
    });
    const prompts = taken.filter((s) => s.expect === 'prompt').map((s) => s.parsed!);
    const confirms = taken.filter((s) => s.expect === 'confirm').map((s) => s.parsed!);
    const submitted = commands.filter((c) => c.type === 'SubmitPrompt');
    const confirmed = commands.filter((c) => c.type === 'ConfirmData');
    expect(commands.filter((c) => c.type === 'StartConversation')).toEqual([]);
    for (const c of submitted) {
      const from = [...prompts, { prompt: 'still there?', requestId: 'after-fuzz' }, { prompt: 'and a new socket' }];
      expect(from.some((p) => (p.prompt as string).trim() === c.data.text && (p.requestId ?? null) === c.correlationId), `unasked-for prompt ${JSON.stringify(c)}`).toBe(true);
    }
    expect(submitted).toHaveLength(prompts.length + 2);
    for (const c of confirmed) {
      expect(confirms.some((p) => p.conversationId === c.conversationId && JSON.stringify(p.data) === JSON.stringify(c.data.data)), `unasked-for confirm ${JSON.stringify(c)}`).toBe(true);
    }
    expect(confirmed).toHaveLength(confirms.length);
    console.log(`fuzz: ${all.length} frames in ${fuzzMs} ms (${sent.filter((s) => s.expect === 'error').length} refused, ${prompts.length} prompts, ${confirms.length} confirms, ${taken.filter((s) => s.expect === 'resume').length} resumes taken); ${records.length} commands on the log`);
  }, 90_000);

  it('answers a conversation id no conversation can have, and a bad afterSeq, with 400 on every HTTP route, asking nothing of the log', async () => {
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    client.send({ ...seed, prompt: 'for the routes' });
    const conv = (await client.next((f) => f.type === 'reply')).conversationId as string;
    client.close();
    // Once projected, the events after seq 1 are the prompt and its reply.
    const eventsAfter = async (afterSeq: string) => {
      const body: unknown = await (await fetch(url(`/api/conversations/${conv}/events?afterSeq=${afterSeq}`))).json();
      return Array.isArray(body) ? (body as { seq: number }[]) : []; // not projected yet: 404
    };
    let projected: { seq: number }[] = [];
    for (const end = Date.now() + 10_000; projected.length < 2 && Date.now() < end; await new Promise((r) => setTimeout(r, 100))) projected = await eventsAfter('1');
    expect(projected.map((e) => e.seq)).toEqual([2, 3]);
    const commandsBefore = async () => {
      const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: 12, namespace });
      try {
        return (await log.endOffsets('gemello.commands')).reduce((a, b) => a + b, 0);
      } finally {
        await log.close();
      }
    };
    const before = await commandsBefore();
    for (const bad of ['%00', `a%00b`, 'b'.repeat(201)]) {
      for (const [method, path] of [['GET', `/api/conversations/${bad}`], ['GET', `/api/conversations/${bad}/events`], ['DELETE', `/api/conversations/${bad}`]] as const) {
        const t0 = Date.now();
        const res = await fetch(url(path), { method });
        expect(res.status, `${method} ${path.slice(0, 60)}`).toBe(400);
        expect(await res.json()).toMatchObject({ code: 'invalid_request', error: expect.stringMatching(/conversation id/) });
        expect(Date.now() - t0, 'answered at once, not after the erasure wait').toBeLessThan(5_000);
      }
    }
    // Audio ids follow the same rules (a NUL once reached the database as a 500).
    for (const bad of ['%00', 'x%00y', 'c'.repeat(201)]) {
      for (const path of [`/api/audio/${bad}`, `/api/conversations/${conv}/voice/${bad}`]) {
        const res = await fetch(url(path));
        expect(res.status, path.slice(0, 60)).toBe(400);
        expect(await res.json()).toMatchObject({ code: 'invalid_request', error: expect.stringMatching(/audio id/) });
      }
    }
    // A percent-escape that is not UTF-8 names nothing; read as written it aliased the id "%FF" (sent as %25FF).
    for (const path of ['/api/conversations/%FF', '/api/conversations/%ED%A0%80/events', '/api/audio/%C0']) {
      const res = await fetch(url(path));
      expect(res.status, path).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid_request', error: expect.stringMatching(/not UTF-8/) });
    }
    expect((await fetch(url('/api/conversations/%25FF'))).status).toBe(404);
    expect((await fetch(url(`/api/audio/${randomUUID()}`))).status).toBe(404);
    for (const afterSeq of ['1.5', '99999999999999999999', '-1', 'abc', '', '2147483648']) {
      const res = await fetch(url(`/api/conversations/${conv}/events?afterSeq=${afterSeq}`));
      expect(res.status, `afterSeq=${afterSeq}`).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid_request', error: expect.stringMatching(/afterSeq/) });
    }
    // Good ones still answer, as before: an id of 200 characters is a conversation not found.
    expect((await eventsAfter('2')).map((e) => e.seq)).toEqual([3]);
    expect((await fetch(url(`/api/conversations/${'b'.repeat(200)}`))).status).toBe(404);
    expect(await commandsBefore()).toBe(before);
    expect(gemello.output()).not.toMatch(/invalid byte sequence|out of range for type integer|invalid input syntax/);
  }, 60_000);
});
