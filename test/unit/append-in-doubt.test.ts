// An append that failed on the host's side may still have landed (the broker was killed after
// it wrote, the client gave up waiting for the answer). The host must not decide from the state
// it had before: it learns from the log what landed, rebuilds those conversations, and only then
// writes again. Driven against the file log through a wrapper whose append writes, then throws.
import { describe, expect, it } from 'vitest';
import type { ReplyModel } from '../../actors/ports.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { createHostContext } from '../../actors/host.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { acquire } from '../../actors/host/partitions.ts';
import { decodeEvents } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { tempFileLogs, seedTwin, quietLogger, sleep } from '../support/temp-log.ts';

const twin = seedTwin;
const quiet = quietLogger;
const fileLog = tempFileLogs('doubt');

function world() {
  const file = fileLog(1);
  /** Appends of events that land, then fail as if the answer never came. */
  let failing: ((records: { value: string }[]) => boolean) | null = null;
  /** Whether the failing append lands before it throws. */
  let lands = true;
  const log: EventLog = {
    ...file,
    kind: file.kind,
    partitions: file.partitions,
    async append(topic, partition, records) {
      if (topic === TOPICS.events && !lands && failing?.(records)) {
        failing = null;
        throw new Error('Request timed out (the broker went away)');
      }
      const base = await file.append(topic, partition, records);
      if (topic === TOPICS.events && failing?.(records)) {
        failing = null;
        throw new Error('Request timed out (the broker went away)');
      }
      return base;
    },
  };
  let asked = 0;
  const reply: ReplyModel['reply'] = async ({ signal }) => {
    asked++;
    await sleep(5); // the model takes a while: the prompt's append is done by then
    if (signal?.aborted) throw new Error('aborted');
    return { text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } };
  };
  const ctx = createHostContext({ log, snapshots: createMemorySnapshotStore(), readModel: null, catalog: createTwinCatalog(), replyModel: { name: 'stub', reply }, metrics: createMetrics(), logger: quiet, idleMs: 60_000 });
  let offset = 0;
  /** `stream: false`: a seed client's prompt, whose reply is asked for while the prompt is appended. */
  const prompt = (commandId: string, text: string, stream?: boolean): LogRecord => ({
    topic: TOPICS.commands, partition: 0, offset: offset++, key: 'c1', headers: {}, timestamp: Date.now(),
    value: JSON.stringify({ type: 'SubmitPrompt', commandId, conversationId: 'c1', correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { twin, text, ...(stream === undefined ? {} : { stream }) } }),
  });
  const confirm = (commandId: string, data: Record<string, unknown>): LogRecord => ({
    topic: TOPICS.commands, partition: 0, offset: offset++, key: 'c1', headers: {}, timestamp: Date.now(),
    value: JSON.stringify({ type: 'ConfirmData', commandId, conversationId: 'c1', correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { data } }),
  });
  /** The notices of the partition (what the gateways tell the clients whose command they answer). */
  const notices = async (): Promise<Array<{ type: string; commandId: string; seq?: number }>> => {
    const out: Array<{ type: string; commandId: string; seq?: number }> = [];
    await file.read(TOPICS.events, 0, 0, async (records) => void out.push(...records.filter((r) => r.headers.kind === 'notice').map((r) => JSON.parse(r.value))));
    return out;
  };
  const events = async (): Promise<LoggedEvent[]> => {
    const out: LoggedEvent[] = [];
    await file.read(TOPICS.events, 0, 0, async (records) => void out.push(...(await decodeEvents(records, null))));
    return out;
  };
  const part = acquire(ctx, 0);
  /** Until the conversation's log ends with the reply to its last prompt (at most 3 s). */
  const answered = async () => {
    for (let i = 0; i < 300; i++) {
      const es = (await events()).filter((e) => e.type !== 'ConversationStarted');
      if (es.length && es[es.length - 1]!.type === 'ReplyGenerated') break;
      await sleep(10);
    }
    await part.actors.get('c1')?.queue;
  };
  return {
    ctx, part, prompt, confirm, notices, events, answered,
    failNext: (type: string, landing = true) => {
      lands = landing;
      failing = (records) => records.some((r) => (JSON.parse(r.value) as { type?: string }).type === type);
    },
    asked: () => asked,
    close: () => file.close(),
  };
}

