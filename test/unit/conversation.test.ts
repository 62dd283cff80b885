import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decide } from '../../actors/decide.ts';
import { DomainError } from '../../actors/commands.ts';
import type { Command } from '../../actors/commands.ts';
import { evolve, fold, initialState, SeqGap } from '../../actors/state.ts';
import type { ConversationState } from '../../actors/state.ts';
import { decodeEventValue, encodeSealedEvent, envelope } from '../../events/codec.ts';
import { newDataKey } from '../../sealing/seal.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';

const twin = { id: 'warren-buffett-001', name: 'Warren Buffett' };
let n = 0;
const meta = (over: Partial<{ commandId: string; principal: string | null }> = {}) => ({
  commandId: over.commandId ?? `cmd-${++n}`,
  conversationId: 'c1',
  correlationId: 'req-1',
  principal: over.principal ?? null,
  traceparent: null,
  issuedAt: '2026-01-01T00:00:00.000Z',
});
const toEnvelopes = (state: ConversationState, events: DomainEvent[], causationId: string | null = null) =>
  envelope('c1', state.seq, events, { causationId, correlationId: null, traceparent: null, now: new Date(0), newId: () => crypto.randomUUID() });

/** given(events).when(command).then(events | error code) */
function given(...commands: Command[]) {
  let state = initialState('c1');
  for (const c of commands) state = fold('c1', toEnvelopes(state, decide(c, state), 'commandId' in c ? c.commandId : null), state);
  return {
    state,
    when: (command: Command) => ({
      then: (expected: Array<Pick<DomainEvent, 'type'> & { data?: object }>) => {
        const out = decide(command, state);
        expect(out.map((e) => e.type)).toEqual(expected.map((e) => e.type));
        expected.forEach((e, i) => e.data && expect(out[i]!.data).toMatchObject(e.data));
      },
      thenRejects: (code: string) => {
        try {
          decide(command, state);
        } catch (err) {
          expect(err).toBeInstanceOf(DomainError);
          expect((err as DomainError).code).toBe(code);
          return;
        }
        throw new Error(`expected a ${code} rejection`);
      },
    }),
  };
}

const prompt = (text: string, over = {}): Command => ({ ...meta(over), type: 'SubmitPrompt', data: { twin, text } });
const reply = (promptSeq: number, proposed?: Record<string, unknown>): Command => ({ type: 'RecordReply', promptSeq, text: 'hi', model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false, ...(proposed ? { proposed } : {}) });
const confirm = (data: Record<string, unknown>): Command => ({ ...meta(), type: 'ConfirmData', data: { data } });

describe('the conversation decider', () => {
  it('starts the conversation with the first prompt', () => {
    given().when(prompt('hello')).then([{ type: 'ConversationStarted', data: { twinId: twin.id } }, { type: 'PromptReceived', data: { text: 'hello' } }]);
  });

  it('answers a pending prompt exactly once', () => {
    const g = given(prompt('hello'), reply(2));
    expect(g.state.pendingPrompts).toEqual([]);
    g.when(reply(2)).then([]);
  });

  it('ignores a command delivered twice', () => {
    const cmd = prompt('again', { commandId: 'same' });
    given(prompt('hello'), cmd).when(cmd).then([]);
  });

  it('refuses a conversation to another principal', () => {
    given(prompt('hello', { principal: 'alice' })).when(prompt('hi', { principal: 'bob' })).thenRejects('forbidden');
  });

  it('refuses confirming data of a conversation that does not exist', () => {
    given().when({ ...meta(), type: 'ConfirmData', data: { data: { name: 'Ann' } } }).thenRejects('conversation_not_found');
  });

  it('refuses a prompt to another twin in the same conversation', () => {
    given(prompt('hello')).when({ ...meta(), type: 'SubmitPrompt', data: { twin: { id: 'other', name: 'Other' }, text: 'x' } }).thenRejects('twin_mismatch');
  });

  it('keeps confirmed data in the state', () => {
    const g = given(prompt('hello'), { ...meta(), type: 'ConfirmData', data: { data: { city: 'Omaha' } } });
    expect(g.state.confirmedData).toEqual({ city: 'Omaha' });
  });
});

