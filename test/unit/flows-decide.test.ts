import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileFlow } from '../../flows/compile.ts';
import type { CompiledFlow, CompiledTask } from '../../flows/compile.ts';
import type { Condition } from '../../flows/definition.ts';
import { decideFlow, holds } from '../../flows/decide.ts';
import type { FlowInput } from '../../flows/decide.ts';
import { evolveFlow } from '../../flows/state.ts';
import type { FlowInputEvent, FlowState } from '../../flows/state.ts';
import { fold, initialState } from '../../actors/state.ts';
import type { ConversationState } from '../../actors/state.ts';
import { decodeEventValue, encodeSealedEvent, envelope } from '../../events/codec.ts';
import { newDataKey } from '../../sealing/seal.ts';
import { decide } from '../../actors/decide.ts';
import type { FlowSetting } from '../../actors/decide.ts';
import type { Command } from '../../actors/commands.ts';
import { createFlowRegistry } from '../../flows/registry.ts';

const compiled = (def: unknown, env = { backends: ['crm'], email: true, sms: true }): CompiledFlow => {
  const r = compileFlow(def, env);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.flow;
};
const reference = compiled(JSON.parse(readFileSync(new URL('../../flows/examples/onboarding.flow.json', import.meta.url), 'utf8')));
const NOW = '2026-12-01T10:00:00.000Z';
const ctx = (seq: number, model = false) => ({ conversationId: 'c1', seq, now: NOW, noInputSec: 30, model });
const text = (t: string): FlowInput => ({ type: 'text', text: t, requestId: null });

/** given(inputs).when(input).then(events): the flow's decider as a specification. */
function given(flow: CompiledFlow, ...inputs: FlowInput[]) {
  let state: FlowState | undefined;
  let seq = 0;
  const apply = (input: FlowInput) => {
    const out = decideFlow(flow, state, input, ctx(seq));
    for (const e of out) state = evolveFlow(state, e, { seq: ++seq, at: NOW });
    return out;
  };
  for (const i of inputs) apply(i);
  return {
    get state() {
      return state!;
    },
    when(input: FlowInput | ((s: FlowState) => FlowInput)) {
      const out = apply(typeof input === 'function' ? input(state!) : input);
      return {
        then(expected: Array<{ type: string; data?: object }>) {
          expect(out.map((e) => e.type)).toEqual(expected.map((e) => e.type));
          expected.forEach((e, i) => e.data && expect(out[i]!.data).toMatchObject(e.data));
          return state!;
        },
      };
    },
  };
}

const said = (kind: string, textPart?: string, node?: string) => ({ type: 'MessageSaid', data: { kind, ...(node ? { node } : {}), ...(textPart ? { text: expect.stringContaining(textPart) } : {}) } });
const START: FlowInput = { type: 'start' };
const named = [START, text('mi chiamo Giulia Rossi'), text('sì')];
const born = [...named, text('3 marzo 1990'), text('sì')];
const registered = [...born, text('giulia@example.it'), text('sì')];
const effect = (s: FlowState, over: Partial<Extract<FlowInput, { type: 'effect' }>> = {}): FlowInput => ({ type: 'effect', key: s.effect!.key, status: 'ok', httpStatus: 201, attempts: 1, latencyMs: 2, result: { id: 'C-42' }, error: null, backend: 'crm', ...over });

