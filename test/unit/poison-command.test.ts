// A command whose deciding throws (a bug, or a recorded flow this build cannot run) is refused
// with `internal`, and the partition goes on: sent back to the log, the batch would be
// delivered again and throw again, and every conversation of the partition would wait behind it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createHostContext } from '../../actors/host.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { acquire } from '../../actors/host/partitions.ts';
import { createFlowEffects } from '../../actors/flow-effects.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { eraseCommand } from '../../actors/command-client.ts';
import { openWork } from '../../actors/host/context.ts';
import { fold } from '../../actors/state.ts';
import { decodeEvents } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import { compileFlow } from '../../flows/compile.ts';
import { createFlowRegistry } from '../../flows/registry.ts';
import type { LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { quietLogger, seedTwin, sleep, tempFileLogs } from '../support/temp-log.ts';

const fileLog = tempFileLogs('poison');

/** A flow that calls the CRM at once, then ends: its registry. */
function callFlowRegistry() {
  const def = { id: 'call', language: 'it', start: 'call', tasks: { call: { type: 'backendCall', backend: 'crm', method: 'POST', path: '/x', body: { a: 1 }, saveAs: 'r', next: 'bye' }, bye: { type: 'end', text: 'fatto' } }, ddts: {} };
  const env = { backends: ['crm'], email: false, sms: false };
  const compiled = compileFlow(def, env);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
  return createFlowRegistry([compiled.flow], env);
}
const flowTwin = { id: 'onboarding-it', name: 'Registrazione' };

describe('a command that cannot be decided', () => {
  it('is refused with internal, and the partition goes on with the next commands', async () => {
    const log = fileLog(1);
    const compiled = compileFlow(JSON.parse(readFileSync(new URL('../../flows/examples/onboarding.flow.json', import.meta.url), 'utf8')), { backends: ['crm'], email: true, sms: true });
    if (!compiled.ok) throw new Error('the reference flow does not compile');
    const registry = createFlowRegistry([compiled.flow], { backends: ['crm'], email: true, sms: true });
    const errors: string[] = [];
    const ctx = createHostContext({
      log, snapshots: createMemorySnapshotStore(), readModel: null, metrics: createMetrics(),
      logger: { ...quietLogger, error: (m: string) => void errors.push(m) },
      catalog: createTwinCatalog([{ ...flowTwin, flow: 'onboarding' }]),
      replyModel: { name: 'stub', reply: async () => ({ text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }) },
      // The conversation's recorded version cannot be run by this build.
      flows: { registry: { ...registry, of: () => { throw new Error('flow onboarding version v1 no longer compiles'); } }, effects: createFlowEffects({ backends: {}, emailWebhook: null, smsWebhook: null }), noInputSec: 30, model: false },
    });
    const part = acquire(ctx, 0);
    let offset = 0;
    const prompt = (conversationId: string, commandId: string, twin: { id: string; name: string }, text: string): LogRecord => ({
      topic: TOPICS.commands, partition: 0, offset: offset++, key: conversationId, headers: {}, timestamp: Date.now(),
      value: JSON.stringify({ type: 'SubmitPrompt', commandId, conversationId, correlationId: null, principal: null, traceparent: null, issuedAt: new Date().toISOString(), data: { twin, text } }),
    });
    await handleCommands(ctx, part, [prompt('flowing', 'c1', flowTwin, 'ciao')]);
    // The flow's second prompt asks for the recorded version; the other conversation's comes with it.
    await expect(handleCommands(ctx, part, [prompt('flowing', 'c2', flowTwin, 'Giulia Rossi'), prompt('plain', 'c3', seedTwin, 'What is a moat?')])).resolves.toBeUndefined();
    for (let i = 0; i < 200 && (part.actors.get('plain')?.state.pendingPrompts.length ?? 1) > 0; i++) await sleep(10);

    const records: LogRecord[] = [];
    await log.read(TOPICS.events, 0, 0, async (rs) => void records.push(...rs));
    const notices = records.filter((r) => r.headers.kind === 'notice').map((r) => JSON.parse(r.value) as { type: string; commandId: string; code?: string; message?: string });
    expect(notices).toEqual([expect.objectContaining({ type: 'rejected', commandId: 'c2', code: 'internal', message: expect.stringMatching(/could not take this command/) })]);
    const events: LoggedEvent[] = await decodeEvents(records, null);
    expect(events.filter((e) => e.conversationId === 'plain').map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated']);
    expect(errors).toEqual([expect.stringMatching(/^SubmitPrompt c2 of flowing could not be decided: flow onboarding version v1 no longer compiles/)]);
    await log.close();
  });

  it('a flow effect whose outcome the conversation refuses is made once and dropped, not retried every second', async () => {
    const log = fileLog(1);
    const registry = callFlowRegistry();
    // Once the backend has answered, the recorded version can no longer be run by this build.
    let broken = false;
    let calls = 0;
    const fetchStub = (async () => {
      calls++;
      broken = true;
      return new Response('{"id":7}', { status: 200, headers: { 'content-type': 'application/json' } });
    }) as unknown as typeof fetch;
    const warnings: string[] = [];
    const metrics = createMetrics();
    const ctx = createHostContext({
      log, snapshots: createMemorySnapshotStore(), readModel: null, metrics,
      logger: { ...quietLogger, warn: (m: string) => void warnings.push(m) },
      catalog: createTwinCatalog([{ id: 'caller', name: 'Chiamata', flow: 'call' }]),
      replyModel: { name: 'stub', reply: async () => ({ text: 'x', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }) },
      flows: { registry: { ...registry, of: (f) => { if (broken) throw new Error('flow call version v1 no longer compiles'); return registry.of(f); } }, effects: createFlowEffects({ backends: { crm: 'http://crm.invalid' }, emailWebhook: null, smsWebhook: null, fetch: fetchStub }), noInputSec: 30, model: false },
    });
    const part = acquire(ctx, 0);
    const prompt: LogRecord = {
      topic: TOPICS.commands, partition: 0, offset: 0, key: 'calling', headers: {}, timestamp: Date.now(),
      value: JSON.stringify({ type: 'SubmitPrompt', commandId: 'c1', conversationId: 'calling', correlationId: null, principal: null, traceparent: null, issuedAt: new Date().toISOString(), data: { twin: { id: 'caller', name: 'Chiamata' }, text: 'ciao' } }),
    };
    await handleCommands(ctx, part, [prompt]);
    for (let i = 0; i < 200 && warnings.length === 0; i++) await sleep(10);
    // Two and a half seconds: the old host tried to record the same outcome again every second.
    await sleep(2_500);
    expect(calls).toBe(1);
    expect(warnings).toEqual([expect.stringMatching(/^the outcome of f.* of calling was refused \(flow call version v1 no longer compiles\); it is made again when the conversation is next taken up/)]);
    // Left in flight: nothing makes it again (a second backend call) while this actor lives.
    expect(part.actors.get('calling')?.inFlight.size).toBe(1);
    await log.close();
  });

  it('erasing a conversation whose flow waits on a call ends the flow: nothing is owed, and no host makes the call again', async () => {
    const log = fileLog(1);
    const registry = callFlowRegistry();
    let calls = 0;
    // The backend does not answer while the conversation is erased.
    const hanging = (async (_url: string, init?: RequestInit) => {
      calls++;
      return new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    }) as unknown as typeof fetch;
    const host = () => createHostContext({
      log, snapshots: createMemorySnapshotStore(), readModel: null, metrics: createMetrics(), logger: quietLogger,
      catalog: createTwinCatalog([{ id: 'caller', name: 'Chiamata', flow: 'call' }]),
      replyModel: { name: 'stub', reply: async () => ({ text: 'x', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }) },
      flows: { registry, effects: createFlowEffects({ backends: { crm: 'http://crm.invalid' }, emailWebhook: null, smsWebhook: null, fetch: hanging }), noInputSec: 30, model: false },
    });
    const ctx = host();
    const part = acquire(ctx, 0);
    let offset = 0;
    const command = (value: unknown): LogRecord => ({ topic: TOPICS.commands, partition: 0, offset: offset++, key: 'calling', headers: {}, timestamp: Date.now(), value: JSON.stringify(value) });
    await handleCommands(ctx, part, [command({ type: 'SubmitPrompt', commandId: 'c1', conversationId: 'calling', correlationId: null, principal: null, traceparent: null, issuedAt: new Date().toISOString(), data: { twin: { id: 'caller', name: 'Chiamata' }, text: 'ciao' } })]);
    for (let i = 0; i < 200 && calls === 0; i++) await sleep(10);
    expect(calls).toBe(1);
    await handleCommands(ctx, part, [command(eraseCommand({ conversationId: 'calling', commandId: 'c2', principal: null, by: 'ops', via: 'cli', now: new Date() }))]);
    const flow = part.actors.get('calling')!.state.flow!;
    expect(flow).toMatchObject({ status: 'ended', ended: { reason: 'erased' } });
    expect(flow.effect).toBeUndefined();
    // The state folded from the log (what a restart or a takeover recovers) owes nothing either.
    const records: LogRecord[] = [];
    await log.read(TOPICS.events, 0, 0, async (rs) => void records.push(...rs));
    const folded = fold('calling', await decodeEvents(records.filter((r) => r.headers.kind !== 'notice'), null));
    expect(openWork(folded).size).toBe(0);
    expect(folded.flow).toMatchObject({ status: 'ended', ended: { reason: 'erased' } });
    await log.close();
  });
});
