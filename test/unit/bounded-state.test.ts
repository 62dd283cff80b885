// A conversation's state does not grow with its length: it keeps the last messages, counters
// instead of the transcript, and bounded pending work; states stored by the version before
// (the whole transcript, no counters) are read and cut to size.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../actors/commands.ts';
import type { Command } from '../../actors/commands.ts';
import { decide } from '../../actors/decide.ts';
import { recentHistory } from '../../actors/effects.ts';
import { createRecovery } from '../../actors/recovery.ts';
import { fold, initialState, keptMessages, keptWith, MAX_PENDING_AUDIO, MAX_PENDING_PROMPTS, RECENT_COMMANDS } from '../../actors/state.ts';
import type { ConversationState, Message } from '../../actors/state.ts';
import { TailIndex } from '../../actors/tail.ts';
import { envelope } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';
import type { EventLog } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { parseSnapshot } from '../../stores/snapshots/validate.ts';

const twin = { id: 'warren-buffett-001', name: 'Warren Buffett' };
const meta = () => ({ commandId: randomUUID(), conversationId: 'c1', correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString() });
const prompt = (text: string): Command => ({ ...meta(), type: 'SubmitPrompt', data: { twin, text } });
const reply = (promptSeq: number, audio = false): Command => ({ type: 'RecordReply', promptSeq, text: `answer to ${promptSeq}`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio });

/** Applies commands through decide and the fold, as the actor host does. */
function run(state: ConversationState, commands: Command[], keep = 40): ConversationState {
  let s = state;
  for (const c of commands) {
    const events = decide(c, s);
    s = fold('c1', envelope('c1', s.seq, events, { causationId: 'commandId' in c ? c.commandId : null, correlationId: null, traceparent: null, now: new Date(0), newId: randomUUID }), s, keep);
  }
  return s;
}

/** The events of a conversation of `prompts` answered prompts. */
function conversation(prompts: number): EventEnvelope[] {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: twin.id, twinName: twin.name, userId: null, metadata: {} } }];
  for (let i = 0; i < prompts; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `What do you think of company number ${i} and its moat over the next decade?`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `Company ${i} has a durable moat; I would hold it for decades if the price is right and management is honest.`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } });
  }
  return envelope('c1', 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(0), newId: randomUUID });
}

const rejects = (f: () => unknown, code: string) => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
};