describe('the flow decider (onboarding reference flow)', () => {
  it('starts: welcomes and asks the first data node, with a noInput timer', () => {
    given(reference).when(START).then([
      { type: 'FlowStarted', data: { flowId: 'onboarding', version: reference.version } },
      { type: 'TaskStarted', data: { task: 'welcome' } }, said('say', 'Benvenuto'),
      { type: 'TaskStarted', data: { task: 'collect' } }, { type: 'MessageSaid', data: { kind: 'ask', node: 'fullName', awaitUntil: '2026-12-01T10:00:30.000Z' } },
    ]);
  });

  it('reads a name with the parser and asks to confirm it', () => {
    given(reference, START).when(text('mi chiamo Giulia Rossi')).then([
      { type: 'PromptReceived' }, { type: 'ValueRead', data: { node: 'fullName', value: 'Giulia Rossi', by: 'parser', promptSeq: 6 } }, said('confirm', 'Ti chiami Giulia Rossi, giusto?'),
    ]);
  });

  it('takes a correction in the confirmation: "no, è Giulia Bianchi"', () => {
    given(reference, START, text('mi chiamo Giulia Rossi')).when(text('no, è Giulia Bianchi')).then([
      { type: 'PromptReceived' }, { type: 'ValueRead', data: { value: 'Giulia Bianchi' } }, said('confirm', 'Giulia Bianchi'),
    ]);
  });

  it('asks again after a plain "no"', () => {
    given(reference, START, text('mi chiamo Giulia Rossi')).when(text('no')).then([{ type: 'PromptReceived' }, said('ask', 'Come ti chiami', 'fullName')]);
  });

  it('confirms with "sì" and moves to the next node', () => {
    const s = given(reference, START, text('mi chiamo Giulia Rossi')).when(text('sì')).then([
      { type: 'PromptReceived' }, { type: 'DataConfirmed', data: { data: { 'customer.fullName': 'Giulia Rossi' }, flow: { task: 'collect', node: 'fullName' } } }, said('ask', 'data di nascita', 'birthDate'),
    ]);
    expect(s.memory).toEqual({ customer: { fullName: 'Giulia Rossi' } });
  });

  it('reads "3 marzo 1990" as a date and says it back in words', () => {
    given(reference, ...named).when(text('3 marzo 1990')).then([{ type: 'PromptReceived' }, { type: 'ValueRead', data: { value: '1990-03-03' } }, said('confirm', 'Sei nato il 3 marzo 1990?')]);
  });

  it('asks the missing part of a partial date (sub-data), then confirms the whole', () => {
    const g = given(reference, ...named);
    g.when(text('il 3 marzo')).then([{ type: 'PromptReceived' }, { type: 'ValueRead', data: { value: { day: 3, month: 3 }, partial: true } }, said('ask', 'Di che anno?', 'birthDate.year')]);
    g.when(text('1990')).then([{ type: 'PromptReceived' }, { type: 'ValueRead', data: { value: '1990-03-03', partial: false } }, said('confirm', '3 marzo 1990')]);
  });

  it('corrects part of a date in the confirmation: "no, il 4 marzo" keeps the year', () => {
    given(reference, ...named, text('3 marzo 1990')).when(text('no, il 4 marzo')).then([{ type: 'PromptReceived' }, { type: 'ValueRead', data: { value: '1990-03-04' } }, said('confirm', '4 marzo 1990')]);
  });

  it('says the noMatch prompt for a bad email, and gives up after maxRetries', () => {
    const g = given(reference, ...born);
    for (let i = 0; i < 3; i++) g.when(text('giulia at example')).then([{ type: 'PromptReceived' }, said('noMatch', 'Non sembra un indirizzo email valido')]);
    g.when(text('ancora no')).then([{ type: 'PromptReceived' }, said('error'), { type: 'FlowEnded', data: { reason: 'gave_up', task: 'collect' } }]);
  });

  it('calls the backend with a key derived from conversation and task, then mails and ends with its result', () => {
    const g = given(reference, ...born, text('giulia@example.it'));
    const s = g.when(text('sì')).then([
      { type: 'PromptReceived' }, { type: 'DataConfirmed' }, { type: 'TaskStarted', data: { task: 'adult' } },
      { type: 'TaskStarted', data: { task: 'register', taskType: 'backendCall' } },
    ]);
    expect(s.effect).toEqual({ task: 'register', kind: 'http', key: `gemello:c1:register:${s.taskSeq}` });
    const mail = g.when((st) => effect(st)).then([{ type: 'BackendCalled', data: { status: 'ok', result: { id: 'C-42' } } }, { type: 'TaskStarted', data: { task: 'mail' } }]);
    expect(mail.effect).toEqual({ task: 'mail', kind: 'email', key: `gemello:c1:mail:${mail.taskSeq}` });
    g.when((st) => effect(st, { backend: 'email', result: null })).then([
      { type: 'BackendCalled', data: { kind: 'email' } }, { type: 'TaskStarted', data: { task: 'bye' } }, said('end', 'sei registrato con il codice C-42'), { type: 'FlowEnded', data: { reason: 'completed' } },
    ]);
  });

  it('records an outcome once: the same key again decides nothing', () => {
    const g = given(reference, ...registered);
    const key = g.state.effect!.key;
    g.when((st) => effect(st)).then([{ type: 'BackendCalled' }, { type: 'TaskStarted' }]);
    g.when({ type: 'effect', key, status: 'ok', httpStatus: 201, attempts: 1, latencyMs: 1, result: { id: 'C-43' }, error: null, backend: 'crm' }).then([]);
  });

  it('goes to onError when the backend fails', () => {
    given(reference, ...registered).when((st) => effect(st, { status: 'error', httpStatus: 500, result: null, error: 'HTTP 500' })).then([
      { type: 'BackendCalled', data: { status: 'error' } }, { type: 'TaskStarted', data: { task: 'operator' } }, said('transfer', 'operatore'),
      { type: 'FlowTransferred', data: { to: 'operator' } }, { type: 'FlowEnded', data: { reason: 'transferred' } },
    ]);
  });

  it('hands a minor over to an operator', () => {
    given(reference, ...named, text('3 marzo 2015'), text('sì'), text('giulia@example.it')).when(text('sì')).then([
      { type: 'PromptReceived' }, { type: 'DataConfirmed' }, { type: 'TaskStarted', data: { task: 'adult' } }, { type: 'TaskStarted', data: { task: 'minor' } },
      said('transfer', 'minorenni'), { type: 'FlowTransferred' }, { type: 'FlowEnded', data: { reason: 'transferred' } },
    ]);
  });

  it('fires the noInput prompt when the timer it set is still the current one, and only then', () => {
    const g = given(reference, START);
    const timer = g.state.timer!;
    g.when({ type: 'timer', timerSeq: timer.seq }).then([{ type: 'MessageSaid', data: { kind: 'noInput', text: 'Sei ancora lì? Dimmi il tuo nome e cognome.', awaitUntil: expect.any(String) } }]);
    g.when({ type: 'timer', timerSeq: timer.seq }).then([]);
    const next = g.state.timer!.seq;
    g.when(text('Giulia Rossi')).then([{ type: 'PromptReceived' }, { type: 'ValueRead' }, said('confirm')]);
    expect(g.state.timer?.seq).not.toBe(next);
  });

  it('asks the model only where the parsers find nothing, and records who read the value', () => {
    const def = { id: 'm', language: 'en', start: 'a', tasks: { a: { type: 'getData', ddt: 'd', next: 'z' }, z: { type: 'end', text: 'ok {{d.n}}' } }, ddts: { d: { nodes: [{ name: 'n', type: 'number', ask: 'How many?' }] } } };
    const flow = compiled(def);
    let state: FlowState | undefined;
    let seq = 0;
    const run = (input: FlowInput, model: boolean) => {
      const out = decideFlow(flow, state, input, ctx(seq, model));
      for (const e of out) state = evolveFlow(state, e, { seq: ++seq, at: NOW });
      return out;
    };
    run(START, true);
    expect(run(text('a dozen'), true).map((e) => [e.type, e.type === 'PromptReceived' ? e.data.read : undefined])).toEqual([['PromptReceived', 'model']]);
    expect(state!.read).toEqual({ promptSeq: 4 });
    const out = run({ type: 'read', promptSeq: 4, value: 12 }, true);
    expect(out.map((e) => e.type)).toEqual(['ValueRead', 'DataConfirmed', 'TaskStarted', 'MessageSaid', 'FlowEnded']);
    expect(out[0]!.data).toMatchObject({ by: 'model', value: 12 });
    expect(out[3]!.data).toMatchObject({ text: 'ok 12' });
  });

  it('takes an answer sent while the model reads the one before in its place: the older reading is dropped, the flow goes on', () => {
    const def = { id: 'm', language: 'en', start: 'a', tasks: { a: { type: 'getData', ddt: 'd', next: 'z' }, z: { type: 'end', text: 'ok {{d.n}}' } }, ddts: { d: { nodes: [{ name: 'n', type: 'number', ask: 'How many?' }] } } };
    const flow = compiled(def);
    let state: FlowState | undefined;
    let seq = 0;
    const run = (input: FlowInput) => {
      const out = decideFlow(flow, state, input, ctx(seq, true));
      for (const e of out) state = evolveFlow(state, e, { seq: ++seq, at: NOW });
      return out;
    };
    run(START);
    run(text('a dozen'));
    expect(state!.read).toEqual({ promptSeq: 4 });
    // The user, tired of waiting, says it plainly: the parsers read it.
    expect(run(text('12')).map((e) => e.type)).toEqual(['PromptReceived', 'ValueRead', 'DataConfirmed', 'TaskStarted', 'MessageSaid', 'FlowEnded']);
    // The model's reading of the first answer comes late: nothing more happens.
    expect(run({ type: 'read', promptSeq: 4, value: 13 })).toEqual([]);
    expect(state!.status).toBe('ended');
  });

  it('starts a conversation on the version it is given and keeps its definition', () => {
    const s = given(reference).when(START).then([{ type: 'FlowStarted' }, { type: 'TaskStarted' }, { type: 'MessageSaid' }, { type: 'TaskStarted' }, { type: 'MessageSaid' }]);
    expect(s.version).toBe(reference.version);
    expect(s.definition).toEqual(reference.definition);
  });
});