const shape = (events: LoggedEvent[]) => events.map((e) => `${e.seq} ${e.type}${e.type === 'ReplyGenerated' ? ` ${(e.data as { promptSeq: number }).promptSeq}` : ''}`);

describe('an append that failed on our side but landed', () => {
  it('a prompt: its redelivery is recognised as done and answered once, and the next prompt continues the log', async () => {
    const w = world();
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-1', 'hello')]);
    await w.answered();
    w.failNext('PromptReceived');
    await expect(handleCommands(w.ctx, w.part, [w.prompt('cmd-2', 'What is a moat?')])).rejects.toThrow(/timed out/);
    // The consumer delivers the batch again.
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-2', 'What is a moat?')]);
    await w.answered();
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-3', 'And a margin of safety?')]);
    await w.answered();
    expect(shape(await w.events())).toEqual([
      '1 ConversationStarted', '2 PromptReceived', '3 ReplyGenerated 2',
      '4 PromptReceived', '5 ReplyGenerated 4',
      '6 PromptReceived', '7 ReplyGenerated 6',
    ]);
    expect(w.part.actors.get('c1')!.state.seq).toBe(7);
    expect(w.asked()).toBe(3);
    await w.close();
  });

  for (const landed of [true, false]) {
    it(`a seed client's prompt (its reply asked for during the append) whose append failed ${landed ? 'but landed' : 'and did not land'}: answered once, by a reply asked for after it is in the log`, async () => {
      const w = world();
      await handleCommands(w.ctx, w.part, [w.prompt('cmd-1', 'hello', false)]);
      await w.answered();
      w.failNext('PromptReceived', landed);
      await expect(handleCommands(w.ctx, w.part, [w.prompt('cmd-2', 'What is a moat?', false)])).rejects.toThrow(/timed out/);
      await handleCommands(w.ctx, w.part, [w.prompt('cmd-2', 'What is a moat?', false)]);
      await w.answered();
      await handleCommands(w.ctx, w.part, [w.prompt('cmd-3', 'And a margin of safety?', false)]);
      await w.answered();
      await sleep(50); // a dropped reply has had its time to (wrongly) answer
      const events = await w.events();
      expect(shape(events)).toEqual([
        '1 ConversationStarted', '2 PromptReceived', '3 ReplyGenerated 2',
        '4 PromptReceived', '5 ReplyGenerated 4',
        '6 PromptReceived', '7 ReplyGenerated 6',
      ]);
      expect(events.filter((e) => e.type === 'ReplyFailed')).toEqual([]);
      expect(w.part.actors.get('c1')!.state.pendingPrompts).toEqual([]);
      await w.close();
    });
  }

  it('a reply: it is not asked for or written again, and the next prompt continues the log', async () => {
    const w = world();
    w.failNext('ReplyGenerated');
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-1', 'hello')]);
    await w.answered();
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-2', 'What is a moat?')]);
    await w.answered();
    // Past the effect's retry (1 s): it finds the reply recorded and asks for nothing.
    await sleep(1_200);
    expect(shape(await w.events())).toEqual(['1 ConversationStarted', '2 PromptReceived', '3 ReplyGenerated 2', '4 PromptReceived', '5 ReplyGenerated 4']);
    expect(w.part.actors.get('c1')!.state.seq).toBe(5);
    expect(w.asked()).toBe(2);
    await w.close();
  });

  it('confirmed data: the redelivered confirmation is not written again, and its client is told', async () => {
    const w = world();
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-1', 'hello')]);
    await w.answered();
    w.failNext('DataConfirmed');
    await expect(handleCommands(w.ctx, w.part, [w.confirm('cmd-2', { name: 'Ann Omaha' })])).rejects.toThrow(/timed out/);
    await handleCommands(w.ctx, w.part, [w.confirm('cmd-2', { name: 'Ann Omaha' })]);
    await handleCommands(w.ctx, w.part, [w.prompt('cmd-3', 'What is a moat?')]);
    await w.answered();
    expect(shape(await w.events())).toEqual(['1 ConversationStarted', '2 PromptReceived', '3 ReplyGenerated 2', '4 DataConfirmed', '5 PromptReceived', '6 ReplyGenerated 5']);
    expect(await w.notices()).toMatchObject([{ type: 'confirmed', commandId: 'cmd-2', seq: 4 }]);
    expect(w.part.actors.get('c1')!.state.confirmedData).toEqual({ name: 'Ann Omaha' });
    await w.close();
  });
});
