// From the moment a host hears that its group rebalances until the group says what it keeps,
// it writes nothing: the host a partition moves to reads the partition's end the moment it is
// assigned, and a write landing after that doubles a seq (the new owner writes the same seq,
// not knowing). Seen in rolling-restart runs under CPU load (a host taken for dead, then
// rejoining). Driven on the file log: the rebalance is holdWrites (what the consumer's
// onRebalancing calls), the settling onAssigned.
import { describe, expect, it } from 'vitest';
import type { ReplyModel } from '../../actors/ports.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { createHostContext } from '../../actors/host.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { holdWrites } from '../../actors/host/hold.ts';
import { acquire, onAssigned } from '../../actors/host/partitions.ts';
import { decodeEvents } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { quietLogger, seedTwin, sleep, tempFileLogs } from '../support/temp-log.ts';

const fileLog = tempFileLogs('hold');

function world() {
  const file = fileLog(1);
  /** While set, event appends wait for it (a write in flight). */
  let gate: Promise<void> | null = null;
  let open = () => {};
  const log: EventLog = {
    ...file,
    kind: file.kind,
    partitions: file.partitions,
    async append(topic, partition, records) {
      if (topic === TOPICS.events && gate) await gate;
      return file.append(topic, partition, records);
    },
  };
  /** The model answers when told to. */
  let answer = () => {};
  let answered = new Promise<void>((r) => (answer = r));
  const reply: ReplyModel['reply'] = async () => {
    await answered;
    return { text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } };
  };
  const ctx = createHostContext({ log, snapshots: createMemorySnapshotStore(), readModel: null, catalog: createTwinCatalog(), replyModel: { name: 'stub', reply }, metrics: createMetrics(), logger: quietLogger, idleMs: 60_000 });
  let offset = 0;
  const prompt = (conversationId: string, commandId: string, text: string): LogRecord => ({
    topic: TOPICS.commands, partition: 0, offset: offset++, key: conversationId, headers: {}, timestamp: Date.now(),
    value: JSON.stringify({ type: 'SubmitPrompt', commandId, conversationId, correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { twin: seedTwin, text } }),
  });
  const events = async (): Promise<LoggedEvent[]> => {
    const out: LoggedEvent[] = [];
    await file.read(TOPICS.events, 0, 0, async (records) => void out.push(...(await decodeEvents(records, null))));
    return out;
  };
  const part = acquire(ctx, 0);
  return {
    ctx, part, prompt, events,
    answer: () => answer(),
    rearm: () => (answered = new Promise<void>((r) => (answer = r))),
    block: () => (gate = new Promise<void>((r) => (open = () => { gate = null; r(); }))),
    unblock: () => open(),
    close: () => file.close(),
  };
}

const shape = (events: LoggedEvent[]) => events.map((e) => `${e.conversationId} ${e.seq} ${e.type}`);

describe('appends while the group rebalances', () => {
  it('a reply that comes during the rebalance waits; the partition is revoked: it is refused, never written', async () => {
    const w = world();
    await w.part.ready;
    await handleCommands(w.ctx, w.part, [w.prompt('c1', 'cmd-1', 'hello')]);
    holdWrites(w.ctx); // the heartbeat said "rebalance in progress"
    w.answer(); // the model answers meanwhile
    await sleep(30);
    // Nothing written while the group settles (the next owner may be reading the end now).
    expect(shape(await w.events())).toEqual(['c1 1 ConversationStarted', 'c1 2 PromptReceived']);
    onAssigned(w.ctx, []); // the partition went to another host
    await sleep(30);
    expect(shape(await w.events())).toEqual(['c1 1 ConversationStarted', 'c1 2 PromptReceived']);
    await w.close();
  });

  it('a reply that comes during the rebalance waits; the partition stays: it is written once the group settles', async () => {
    const w = world();
    await w.part.ready;
    await handleCommands(w.ctx, w.part, [w.prompt('c1', 'cmd-1', 'hello')]);
    holdWrites(w.ctx);
    w.answer();
    await sleep(30);
    expect(shape(await w.events())).toEqual(['c1 1 ConversationStarted', 'c1 2 PromptReceived']);
    onAssigned(w.ctx, [0]); // kept
    for (let i = 0; i < 100 && (await w.events()).length < 3; i++) await sleep(10);
    expect(shape(await w.events())).toEqual(['c1 1 ConversationStarted', 'c1 2 PromptReceived', 'c1 3 ReplyGenerated']);
    await w.close();
  });

  it('a write queued behind one in flight when the partition moves is not sent (it passed its checks before)', async () => {
    const w = world();
    await w.part.ready;
    w.block(); // the first write is in flight and stays so
    const handled = handleCommands(w.ctx, w.part, [w.prompt('c1', 'cmd-1', 'hello'), w.prompt('c2', 'cmd-2', 'hello')]);
    handled.catch(() => {});
    await sleep(30); // c1's events are being written, c2's wait in the partition's appender
    expect(w.part.appender!.waiting).toBeGreaterThan(0);
    holdWrites(w.ctx);
    onAssigned(w.ctx, []);
    w.unblock(); // c1's write lands (it was sent); c2's must not go out now
    await expect(handled).rejects.toThrow(/not owned|another host/);
    await sleep(30);
    expect(shape(await w.events())).toEqual(['c1 1 ConversationStarted', 'c1 2 PromptReceived']);
    await w.close();
  });
});