// ---- property: random flows, random answers: the fold of the log is the live state ----

const ANSWERS = ['mi chiamo Giulia Rossi', 'sì', 'no', 'no, è Giulia Bianchi', '3 marzo 1990', 'il 3 marzo', '1990', 'marzo', '42', 'quarantadue', 'giulia@example.it', 'boh', '+39 347 123 4567', 'yes', '31 febbraio 1990', 'AB-1234'];
const NODE_TYPES = ['string', 'date', 'number', 'email', 'phone', 'pattern'] as const;

const nodeArb = fc.record({
  type: fc.constantFrom(...NODE_TYPES),
  confirm: fc.boolean(),
  noInput: fc.boolean(),
  subData: fc.boolean(),
  maxRetries: fc.integer({ min: 0, max: 3 }),
});
/** A random flow: tasks in a row, each pointing only forward (so every cycle has an exit), with getData, conditions, effects. */
const flowArb = fc.array(fc.record({
  type: fc.constantFrom('say', 'getData', 'condition', 'backendCall', 'sendEmail', 'sendSms'),
  nodes: fc.array(nodeArb, { minLength: 1, maxLength: 3 }),
  jump: fc.nat(),
  onError: fc.boolean(),
}), { minLength: 1, maxLength: 6 }).chain((tasks) => fc.constant(tasks).map((ts) => {
  const n = ts.length;
  const id = (i: number) => (i >= n ? 'tail' : `t${i}`);
  const defs: Record<string, unknown> = {
    tail: { type: 'condition', when: { var: 'r.ok', op: 'exists' }, then: 'bye', else: 'handover' },
    bye: { type: 'end', text: 'bye' },
    handover: { type: 'transfer', to: 'operator' },
  };
  const ddts: Record<string, unknown> = {};
  ts.forEach((t, i) => {
    const fwd = id(i + 1 + (t.jump % 3));
    const err = t.onError ? { onError: 'handover' } : {};
    const called = ts.slice(0, i).some((x) => x.type === 'backendCall');
    if (t.type === 'say' || (t.type === 'condition' && !called)) defs[id(i)] = { type: 'say', text: `step ${i}`, next: id(i + 1) };
    else if (t.type === 'condition') defs[id(i)] = { type: 'condition', when: { var: 'r.ok', op: 'exists' }, then: id(i + 1), else: fwd };
    if (t.type === 'backendCall') defs[id(i)] = { type: 'backendCall', backend: 'crm', path: '/x', body: { a: 1 }, saveAs: 'r', next: id(i + 1), ...err };
    if (t.type === 'sendEmail') defs[id(i)] = { type: 'sendEmail', to: 'a@b.it', subject: 's', text: 't', next: id(i + 1), ...err };
    if (t.type === 'sendSms') defs[id(i)] = { type: 'sendSms', to: '+39347', text: 't', next: id(i + 1), ...err };
    if (t.type === 'getData') {
      ddts[`d${i}`] = {
        nodes: t.nodes.map((x, j) => ({
          name: `n${j}`, type: x.type, ask: `ask ${j}`, maxRetries: x.maxRetries,
          ...(x.confirm ? { confirm: 'is it {{value}}?' } : {}),
          ...(x.noInput ? { noInput: ['still there?'] } : {}),
          ...(x.type === 'date' && x.subData ? { subData: [{ name: 'day', ask: 'day?' }, { name: 'month', ask: 'month?' }, { name: 'year', ask: 'year?' }] } : {}),
          ...(x.type === 'pattern' ? { pattern: '([A-Z]{2}-\\d{4})' } : {}),
        })),
      };
      defs[id(i)] = { type: 'getData', ddt: `d${i}`, next: id(i + 1), ...err };
    }
  });
  if (!ts.some((t) => t.type === 'backendCall')) defs.tail = { type: 'end' };
  const used = new Set(Object.values(defs).flatMap((t) => ['next', 'then', 'else', 'onError'].map((f) => (t as Record<string, unknown>)[f])));
  for (const last of ['bye', 'handover']) if (!used.has(last)) delete defs[last];
  return { id: 'random', language: 'it', start: 't0', tasks: defs, ddts };
}));

