import type { CompiledFlow, CompiledTask } from './compile.ts';
import type { Comparison, Condition, NodeDef } from './definition.ts';
import { readConfirmation } from './confirmation.ts';
import { formatDate } from './parse-date.ts';
import type { DateParts } from './parse-date.ts';
import { acceptValue, readValue } from './read-value.ts';
import type { Reading } from './read-value.ts';
import { evolveFlow } from './state.ts';
import type { FlowInputEvent, FlowState } from './state.ts';
import { lookup, render } from './templates.ts';

/** What moves a flow on. */
export type FlowInput =
  /** `trigger`: the prompt that started the conversation (recorded, not read as an answer). */
  | { type: 'start'; trigger?: { text: string; requestId: string | null } }
  /** The user's answer (it becomes a PromptReceived). */
  | { type: 'text'; text: string; requestId: string | null }
  /** The model's reading of a prompt the parsers could not read (null: it read nothing). */
  | { type: 'read'; promptSeq: number; value: unknown }
  /** A side effect's outcome, for the call with this idempotency key. */
  | { type: 'effect'; key: string; status: 'ok' | 'error'; httpStatus: number | null; attempts: number; latencyMs: number; result: unknown; error: string | null; backend: string }
  /** The noInput timer set by the MessageSaid at `timerSeq` fired. */
  | { type: 'timer'; timerSeq: number };

export type FlowContext = {
  conversationId: string;
  /** The conversation's last seq before the events decided here. */
  seq: number;
  /** When, as an ISO timestamp (it arrives with the command: the decider reads no clock). */
  now: string;
  /** Seconds of silence before a noInput prompt, when neither node nor flow says. */
  noInputSec: number;
  /** Whether a model can read what the parsers cannot. */
  model: boolean;
};

const SUBS = ['day', 'month', 'year'] as const;
const MAX_STEPS = 200;

const DEFAULTS = {
  it: { gaveUp: 'Mi dispiace, non riesco a raccogliere questi dati. Riprova più tardi.', failed: 'Mi dispiace, qualcosa non ha funzionato. Riprova più tardi.', transfer: 'Ti passo a un operatore.' },
  en: { gaveUp: 'Sorry, I could not collect this information. Please try again later.', failed: 'Sorry, something went wrong. Please try again later.', transfer: 'I am handing you over to an operator.' },
};

/** The idempotency key of a task's side effect: the same conversation, task and TaskStarted give the same key, whoever makes the call. */
export const effectKey = (conversationId: string, task: string, taskSeq: number) => `gemello:${conversationId}:${task}:${taskSeq}`;

/**
 * The flow's decider: the events an input causes, run on until the flow waits (for the
 * user, a side effect, the model) or ends. Pure: the flow definition, the time and the
 * conversation arrive as arguments. Each event is folded as it is decided, so what comes
 * next is decided on the state the log will give.
 */
