// A flow's backend call under way stops when the flow no longer waits on it: an erased
// conversation's data is not sent again by a retry, and a host that let the partition go
// leaves the call to the new owner instead of making it beside it.
import { describe, expect, it } from 'vitest';
import { createHostContext } from '../../actors/host.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { acquire, release } from '../../actors/host/partitions.ts';
import { createFlowEffects } from '../../actors/flow-effects.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { eraseCommand } from '../../actors/command-client.ts';
import { compileFlow } from '../../flows/compile.ts';
import { createFlowRegistry } from '../../flows/registry.ts';
import type { LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { quietLogger, sleep, tempFileLogs } from '../support/temp-log.ts';

const fileLog = tempFileLogs('flow-cancel');

function callFlowRegistry() {
  const def = { id: 'call', language: 'it', start: 'call', tasks: { call: { type: 'backendCall', backend: 'crm', method: 'POST', path: '/x', body: { name: 'Carlo Verdi' }, retries: 4, saveAs: 'r', next: 'bye' }, bye: { type: 'end', text: 'fatto' } }, ddts: {} };
  const env = { backends: ['crm'], email: false, sms: false };
  const compiled = compileFlow(def, env);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
  return createFlowRegistry([compiled.flow], env);
}

function setUp(fetchStub: typeof fetch) {
  const log = fileLog(1);
  const warnings: string[] = [];
  const ctx = createHostContext({
    log, snapshots: createMemorySnapshotStore(), readModel: null, metrics: createMetrics(), logger: { ...quietLogger, warn: (m: string) => void warnings.push(m) },
    catalog: createTwinCatalog([{ id: 'caller', name: 'Chiamata', flow: 'call' }]),
    replyModel: { name: 'stub', reply: async () => ({ text: 'x', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }) },
    flows: { registry: callFlowRegistry(), effects: createFlowEffects({ backends: { crm: 'http://crm.invalid' }, emailWebhook: null, smsWebhook: null, fetch: fetchStub, backoffMs: 100 }), noInputSec: 30, model: false },
  });
  const part = acquire(ctx, 0);
  let offset = 0;
  const command = (value: unknown): LogRecord => ({ topic: TOPICS.commands, partition: 0, offset: offset++, key: 'calling', headers: {}, timestamp: Date.now(), value: JSON.stringify(value) });
  const start = () => handleCommands(ctx, part, [command({ type: 'SubmitPrompt', commandId: 'c1', conversationId: 'calling', correlationId: null, principal: null, traceparent: null, issuedAt: new Date().toISOString(), data: { twin: { id: 'caller', name: 'Chiamata' }, text: 'ciao' } })]);
  const prompt = (commandId: string, text: string) => handleCommands(ctx, part, [command({ type: 'SubmitPrompt', commandId, conversationId: 'calling', correlationId: null, principal: null, traceparent: null, issuedAt: new Date().toISOString(), data: { twin: { id: 'caller', name: 'Chiamata' }, text } })]);
  const erase = () => handleCommands(ctx, part, [command(eraseCommand({ conversationId: 'calling', commandId: 'c2', principal: null, by: 'ops', via: 'cli', now: new Date() }))]);
  return { ctx, part, log, warnings, start, prompt, erase };
}

/** A conversation whose flow is calling a backend that does not answer: the signal of each attempt. */
async function callingAHangingBackend() {
  const signals: AbortSignal[] = [];
  const hanging = (async (_url: string, init?: RequestInit) => {
    signals.push(init!.signal!);
    return new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
  }) as unknown as typeof fetch;
  const t = setUp(hanging);
  await t.start();
  for (let i = 0; i < 200 && signals.length === 0; i++) await sleep(10);
  return { t, signals };
}

describe("a flow's backend call under way", () => {
  it('is not attempted again once the conversation is erased', async () => {
    const attempts: number[] = [];
    // A backend that keeps failing: the flow retries it with backoff (100, 200, 400, 800 ms).
    const failing = (async () => {
      attempts.push(Date.now());
      return new Response('busy', { status: 503 });
    }) as unknown as typeof fetch;
    const t = setUp(failing);
    await t.start();
    for (let i = 0; i < 200 && attempts.length === 0; i++) await sleep(10);
    expect(attempts).toHaveLength(1);
    await t.erase();
    const erasedAt = Date.now();
    // Longer than every retry left would take.
    await sleep(1_800);
    expect(attempts.filter((at) => at > erasedAt)).toEqual([]);
    expect(t.part.actors.get('calling')!.inFlight.size).toBe(0);
    expect(t.warnings.filter((w) => /retrying/.test(w))).toEqual([]);
    await t.log.close();
  });

  it('is aborted when the conversation is erased while the backend has not answered', async () => {
    const { t, signals } = await callingAHangingBackend();
    expect(signals[0]!.aborted).toBe(false);
    await t.erase();
    expect(signals[0]!.aborted).toBe(true);
    await sleep(300);
    expect(signals).toHaveLength(1);
    await t.log.close();
  });

  it('is aborted when the host lets the partition go (the new owner makes it, not both)', async () => {
    const { t, signals } = await callingAHangingBackend();
    release(t.ctx, [0]);
    expect(signals[0]!.aborted).toBe(true);
    await sleep(1_200);
    expect(signals).toHaveLength(1);
    await t.log.close();
  });

  it('refuses a prompt meanwhile with flow_busy, instead of recording one nobody answers', async () => {
    const hanging = (async (_url: string, init?: RequestInit) => new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))))) as unknown as typeof fetch;
    const t = setUp(hanging);
    await t.start();
    await t.prompt('c3', 'pronto? ci sei?');
    const records: LogRecord[] = [];
    await t.log.read(TOPICS.events, 0, 0, async (rs) => void records.push(...rs));
    const notices = records.filter((r) => r.headers.kind === 'notice').map((r) => JSON.parse(r.value) as { type: string; commandId: string; code?: string; message?: string });
    expect(notices).toContainEqual(expect.objectContaining({ type: 'rejected', commandId: 'c3', code: 'flow_busy' }));
    expect(notices.find((n) => n.commandId === 'c3')!.message).toMatch(/waiting for its call of task call/);
    expect(t.part.actors.get('calling')!.state.messages.filter((m) => m.role === 'user').map((m) => m.content)).not.toContain('pronto? ci sei?');
    release(t.ctx, [0]);
    await t.log.close();
  });
});