const inputArb = fc.oneof(
  fc.record({ kind: fc.constant('text' as const), text: fc.constantFrom(...ANSWERS) }),
  fc.record({ kind: fc.constant('timer' as const) }),
  fc.record({ kind: fc.constant('effect' as const), ok: fc.boolean() }),
  fc.record({ kind: fc.constant('read' as const), value: fc.constantFrom(null, 7, 'Giulia Rossi', 'x@y.it') }),
);

describe('the flow decider (property)', () => {
  it('for random flows and answers, the fold of the log (sealed and read back) is the live state, and the flow never stalls', () => {
    const key = newDataKey();
    fc.assert(fc.property(flowArb, fc.array(inputArb, { maxLength: 25 }), fc.boolean(), (def, inputs, model) => {
      const r = compileFlow(def, { backends: ['crm'], email: true, sms: true });
      if (!r.ok) throw new Error(JSON.stringify(r.errors));
      const flow = r.flow;
      let live: ConversationState = initialState('c1');
      const log: string[] = [];
      const step = (input: FlowInput) => {
        const out: FlowInputEvent[] = decideFlow(flow, live.flow, input, { ...ctx(live.seq, model), now: new Date(Date.parse(NOW) + live.seq * 1000).toISOString() });
        const envs = envelope('c1', live.seq, out, { causationId: null, correlationId: null, traceparent: null, now: new Date(NOW), newId: () => crypto.randomUUID() });
        for (const e of envs) log.push(encodeSealedEvent(e, key).value);
        live = fold('c1', envs, live);
      };
      step({ type: 'start' });
      for (const i of inputs) {
        const f = live.flow!;
        if (i.kind === 'text') step(text(i.text));
        else if (i.kind === 'timer' && f.timer) step({ type: 'timer', timerSeq: f.timer.seq });
        else if (i.kind === 'effect' && f.effect) step({ type: 'effect', key: f.effect.key, status: i.ok ? 'ok' : 'error', httpStatus: i.ok ? 200 : 503, attempts: 1, latencyMs: 1, result: i.ok ? { ok: true } : null, error: i.ok ? null : 'HTTP 503', backend: 'crm' });
        else if (i.kind === 'read' && f.read) step({ type: 'read', promptSeq: f.read.promptSeq, value: i.value });
        const s = live.flow!;
        // Never stuck: ended, or waiting for the user at a node, a side effect, or the model.
        expect(s.status === 'ended' || s.node !== undefined || s.effect !== undefined).toBe(true);
        if (s.status === 'ended') expect(s.node).toBeUndefined();
      }
      const ring = new Map([['c1', key]]);
      const replayed = fold('c1', log.map((v) => decodeEventValue(v, ring)));
      expect(replayed).toEqual(live);
    }), { numRuns: 150 });
  });
});