export function decideFlow(flow: CompiledFlow, state: FlowState | undefined, input: FlowInput, ctx: FlowContext): FlowInputEvent[] {
  const out: FlowInputEvent[] = [];
  let s = state;
  let seq = ctx.seq;
  let steps = 0;
  const lang = flow.language;
  const emit = (e: FlowInputEvent) => {
    out.push(e);
    seq++;
    s = evolveFlow(s, e, { seq, at: ctx.now });
  };
  const task = (): CompiledTask => flow.byId[s!.task!]!;
  const vars = (extra: Record<string, unknown> = {}) => (path: string) => (path in extra ? extra[path] : lookup(s!.memory, path));
  const say = (text: string, extra?: Record<string, unknown>) => render(text, vars(extra), (v) => humanise(v, lang));
  const dueAt = (node: NodeDef) => {
    if (!node.noInput.length) return null;
    const sec = node.noInputSec ?? flow.noInputSec ?? ctx.noInputSec;
    return new Date(Date.parse(ctx.now) + sec * 1000).toISOString();
  };
  const nodes = () => {
    const t = task();
    return t.type === 'getData' ? flow.ddts[t.ddt]!.nodes : [];
  };
  const currentNode = () => nodes()[s!.node!.index]!;

  function advance(to: string): void {
    let next: string | null = to;
    while (next !== null) {
      if (++steps > MAX_STEPS) {
        // A condition loop that never settles: the compiler lets through cycles that have an exit.
        emit({ type: 'MessageSaid', data: { task: next, kind: 'error', node: null, text: DEFAULTS[lang].failed, awaitUntil: null } });
        emit({ type: 'FlowEnded', data: { task: next, reason: 'error' } });
        return;
      }
      const t: CompiledTask = flow.byId[next]!;
      const effect = t.type === 'backendCall' || t.type === 'sendEmail' || t.type === 'sendSms';
      emit({ type: 'TaskStarted', data: { task: t.id, taskType: t.type, key: effect ? effectKey(ctx.conversationId, t.id, seq + 1) : null } });
      next = null;
      switch (t.type) {
        case 'say':
          emit({ type: 'MessageSaid', data: { task: t.id, kind: 'say', node: null, text: say(t.text), awaitUntil: null } });
          next = t.next;
          break;
        case 'getData':
          ask(0);
          break;
        case 'condition':
          next = holds(t.when, s!.memory) ? t.then : t.else;
          break;
        case 'backendCall':
        case 'sendEmail':
        case 'sendSms':
          break; // the host makes the call; its outcome comes back as an `effect` input
        case 'end':
          if (t.text) emit({ type: 'MessageSaid', data: { task: t.id, kind: 'end', node: null, text: say(t.text), awaitUntil: null } });
          emit({ type: 'FlowEnded', data: { task: t.id, reason: 'completed' } });
          break;
        case 'transfer':
          emit({ type: 'MessageSaid', data: { task: t.id, kind: 'transfer', node: null, text: say(t.text ?? DEFAULTS[lang].transfer), awaitUntil: null } });
          emit({ type: 'FlowTransferred', data: { task: t.id, to: t.to } });
          emit({ type: 'FlowEnded', data: { task: t.id, reason: 'transferred' } });
          break;
        default: {
          const _never: never = t;
          return _never;
        }
      }
    }
  }

  function ask(index: number): void {
    const node = nodes()[index]!;
    emit({ type: 'MessageSaid', data: { task: task().id, kind: 'ask', node: node.name, text: say(node.ask), awaitUntil: dueAt(node) } });
  }

  function askPart(node: NodeDef, part: (typeof SUBS)[number], text: string): void {
    emit({ type: 'MessageSaid', data: { task: task().id, kind: 'ask', node: `${node.name}.${part}`, text: say(text), awaitUntil: dueAt(node) } });
  }

  function noMatch(): void {
    const node = currentNode();
    const n = s!.node!;
    if (n.noMatch >= node.maxRetries) return giveUp();
    const sub = n.sub ? node.subData?.find((x) => x.name === n.sub) : undefined;
    let text: string;
    if (n.phase === 'confirm') text = node.confirm ?? node.ask;
    else text = node.noMatch.length ? node.noMatch[Math.min(n.noMatch, node.noMatch.length - 1)]! : sub?.ask ?? node.ask;
    emit({ type: 'MessageSaid', data: { task: task().id, kind: 'noMatch', node: sub ? `${node.name}.${sub.name}` : node.name, text: say(text, { value: n.value }), awaitUntil: dueAt(node) } });
  }

  function giveUp(): void {
    const t = task();
    const onError = 'onError' in t ? t.onError : undefined;
    if (onError) return advance(onError);
    emit({ type: 'MessageSaid', data: { task: t.id, kind: 'error', node: null, text: DEFAULTS[lang].gaveUp, awaitUntil: null } });
    emit({ type: 'FlowEnded', data: { task: t.id, reason: 'gave_up' } });
  }

  /** A value was read for the current node: confirm it, or take it as said when the node asks no confirmation. */
  function read(value: unknown, by: 'parser' | 'model', promptSeq: number): void {
    const node = currentNode();
    emit({ type: 'ValueRead', data: { task: task().id, node: node.name, value, partial: false, by, promptSeq } });
    if (!node.confirm) return confirmed();
    emit({ type: 'MessageSaid', data: { task: task().id, kind: 'confirm', node: node.name, text: say(node.confirm, { value }), awaitUntil: dueAt(node) } });
  }

  function readPartial(parts: DateParts, promptSeq: number): void {
    const node = currentNode();
    emit({ type: 'ValueRead', data: { task: task().id, node: node.name, value: parts, partial: true, by: 'parser', promptSeq } });
    const have = s!.node!.parts ?? {};
    const missing = SUBS.find((p) => have[p] === undefined);
    const sub = missing ? node.subData?.find((x) => x.name === missing) : undefined;
    if (!missing || !sub) return noMatch();
    askPart(node, missing, sub.ask);
  }

  function confirmed(): void {
    const t = task();
    if (t.type !== 'getData') return;
    const n = s!.node!;
    const node = currentNode();
    emit({ type: 'DataConfirmed', data: { data: { [`${t.ddt}.${node.name}`]: n.value ?? null }, requestId: null, flow: { task: t.id, node: node.name } } });
    if (n.index + 1 < nodes().length) ask(n.index + 1);
    else advance(t.next);
  }

  /** What the parsers make of an answer, at the node's phase. */
  function answer(reading: Reading, promptSeq: number): void {
    if (reading.kind === 'value') read(reading.value, 'parser', promptSeq);
    else if (reading.kind === 'partial') readPartial(reading.parts, promptSeq);
    else noMatch();
  }

  switch (input.type) {
    case 'start':
      emit({ type: 'FlowStarted', data: { flowId: flow.id, version: flow.version, definition: flow.definition as Record<string, unknown> } });
      if (input.trigger) emit({ type: 'PromptReceived', data: { text: input.trigger.text, requestId: input.trigger.requestId } });
      advance(flow.start);
      break;
    case 'text': {
      const n = s?.node;
      // A new answer while the model reads the one before takes its place (the model's reading of
      // the older one is dropped when it comes): otherwise the flow waited on a reading it then ignored.
      const waiting = s && s.status === 'running' && n && !s.effect;
      if (!waiting) {
        emit({ type: 'PromptReceived', data: { text: input.text, requestId: input.requestId } });
        break;
      }
      const node = currentNode();
      if (n.phase === 'ask') {
        const reading = readValue(node, input.text, lang, n.sub, n.parts);
        if (reading.kind === 'none' && ctx.model && node.model) {
          emit({ type: 'PromptReceived', data: { text: input.text, requestId: input.requestId, read: 'model' } });
          break;
        }
        emit({ type: 'PromptReceived', data: { text: input.text, requestId: input.requestId } });
        answer(reading, seq);
        break;
      }
      emit({ type: 'PromptReceived', data: { text: input.text, requestId: input.requestId } });
      const promptSeq = seq;
      const c = readConfirmation(input.text);
      if (c.kind === 'yes') return confirmed(), out;
      // "no, è Giulia Bianchi": the right value; a date's missing parts come from the one confirmed.
      const base = typeof n.value === 'string' && node.type === 'date' ? isoParts(n.value) : {};
      let reading: Reading = c.rest ? readValue(node, c.rest, lang) : { kind: 'none' };
      if (reading.kind === 'partial') reading = completeDate({ ...base, ...reading.parts });
      if (reading.kind === 'value') read(reading.value, 'parser', promptSeq);
      else if (c.kind === 'no') ask(n.index);
      else noMatch();
      break;
    }
    case 'read': {
      if (!s?.read || s.read.promptSeq !== input.promptSeq || !s.node) break;
      const value = acceptValue(currentNode(), input.value, lang);
      if (value === null) noMatch();
      else read(value, 'model', input.promptSeq);
      break;
    }
    case 'effect': {
      if (!s?.effect || s.effect.key !== input.key) break; // recorded before (a retry after a crash, a zombie)
      const t = task();
      const { key, status, httpStatus, attempts, latencyMs, result, error, backend } = input;
      emit({ type: 'BackendCalled', data: { task: t.id, kind: s.effect.kind, backend, key, status, httpStatus, attempts, latencyMs, result: result ?? null, error } });
      if (t.type !== 'backendCall' && t.type !== 'sendEmail' && t.type !== 'sendSms') break;
      if (status === 'ok') advance(t.next);
      else if (t.onError) advance(t.onError);
      else {
        emit({ type: 'MessageSaid', data: { task: t.id, kind: 'error', node: null, text: DEFAULTS[lang].failed, awaitUntil: null } });
        emit({ type: 'FlowEnded', data: { task: t.id, reason: 'error' } });
      }
      break;
    }
    case 'timer': {
      if (!s?.timer || s.timer.seq !== input.timerSeq || !s.node) break; // the user spoke first, or it fired before
      const node = currentNode();
      const n = s.node;
      if (n.noInput >= node.maxRetries) {
        giveUp();
        break;
      }
      emit({ type: 'MessageSaid', data: { task: task().id, kind: 'noInput', node: n.sub ? `${node.name}.${n.sub}` : node.name, text: say(node.noInput[Math.min(n.noInput, node.noInput.length - 1)]!), awaitUntil: dueAt(node) } });
      break;
    }
    default: {
      const _never: never = input;
      return _never;
    }
  }
  return out;
}