describe('values the model proposes', () => {
  it('follow the reply that carried them, as DataProposed naming its seq', () => {
    given(prompt('I am Ann')).when(reply(2, { name: 'Ann' })).then([{ type: 'ReplyGenerated' }, { type: 'DataProposed', data: { replySeq: 3, data: { name: 'Ann' } } }]);
  });

  it('stay open in the state until confirmed; a confirm without data confirms them', () => {
    const g = given(prompt('I am Ann, ann@example.com'), reply(2, { name: 'Ann', email: 'ann@example.com' }));
    expect(g.state.proposal).toEqual({ seq: 4, data: { name: 'Ann', email: 'ann@example.com' } });
    g.when(confirm({})).then([{ type: 'DataConfirmed', data: { data: { name: 'Ann', email: 'ann@example.com' } } }]);
    const after = given(prompt('I am Ann, ann@example.com'), reply(2, { name: 'Ann', email: 'ann@example.com' }), confirm({}));
    expect(after.state.confirmedData).toEqual({ name: 'Ann', email: 'ann@example.com' });
    expect(after.state.proposal).toBeUndefined();
  });

  it('are settled by a confirmation of the same field with another value (the user corrected it)', () => {
    const g = given(prompt('I am Ann'), reply(2, { name: 'Ann', email: 'ann@example.com' }), confirm({ name: 'Anne' }));
    expect(g.state.confirmedData).toEqual({ name: 'Anne' });
    expect(g.state.proposal).toEqual({ seq: 4, data: { email: 'ann@example.com' } });
  });

  it('each show every open value, so the user confirms what the last one showed', () => {
    const g = given(prompt('I am Ann'), reply(2, { name: 'Ann' }), prompt('ann@example.com'), reply(5, { email: 'ann@example.com' }));
    expect(g.state.proposal).toEqual({ seq: 7, data: { name: 'Ann', email: 'ann@example.com' } });
  });

  it('are not proposed again when confirmed or already open with the same value', () => {
    const g = given(prompt('I am Ann'), reply(2, { name: 'Ann' }), confirm({}), prompt('ann@example.com'), reply(6, { name: 'Ann', email: 'ann@example.com' }), prompt('still Ann'));
    expect(g.state.proposal?.data).toEqual({ email: 'ann@example.com' });
    g.when(reply(9, { name: 'Ann', email: 'ann@example.com' })).then([{ type: 'ReplyGenerated' }]);
    g.when(reply(9, { name: 'Ann', email: 'ann@work.example' })).then([{ type: 'ReplyGenerated' }, { type: 'DataProposed', data: { data: { email: 'ann@work.example' } } }]);
  });

  it('are withdrawn when the model reads the confirmed value again', () => {
    // Confirmed Ann; the model then read Bob (open), then Ann again: Bob is no longer proposed.
    const g = given(prompt('I am Ann'), reply(2, { name: 'Ann' }), confirm({}), prompt('call me Bob'), reply(6, { name: 'Bob' }), prompt('no, Ann'));
    expect(g.state.proposal?.data).toEqual({ name: 'Bob' });
    g.when(reply(9, { name: 'Ann' })).then([{ type: 'ReplyGenerated' }, { type: 'DataProposed', data: { data: {} } }]);
    const after = given(prompt('I am Ann'), reply(2, { name: 'Ann' }), confirm({}), prompt('call me Bob'), reply(6, { name: 'Bob' }), prompt('no, Ann'), reply(9, { name: 'Ann' }));
    expect(after.state.proposal).toBeUndefined();
    after.when(confirm({})).thenRejects('invalid_data');
  });

  it('refuse a confirm of a proposal that a newer one replaced', () => {
    const g = given(prompt('I am Ann'), reply(2, { name: 'Ann' }), prompt('ann@example.com'), reply(5, { email: 'ann@example.com' }));
    g.when({ ...meta(), type: 'ConfirmData', data: { data: {}, proposalSeq: 4 } }).thenRejects('stale_proposal');
    g.when({ ...meta(), type: 'ConfirmData', data: { data: {}, proposalSeq: 7 } }).then([{ type: 'DataConfirmed', data: { data: { name: 'Ann', email: 'ann@example.com' } } }]);
  });

  it('refuses a confirm without data when nothing is proposed', () => {
    given(prompt('hello'), reply(2)).when(confirm({})).thenRejects('invalid_data');
  });

  it('are gone from the state once the conversation is erased', () => {
    const g = given(prompt('I am Ann'), reply(2, { name: 'Ann' }), { ...meta(), type: 'EraseConversation', data: { by: null, via: 'cli', reason: null, asOperator: true } });
    expect(g.state.proposal).toBeUndefined();
  });
});

describe('erasing a conversation', () => {
  const erase = (over: Partial<{ principal: string | null; asOperator: boolean }> = {}): Command => ({
    ...meta({ principal: over.principal ?? null }),
    type: 'EraseConversation',
    data: { by: over.principal ?? 'ops', via: over.asOperator ? 'cli' : 'api', reason: null, asOperator: over.asOperator ?? false },
  });
  const confirm = (): Command => ({ ...meta({ principal: 'alice' }), type: 'ConfirmData', data: { data: { city: 'Omaha', name: 'Ann' } } });

  it('records ConversationErased with who asked and how much content it covers', () => {
    given(prompt('hello', { principal: 'alice' }), reply(2), prompt('again', { principal: 'alice' }), confirm())
      .when(erase({ principal: 'alice' }))
      .then([{ type: 'ConversationErased', data: { by: 'alice', via: 'api', prompts: 2, replies: 1, confirmedFields: 2 } }]);
  });

  it('leaves nothing personal in the state, and no reply owed', () => {
    const g = given(prompt('hello'), reply(2), prompt('pending'), confirm(), erase());
    expect(g.state).toMatchObject({ messages: [], confirmedData: {}, pendingPrompts: [], pendingAudio: [], erased: { seq: 6, by: 'ops', prompts: 2, replies: 1, confirmedFields: 2 } });
    g.when(reply(4)).then([]); // the model's late answer to the pending prompt is dropped
  });

  it('refuses every later command of a client with conversation_erased', () => {
    const g = given(prompt('hello'), erase());
    g.when(prompt('still there?')).thenRejects('conversation_erased');
    g.when({ ...meta(), type: 'ConfirmData', data: { data: { city: 'Omaha' } } }).thenRejects('conversation_erased');
    g.when({ ...meta(), type: 'StartConversation', data: { twin, metadata: {} } }).thenRejects('conversation_erased');
  });

  it('is done once: erasing again appends nothing (the host checks the key and snapshot are gone)', () => {
    given(prompt('hello'), erase()).when(erase()).then([]);
  });

  it('lets only the owner erase through the API; the operator\'s CLI needs no principal', () => {
    given(prompt('hello', { principal: 'alice' })).when(erase({ principal: 'bob' })).thenRejects('forbidden');
    given(prompt('hello', { principal: 'alice' })).when(erase({ principal: null, asOperator: true })).then([{ type: 'ConversationErased', data: { via: 'cli' } }]);
  });

  it('refuses to erase a conversation that does not exist', () => {
    given().when(erase()).thenRejects('conversation_not_found');
  });
});