describe('a version recorded before comparisons were checked strictly', () => {
  it('runs its conversations in flight as it did (a missing value compared as null), while a new flow with it is refused', () => {
    const def = JSON.parse(readFileSync(new URL('../../flows/examples/onboarding.flow.json', import.meta.url), 'utf8'));
    def.tasks.adult.when = { var: 'customer.birthDate', op: '<=', vaule: '2008-12-01' };
    expect(compileFlow(def, { backends: ['crm'], email: true, sms: true }).ok).toBe(false);
    // The conversation started on it under the old rules: its FlowStarted holds the definition.
    const registry = createFlowRegistry([reference], { backends: ['crm'], email: true, sms: true });
    const recorded = registry.of({ flowId: 'onboarding', version: 'v-before', definition: def } as FlowState);
    expect(recorded.version).toBe('v-before');
    const adult = recorded.byId.adult as CompiledTask & { when: Condition };
    // As it ran when recorded: "2015-03-03" <= "null" as text, so a minor took the adult branch too.
    expect(holds(adult.when, { customer: { birthDate: '2015-03-03' } })).toBe(true);
    expect(adult.when).toEqual({ var: 'customer.birthDate', op: '<=', value: null });
  });
});

describe('a conversation whose flow is over', () => {
  const registry = createFlowRegistry([reference], { backends: ['crm'], email: true, sms: true });
  const flows: FlowSetting = { forTwin: () => reference, of: (f) => registry.of(f), noInputSec: 30, model: false };
  const twin = { id: 'onboarding-it', name: 'Registrazione' };
  const run = (texts: string[], outcome?: 'ok' | 'error') => {
    let state = initialState('c1');
    let n = 0;
    const apply = (cmd: Command) => {
      state = fold('c1', envelope('c1', state.seq, decide(cmd, state, flows), { causationId: null, correlationId: null, traceparent: null, now: new Date(NOW), newId: () => crypto.randomUUID() }), state);
    };
    const prompt = (text: string): Command => ({ type: 'SubmitPrompt', commandId: `p${++n}`, conversationId: 'c1', correlationId: null, principal: null, traceparent: null, issuedAt: NOW, data: { twin, text } });
    for (const t of texts) apply(prompt(t));
    if (outcome) apply({ type: 'RecordFlowEffect', key: state.flow!.effect!.key, backend: 'crm', status: outcome, httpStatus: outcome === 'ok' ? 201 : 500, attempts: 1, latencyMs: 1, result: outcome === 'ok' ? { id: 'C-1' } : null, error: null, at: NOW });
    return { state, prompt };
  };
  const all = ['ciao', 'Giulia Rossi', 'sì', '3 marzo 1990', 'sì', 'g@example.it', 'sì'];

  it('refuses a prompt after the flow ended, so a client is told rather than left waiting', () => {
    const { state, prompt } = run(all, 'ok');
    expect(state.flow!.effect?.kind).toBe('email');
    const done = fold('c1', envelope('c1', state.seq, decide({ type: 'RecordFlowEffect', key: state.flow!.effect!.key, backend: 'email', status: 'ok', httpStatus: 202, attempts: 1, latencyMs: 1, result: null, error: null, at: NOW }, state, flows), { causationId: null, correlationId: null, traceparent: null, now: new Date(NOW), newId: () => crypto.randomUUID() }), state);
    expect(done.flow!.status).toBe('ended');
    expect(() => decide(prompt('ancora?'), done, flows)).toThrow(expect.objectContaining({ code: 'flow_ended' }));
  });

  it('keeps taking prompts after a transfer (for the operator), without answering them', () => {
    const { state, prompt } = run(all, 'error');
    expect(state.flow!.transferred).toMatchObject({ to: 'operator' });
    expect(decide(prompt('pronto?'), state, flows).map((e) => e.type)).toEqual(['PromptReceived']);
  });
});
