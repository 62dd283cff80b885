// Flow conversations for the recovery benchmark: the reference flow run by the real
// deciders over a scripted dialogue (a correction, a partial date, a noMatch, the backend
// call and the email), padded with prompts after the end, cut to the events asked for.
import { readFileSync } from 'node:fs';
import { decide } from '../actors/decide.ts';
import type { FlowSetting } from '../actors/decide.ts';
import type { Command } from '../actors/commands.ts';
import { fold, initialState } from '../actors/state.ts';
import { envelope } from '../events/codec.ts';
import type { DomainEvent } from '../events/schemas.ts';
import { compileFlow } from '../flows/compile.ts';
import { createFlowRegistry } from '../flows/registry.ts';

const env = { backends: ['crm'], email: true, sms: false };
const compiled = compileFlow(JSON.parse(readFileSync(new URL('../flows/examples/onboarding.flow.json', import.meta.url), 'utf8')), env);
if (!compiled.ok) throw new Error('the reference flow does not compile');
const flow = compiled.flow;
const registry = createFlowRegistry([flow], env);
export const FLOW_TWIN = { id: 'onboarding-bench', name: 'Registrazione' };
const flows: FlowSetting = { forTwin: (id) => (id === FLOW_TWIN.id ? flow : undefined), of: (f) => registry.of(f), noInputSec: 30, model: false };
/** The dialogue, with `corrections` more "no, è …" turns at the name (3 events each) to reach a length. */
const script = (corrections: number) => ['ciao', 'mi chiamo Giulia Rossi', ...Array.from({ length: corrections + 1 }, (_, i) => `no, è Giulia Bianchi${'i'.repeat(i)}`), 'sì', 'il 3 marzo', '1990', 'sì', 'giulia chiocciola example', 'giulia.bianchi@example.it', 'sì'];
const AT = '2026-12-01T10:00:00.000Z';

/** The first `count` domain events of a flow conversation `id` (`index` varies the name): cut mid-flow when it is short, more corrections when it is long. */
export function flowConversationEvents(id: string, index: number, count: number): DomainEvent[] {
  for (let corrections = 0; ; corrections++) {
    const events = run(id, index, corrections);
    if (events.length >= count || corrections > count) return events.slice(0, count);
  }
}

function run(id: string, index: number, corrections: number): DomainEvent[] {
  let state = initialState(id);
  const out: DomainEvent[] = [];
  let n = 0;
  const step = (cmd: Command) => {
    const events = decide(cmd, state, flows);
    state = fold(id, envelope(id, state.seq, events, { causationId: null, correlationId: null, traceparent: null, now: new Date(AT), newId: () => crypto.randomUUID() }), state);
    out.push(...events);
  };
  const prompt = (text: string) => step({ type: 'SubmitPrompt', commandId: `b${++n}`, conversationId: id, correlationId: null, principal: null, traceparent: null, issuedAt: AT, data: { twin: FLOW_TWIN, text } });
  for (const t of script(corrections)) prompt(t.replace('Giulia', index % 2 ? 'Giulia' : 'Anna'));
  for (const result of [{ id: `C-${index}` }, { queued: true }]) {
    const effect = state.flow?.effect;
    if (effect) step({ type: 'RecordFlowEffect', key: effect.key, backend: effect.kind === 'http' ? 'crm' : effect.kind, status: 'ok', httpStatus: 201, attempts: 1, latencyMs: 3, result, error: null, at: AT });
  }
  return out;
}