describe('the bounded state', () => {
  it('keeps the last 40 messages and counts the rest, however long the conversation', () => {
    const s = fold('c1', conversation(5_000));
    expect(s.messages).toHaveLength(40);
    expect(s.messages.at(-1)!.seq).toBe(10_001);
    expect(s).toMatchObject({ prompts: 5_000, replies: 5_000, seq: 10_001 });
    expect(JSON.stringify(s).length).toBeLessThan(32 * 1024);
    // `gemello state --at` folds with the whole transcript.
    expect(fold('c1', conversation(100), undefined, Infinity).messages).toHaveLength(200);
  });

  it('keeps the history of the oldest prompt still waiting for its reply', () => {
    let s = run(initialState('c1'), [prompt('p0')]);
    s = run(s, [reply(2)]);
    for (let i = 1; i <= 30; i++) s = run(s, [prompt(`q${i}`), reply(s.seq + 1)], 10);
    // Five prompts in line; the model answers the first with the 10 messages up to it.
    for (let i = 0; i < 5; i++) s = run(s, [prompt(`waiting ${i}`)], 10);
    const oldest = s.pendingPrompts[0]!;
    expect(recentHistory(s.messages, oldest, 10).map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, i) => oldest - 9 + i));
    expect(s.messages.length).toBeLessThanOrEqual(10 + MAX_PENDING_PROMPTS + 2 * MAX_PENDING_AUDIO);
  });

  it('adds a message and cuts the list as keptMessages does, made as one array (keptWith)', () => {
    // Pseudo-random but the same each run: lists, pending prompts and audio anywhere in them or before.
    // A 32-bit LCG in integer arithmetic (Math.imul), its high bits scaled to [0, n).
    let x = 7;
    const rand = (n: number) => Math.floor(((x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32) * n);
    for (let round = 0; round < 3_000; round++) {
      const length = rand(90);
      const first = 1 + rand(50);
      const messages: Message[] = Array.from({ length }, (_, i) => ({ seq: first + i * (1 + rand(2)), role: i % 2 ? 'assistant' : 'user', content: `m${i}` }));
      const m: Message = { seq: (messages.at(-1)?.seq ?? first) + 1, role: 'user', content: 'new' };
      const seqs = [...messages.map((e) => e.seq), m.seq, first - 1];
      // None, or 1–3 entries anywhere in the list (so the first and the last of them differ).
      const pick = () => (rand(3) ? [] : Array.from({ length: 1 + rand(3) }, () => seqs[rand(seqs.length)]!));
      const pendingPrompts = pick();
      const pendingAudio = pick();
      for (const keep of [0, 1, 2, 5, 40, 41, 89, Infinity]) {
        const want = keptMessages([...messages, m], pendingPrompts, pendingAudio, keep);
        const got = keptWith(messages, m, pendingPrompts, pendingAudio, keep);
        expect(got).toStrictEqual(want);
        expect(Object.keys(got)).toEqual(Object.keys(want));
      }
    }
  });

  it('keeps the state\'s keys in their order as it folds (a snapshot of the same state is the same JSON)', () => {
    const s = fold('c1', conversation(50));
    expect(Object.keys(s)).toEqual(Object.keys(initialState('c1')));
  });

  it('refuses a prompt while 16 wait for their replies (`busy`), and takes it once one is answered', () => {
    let s = run(initialState('c1'), [prompt('first')]);
    for (let i = 1; i < MAX_PENDING_PROMPTS; i++) s = run(s, [prompt(`p${i}`)]);
    expect(s.pendingPrompts).toHaveLength(MAX_PENDING_PROMPTS);
    rejects(() => decide(prompt('one too many'), s), 'busy');
    s = run(s, [reply(s.pendingPrompts[0]!)]);
    expect(decide(prompt('now'), s).map((e) => e.type)).toEqual(['PromptReceived']);
  });

  it('gives a reply AudioFailed at once when 8 replies already wait for their speech', () => {
    let s = run(initialState('c1'), [prompt('first'), reply(2, true)]);
    for (let i = 1; i < MAX_PENDING_AUDIO; i++) s = run(s, [prompt(`p${i}`), reply(s.seq + 1, true)]);
    expect(s.pendingAudio).toHaveLength(MAX_PENDING_AUDIO);
    s = run(s, [prompt('more')]);
    const events = decide(reply(s.seq, true), s);
    expect(events.map((e) => e.type)).toEqual(['ReplyGenerated', 'AudioFailed']);
    expect(events[1]!.data).toMatchObject({ replySeq: s.seq + 1, reason: expect.stringContaining('speech is behind') });
    s = run(s, [reply(s.seq, true)]);
    expect(s.pendingAudio).toHaveLength(MAX_PENDING_AUDIO);
  });

  it('refuses confirmed data past its bound', () => {
    const s = run(initialState('c1'), [prompt('hi')]);
    const confirm = (data: Record<string, unknown>): Command => ({ ...meta(), type: 'ConfirmData', data: { data } });
    rejects(() => decide(confirm(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i]))), s), 'invalid_data');
    rejects(() => decide(confirm({ notes: 'x'.repeat(9000) }), s), 'invalid_data');
    expect(decide(confirm({ name: 'Ada' }), s).map((e) => e.type)).toEqual(['DataConfirmed']);
  });

  it('remembers the last 64 commands, the newest last, each once', () => {
    const asked = (id: string): Command => ({ ...meta(), commandId: id, type: 'SubmitPrompt', data: { twin, text: `question ${id}` } });
    const commands = Array.from({ length: 70 }, (_, i) => asked(`cmd-${i}`));
    // Each prompt answered before the next, so none is refused as busy.
    let s = initialState('c1');
    for (const c of commands) {
      const waiting = run(s, [c]);
      s = run(waiting, [reply(waiting.seq)]);
    }
    expect(s.recentCommands).toEqual(commands.slice(-RECENT_COMMANDS).map((c) => ('commandId' in c ? c.commandId : '')));
    // A command seen again (a retry) is not remembered twice.
    expect(run(s, [asked('cmd-69')]).recentCommands).toEqual(s.recentCommands);
  });

  it('counts an erased conversation\'s prompts and replies from its counters', () => {
    const s = fold('c1', conversation(300));
    const [erased] = decide({ ...meta(), type: 'EraseConversation', data: { by: 'op', via: 'cli', reason: null, asOperator: true } }, s);
    expect(erased!.data).toMatchObject({ prompts: 300, replies: 300 });
  });
});

describe('a snapshot written before the state was bounded', () => {
  /** The snapshot as the version before wrote it: the whole transcript, no counters. */
  function oldSnapshot(prompts: number): string {
    const events = conversation(prompts);
    const { prompts: _p, replies: _r, ...state } = fold('c1', events, undefined, Infinity);
    const last = events.length - 1;
    return JSON.stringify({ conversationId: 'c1', seq: state.seq, eventId: state.lastEventId, position: { partition: 0, offset: last }, state });
  }

  it('is read with counters taken from its transcript', () => {
    const snap = parseSnapshot('c1', oldSnapshot(500));
    expect(snap.state).toMatchObject({ prompts: 500, replies: 500, seq: 1001 });
  });

  it('recovers a state that keeps the last 40 messages and folds on', async () => {
    const snapshots = createMemorySnapshotStore();
    snapshots.raw.set('c1', oldSnapshot(500));
    const log = { read: async () => 0 } as unknown as EventLog;
    const recovery = createRecovery({ log, snapshots, readModel: null, historyMessages: 40 });
    const r = await recovery.recover('c1', 0, new TailIndex(1001));
    expect(r.tier).toBe('snapshot');
    expect(r.state.messages).toHaveLength(40);
    expect(r.state).toMatchObject({ prompts: 500, replies: 500 });
    const next = run(r.state, [prompt('after the upgrade')]);
    expect(next).toMatchObject({ prompts: 501, seq: 1002 });
    expect(next.messages).toHaveLength(40);
  });
});