describe('the fold', () => {
  const events = (): EventEnvelope[] => {
    const s = initialState('c1');
    return toEnvelopes(s, [
      { type: 'ConversationStarted', data: { twinId: 't', twinName: 'T', userId: null, metadata: {} } },
      { type: 'PromptReceived', data: { text: 'a', requestId: null } },
    ]);
  };

  it('lets the first event with a seq win', () => {
    const [a, b] = events();
    const impostor = { ...b!, eventId: crypto.randomUUID(), data: { text: 'zombie', requestId: null } } as EventEnvelope;
    const s = fold('c1', [a!, b!, impostor]);
    expect(s.messages.map((m) => m.content)).toEqual(['a']);
  });

  it('refuses a gap in seq', () => {
    const [a, b] = events();
    expect(() => fold('c1', [a!, { ...b!, seq: 3 } as EventEnvelope])).toThrow(SeqGap);
  });

  it('rebuilds from the log the state the live actor had, for any command sequence', () => {
    const command = fc.oneof(
      fc.record({ kind: fc.constant('prompt' as const), text: fc.string({ minLength: 1, maxLength: 20 }), principal: fc.constantFrom(null, 'alice', 'bob') }),
      fc.record({ kind: fc.constant('confirm' as const), key: fc.constantFrom('name', 'city'), value: fc.string(), principal: fc.constantFrom(null, 'alice') }),
      fc.record({ kind: fc.constant('reply' as const), pick: fc.nat(5), proposed: fc.option(fc.dictionary(fc.constantFrom('name', 'city'), fc.constantFrom('Ann', 'Omaha', 'x')), { nil: undefined }) }),
      fc.record({ kind: fc.constant('confirmProposed' as const) }),
      fc.record({ kind: fc.constant('fail' as const), pick: fc.nat(5) }),
      fc.record({ kind: fc.constant('redeliver' as const) }),
      fc.record({ kind: fc.constant('erase' as const) }),
    );
    const key = newDataKey();
    const keyring = new Map([['c1', key]]);
    fc.assert(
      fc.property(fc.array(command, { maxLength: 40 }), (cmds) => {
        let live = initialState('c1');
        const log: EventEnvelope[] = [];
        let last: Command | null = null;
        for (const c of cmds) {
          let cmd: Command;
          if (c.kind === 'prompt') cmd = prompt(c.text, { principal: c.principal });
          else if (c.kind === 'confirm') cmd = { ...meta({ principal: c.principal }), type: 'ConfirmData', data: { data: { [c.key]: c.value } } };
          else if (c.kind === 'reply') cmd = reply(live.pendingPrompts[c.pick % Math.max(1, live.pendingPrompts.length)] ?? 1, c.proposed);
          else if (c.kind === 'confirmProposed') cmd = confirm({});
          else if (c.kind === 'fail') cmd = { type: 'RecordReplyFailure', promptSeq: live.pendingPrompts[0] ?? 1, reason: 'x', code: 'y', latencyMs: 0 };
          else if (c.kind === 'erase') cmd = { ...meta(), type: 'EraseConversation', data: { by: null, via: 'cli', reason: null, asOperator: true } };
          else if (last) cmd = last;
          else continue;
          last = cmd;
          try {
            const out = toEnvelopes(live, decide(cmd, live), 'commandId' in cmd ? cmd.commandId : null);
            for (const e of out) live = evolve(live, e);
            // What readers fold is what comes back from the log: sealed, encoded, decoded.
            log.push(...out.map((e) => decodeEventValue(encodeSealedEvent(e, key).value, keyring)));
          } catch (err) {
            if (!(err instanceof DomainError)) throw err;
          }
        }
        expect(fold('c1', log)).toEqual(JSON.parse(JSON.stringify(live)));
        expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
      }),
      { numRuns: 300 },
    );
  });
});