const isoParts = (iso: string): DateParts => {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  return m ? { year: +m[1]!, month: +m[2]!, day: +m[3]! } : {};
};

function completeDate(p: DateParts): Reading {
  if (p.day === undefined || p.month === undefined || p.year === undefined) return { kind: 'none' };
  const iso = `${String(p.year).padStart(4, '0')}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;
  const d = new Date(`${iso}T00:00:00Z`);
  return Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== iso ? { kind: 'none' } : { kind: 'value', value: iso };
}

/** A value in words for people: ISO dates as "3 marzo 1990". */
function humanise(v: unknown, lang: 'it' | 'en'): string {
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v)) return formatDate(v, lang);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Whether a condition holds on memory. */
export function holds(c: Condition, memory: Record<string, unknown>): boolean {
  if ('all' in c) return c.all.every((x) => compare(x, memory));
  if ('any' in c) return c.any.some((x) => compare(x, memory));
  return compare(c, memory);
}

function compare(c: Comparison, memory: Record<string, unknown>): boolean {
  const left = lookup(memory, c.var);
  if (c.op === 'exists') return left !== undefined && left !== null;
  const right = c.value ?? null;
  if (left === undefined || left === null) return c.op === '!=' ? right !== null : c.op === '==' && right === null;
  const numeric = typeof left === 'number' && typeof right === 'number';
  const a = numeric ? left : String(left);
  const b = numeric ? right : String(right);
  switch (c.op) {
    case '==': return a === b;
    case '!=': return a !== b;
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    case '>=': return a >= b;
  }
}
